// Package apierror holds the errors that reach API clients. Handlers and the
// layers below return these (or wrap the sentinels); the HTTP layer maps them to
// status codes and the JSON error body in one place.
package apierror

import (
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Codes of the error model (SPEC §3.3).
const (
	CodeUnauthorized       = "UNAUTHORIZED"
	CodeBadRequest         = "BAD_REQUEST"
	CodeNotFound           = "NOT_FOUND"
	CodePayloadTooLarge    = "PAYLOAD_TOO_LARGE"
	CodeTooManyRequests    = "TOO_MANY_REQUESTS"
	CodeInternal           = "INTERNAL_ERROR"
	CodeServiceUnavailable = "SERVICE_UNAVAILABLE"
)

// Error is an error with a status and a message safe to show to the client.
type Error struct {
	Status  int
	Code    string
	Message string
	// RetryAfter, when set, becomes the Retry-After header (whole seconds, at least 1).
	RetryAfter time.Duration
	// Meta is merged into the response body as "meta" (e.g. rate-limit details).
	Meta any
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// BadRequest is a 400 with a message naming what was wrong.
func BadRequest(format string, args ...any) *Error {
	return &Error{Status: http.StatusBadRequest, Code: CodeBadRequest, Message: fmt.Sprintf(format, args...)}
}

// NotFound is a 404.
func NotFound(format string, args ...any) *Error {
	return &Error{Status: http.StatusNotFound, Code: CodeNotFound, Message: fmt.Sprintf(format, args...)}
}

// Sentinels that the lower layers wrap with %w.
var (
	// ErrUnavailable: the database cannot be reached or the server is shutting down (503).
	ErrUnavailable = errors.New("service unavailable")
	// ErrOverloaded: the ingest queue is full (429, Retry-After: 1).
	ErrOverloaded = errors.New("ingest queue full")
	// ErrNotFound: the requested object does not exist (404).
	ErrNotFound = errors.New("not found")
)

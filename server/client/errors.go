package client

import (
	"errors"
	"fmt"
	"net/http"
	"time"
)

// APIError is a non-2xx answer of the server.
type APIError struct {
	Status     int    // HTTP status
	Code       string // the error model's code: BAD_REQUEST, UNAUTHORIZED, NOT_FOUND, TOO_MANY_REQUESTS, …
	Message    string
	RequestID  string        // X-Request-Id, to find the server's log lines
	RetryAfter time.Duration // from Retry-After, when sent
}

func (e *APIError) Error() string {
	msg := fmt.Sprintf("xtrace: %d %s: %s", e.Status, e.Code, e.Message)
	if e.RequestID != "" {
		msg += " (request " + e.RequestID + ")"
	}
	return msg
}

// Sentinels for errors.Is.
var (
	ErrUnauthorized = errors.New("xtrace: unauthorized")
	ErrRateLimited  = errors.New("xtrace: rate limited")
	ErrNotFound     = errors.New("xtrace: not found")
	ErrUnavailable  = errors.New("xtrace: unavailable")
)

// Is lets errors.Is(err, ErrNotFound) and friends match an APIError by status.
func (e *APIError) Is(target error) bool {
	switch target {
	case ErrUnauthorized:
		return e.Status == http.StatusUnauthorized
	case ErrRateLimited:
		return e.Status == http.StatusTooManyRequests
	case ErrNotFound:
		return e.Status == http.StatusNotFound
	case ErrUnavailable:
		return e.Status == http.StatusServiceUnavailable
	}
	return false
}

// IsUnauthorized reports whether err is a 401.
func IsUnauthorized(err error) bool { return errors.Is(err, ErrUnauthorized) }

// IsRateLimited reports whether err is a 429.
func IsRateLimited(err error) bool { return errors.Is(err, ErrRateLimited) }

// IsNotFound reports whether err is a 404.
func IsNotFound(err error) bool { return errors.Is(err, ErrNotFound) }

// NetworkError is a failure to reach the server or read its answer (retried).
type NetworkError struct{ Err error }

func (e *NetworkError) Error() string { return "xtrace: network: " + e.Err.Error() }
func (e *NetworkError) Unwrap() error { return e.Err }

// DecodeError is a 2xx answer that is not the expected JSON (not retried).
type DecodeError struct {
	Status int
	Err    error
}

func (e *DecodeError) Error() string {
	return fmt.Sprintf("xtrace: decode %d answer: %v", e.Status, e.Err)
}
func (e *DecodeError) Unwrap() error { return e.Err }

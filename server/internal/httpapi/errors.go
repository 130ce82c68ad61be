package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/xtrace-dev/xtrace-operator/server/internal/errs"
)

// Codes of the error model (SPEC §3.3).
const (
	codeUnauthorized        = "UNAUTHORIZED"
	codeBadRequest          = "BAD_REQUEST"
	codeNotFound            = "NOT_FOUND"
	codeConflict            = "CONFLICT"
	codeMethodNotAllowed    = "METHOD_NOT_ALLOWED"
	codeRequestTimeout      = "REQUEST_TIMEOUT"
	codePayloadTooLarge     = "PAYLOAD_TOO_LARGE"
	codeUnprocessable       = "UNPROCESSABLE"
	codeTooManyRequests     = "TOO_MANY_REQUESTS"
	codeInternal            = "INTERNAL_ERROR"
	codeServiceUnavailable  = "SERVICE_UNAVAILABLE"
	codeClientClosedRequest = "CLIENT_CLOSED_REQUEST"
)

// statusClientClosedRequest is the conventional status (nginx's) for a
// request whose client disconnected before the answer.
const statusClientClosedRequest = 499

// errorBody is the error model of every non-2xx response (SPEC §3.3).
type errorBody struct {
	Message string `json:"message"`
	Code    string `json:"code"`
	Data    any    `json:"data"`
	Meta    any    `json:"meta,omitempty"`
}

// response is what the client sees of an error.
type response struct {
	status     int
	code       string
	message    string
	retryAfter time.Duration
	meta       any
	logLevel   slog.Level // how the failure is logged; below Info: not logged
}

const notLogged = slog.LevelDebug - 4

// errUnauthorized: missing or wrong credentials (an HTTP-layer concern only).
var errUnauthorized = errors.New("missing or invalid credentials: send Authorization: Bearer <token> or Basic <public:secret>")

// methodNotAllowed: the path exists, but not for this method (an HTTP-layer concern only).
type methodNotAllowed string

func (m methodNotAllowed) Error() string { return string(m) }

// errShuttingDown is returned to new requests while the server drains.
var errShuttingDown = errs.Unavailablef(nil, "server is shutting down; retry on another replica")

// errSchemaNotReady is returned to API requests that arrive before the
// migrations are applied: a fresh start, or a database that was unreachable.
var errSchemaNotReady = errs.Unavailablef(nil, "the database schema is not ready yet (migrations are being applied); retry shortly")

// describe maps any error to what the client sees. It is the only place where
// errors become HTTP statuses.
func describe(err error) response {
	var maxBytes *http.MaxBytesError
	var wrongMethod methodNotAllowed
	switch {
	case errors.Is(err, context.Canceled):
		// The client went away; nobody reads the answer, and it is not a server failure.
		return response{status: statusClientClosedRequest, code: codeClientClosedRequest, message: "the client closed the request", logLevel: notLogged}
	case errors.As(err, &wrongMethod):
		return response{status: http.StatusMethodNotAllowed, code: codeMethodNotAllowed, message: err.Error(), logLevel: notLogged}
	case errors.Is(err, errUnauthorized):
		return response{status: http.StatusUnauthorized, code: codeUnauthorized, message: err.Error(), logLevel: notLogged}
	case errors.As(err, &maxBytes):
		return response{status: http.StatusRequestEntityTooLarge, code: codePayloadTooLarge,
			message: "body: larger than " + strconv.FormatInt(maxBytes.Limit, 10) + " bytes; split it into smaller requests", logLevel: notLogged}
	}
	if e, ok := errs.As(err); ok {
		r := response{message: e.Message(), retryAfter: e.RetryAfter, meta: e.Detail, logLevel: notLogged}
		switch e.Kind {
		case errs.Invalid:
			r.status, r.code = http.StatusBadRequest, codeBadRequest
		case errs.NotFound:
			r.status, r.code = http.StatusNotFound, codeNotFound
		case errs.Conflict:
			r.status, r.code = http.StatusConflict, codeConflict
		case errs.TooLarge:
			r.status, r.code = http.StatusRequestEntityTooLarge, codePayloadTooLarge
		case errs.Timeout:
			r.status, r.code, r.logLevel = http.StatusRequestTimeout, codeRequestTimeout, slog.LevelInfo
		case errs.Unprocessable:
			r.status, r.code = http.StatusUnprocessableEntity, codeUnprocessable
		case errs.Overloaded:
			r.status, r.code = http.StatusTooManyRequests, codeTooManyRequests
			r.retryAfter = max(r.retryAfter, time.Second)
		case errs.Unavailable:
			r.status, r.code, r.logLevel = http.StatusServiceUnavailable, codeServiceUnavailable, slog.LevelWarn
			r.retryAfter = max(r.retryAfter, time.Second)
		default:
			return internal()
		}
		return r
	}
	switch errs.KindOf(err) {
	case errs.NotFound:
		return response{status: http.StatusNotFound, code: codeNotFound, message: "not found", logLevel: notLogged}
	case errs.Overloaded:
		return response{status: http.StatusTooManyRequests, code: codeTooManyRequests, message: "ingest queue is full; retry shortly",
			retryAfter: time.Second, logLevel: notLogged}
	case errs.Unavailable:
		return response{status: http.StatusServiceUnavailable, code: codeServiceUnavailable, message: "database unavailable; retry shortly",
			retryAfter: time.Second, logLevel: slog.LevelWarn}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return response{status: http.StatusServiceUnavailable, code: codeServiceUnavailable,
			message: "the request took longer than the server allows; retry shortly", retryAfter: time.Second, logLevel: slog.LevelWarn}
	}
	return internal()
}

func internal() response {
	return response{status: http.StatusInternalServerError, code: codeInternal,
		message: "internal error; see the server log for request id", logLevel: slog.LevelError}
}

// writeError answers with the error model. Server-side failures are logged
// with the request id; the client never sees their cause.
func writeError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	resp := describeAndLog(w, r, log, err)
	writeJSON(w, resp.status, errorBody{Message: resp.message, Code: resp.code, Meta: resp.meta})
}

// describeAndLog describes err, logs server-side failures with the request
// id and sets Retry-After; the caller writes the body in its API's shape.
func describeAndLog(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) response {
	resp := describe(err)
	if resp.logLevel >= slog.LevelInfo {
		log.Log(r.Context(), resp.logLevel, "request failed", "route", r.Pattern, "status", resp.status, "error", err)
	}
	if resp.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Max(1, math.Ceil(resp.retryAfter.Seconds())))))
	}
	return resp
}

// writePromError answers in the Prometheus API's error shape,
// {"status":"error","errorType":"bad_data","error":"..."}, with the status
// codes Prometheus uses (400 bad_data, 422 execution, 503 timeout or
// unavailable, 499 canceled, 500 internal) and, for what only xtrace
// answers, 401 unauthorized, 404 not_found and 429 unavailable (with Retry-After).
func writePromError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	resp := describeAndLog(w, r, log, err)
	writeJSON(w, resp.status, map[string]string{"status": "error", "errorType": promErrorType(resp.status, err), "error": resp.message})
}

func promErrorType(status int, err error) string {
	switch status {
	case http.StatusUnprocessableEntity:
		return "execution"
	case http.StatusUnauthorized:
		return "unauthorized"
	case http.StatusNotFound:
		return "not_found"
	case http.StatusNotAcceptable:
		return "not_acceptable"
	case statusClientClosedRequest:
		return "canceled"
	case http.StatusRequestTimeout:
		return "timeout"
	case http.StatusTooManyRequests:
		return "unavailable"
	case http.StatusServiceUnavailable:
		if errors.Is(err, context.DeadlineExceeded) {
			return "timeout"
		}
		return "unavailable"
	case http.StatusInternalServerError:
		return "internal"
	}
	return "bad_data"
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	var body bytes.Buffer
	enc := json.NewEncoder(&body)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
	writeJSONBytes(w, status, body.Bytes())
}

// writeJSONBytes writes a body already encoded as writeJSON would, with its
// length: net/http sends a body larger than its 2 KB buffer chunked
// otherwise, in one write to the socket more (a router query's 12 KB answer
// took 4.7 writes per request, 3.7 with the length).
func writeJSONBytes(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/xtrace-dev/xtrace-operator/server/internal/apierror"
)

// errorBody is the error model of every non-2xx response (SPEC §3.3).
type errorBody struct {
	Message string `json:"message"`
	Code    string `json:"code"`
	Data    any    `json:"data"`
	Meta    any    `json:"meta,omitempty"`
}

// toAPIError maps any error to what the client sees. It is the only place
// where errors become HTTP statuses.
func toAPIError(err error) (e *apierror.Error, internal bool) {
	var apiErr *apierror.Error
	var maxBytes *http.MaxBytesError
	switch {
	case errors.As(err, &apiErr):
		return apiErr, false
	case errors.As(err, &maxBytes):
		return &apierror.Error{Status: http.StatusRequestEntityTooLarge, Code: apierror.CodePayloadTooLarge,
			Message: "body: larger than " + strconv.FormatInt(maxBytes.Limit, 10) + " bytes"}, false
	case errors.Is(err, apierror.ErrOverloaded):
		return &apierror.Error{Status: http.StatusTooManyRequests, Code: apierror.CodeTooManyRequests,
			Message: "ingest queue is full; retry shortly", RetryAfter: time.Second}, false
	case errors.Is(err, apierror.ErrNotFound):
		return apierror.NotFound("not found"), false
	case errors.Is(err, apierror.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		msg := "database unavailable; retry shortly"
		if errors.Is(err, errShuttingDown) {
			msg = "server is shutting down; retry on another replica"
		}
		return &apierror.Error{Status: http.StatusServiceUnavailable, Code: apierror.CodeServiceUnavailable,
			Message: msg, RetryAfter: time.Second}, false
	default:
		return &apierror.Error{Status: http.StatusInternalServerError, Code: apierror.CodeInternal,
			Message: "internal error; see the server log for request id"}, true
	}
}

var errShuttingDown = errors.Join(apierror.ErrUnavailable, errors.New("shutting down"))

// writeError answers with the error model; internal errors are logged with the
// request id and never shown to the client.
func writeError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	e, internal := toAPIError(err)
	if internal {
		log.ErrorContext(r.Context(), "request failed", "request_id", requestID(r.Context()), "route", r.Pattern, "error", err)
	} else if e.Status >= 500 {
		log.WarnContext(r.Context(), "request unavailable", "request_id", requestID(r.Context()), "route", r.Pattern, "error", err)
	}
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Max(1, math.Ceil(e.RetryAfter.Seconds())))))
	}
	writeJSON(w, e.Status, errorBody{Message: e.Message, Code: e.Code, Meta: e.Meta})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/xtrace-dev/xtrace-operator/server/internal/errs"
)

// Each kind of failure becomes the status and errorType Prometheus' own API
// would answer, in Prometheus' error shape.
func TestPrometheusErrorShape(t *testing.T) {
	cases := []struct {
		err       error
		status    int
		errorType string
	}{
		{&errs.Error{Kind: errs.Invalid, Msg: `invalid parameter "query": 1:5: parse error`}, 400, "bad_data"},
		{&errs.Error{Kind: errs.Unprocessable, Msg: "vector cannot contain metrics with the same labelset"}, 422, "execution"},
		{&errs.Error{Kind: errs.Unavailable, Msg: "query timed out in expression evaluation", Err: context.DeadlineExceeded}, 503, "timeout"},
		{fmt.Errorf("%w: %w", errs.ErrUnavailable, errors.New("connection refused")), 503, "unavailable"},
		{fmt.Errorf("%w: %w", context.Canceled, errors.New("query was canceled")), 499, "canceled"},
		{errUnauthorized, 401, "unauthorized"},
		{&errs.Error{Kind: errs.Overloaded, Msg: "Too Many Requests", RetryAfter: 2 * time.Second}, 429, "unavailable"},
		{errs.NotFoundf("/api/v1/rules is not served"), 404, "not_found"},
		{errors.New("a bug"), 500, "internal"},
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, tc := range cases {
		w := httptest.NewRecorder()
		writePromError(w, httptest.NewRequest(http.MethodGet, "/api/v1/query", nil), log, tc.err)
		var body struct{ Status, ErrorType, Error string }
		if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
			t.Fatalf("%v: %s", tc.err, w.Body)
		}
		if w.Code != tc.status || body.Status != "error" || body.ErrorType != tc.errorType || body.Error == "" {
			t.Errorf("%v: %d %+v, want %d %s", tc.err, w.Code, body, tc.status, tc.errorType)
		}
		if tc.status == 500 && body.Error == tc.err.Error() {
			t.Errorf("an internal error's cause reached the client: %q", body.Error)
		}
	}
}

// An answer larger than net/http's buffer goes out with its length, not
// chunked, and the length is the body's.
func TestLargeJSONAnswerHasItsLength(t *testing.T) {
	long := strings.Repeat("x", 12000)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"value": long})
	}))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.TransferEncoding) > 0 || resp.ContentLength != int64(len(body)) {
		t.Errorf("sent with Transfer-Encoding %v and Content-Length %d; the body has %d bytes", resp.TransferEncoding, resp.ContentLength, len(body))
	}
	if want := `{"value":"` + long + "\"}\n"; string(body) != want {
		t.Errorf("body changed: %.40s...", body)
	}
}

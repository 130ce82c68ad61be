package httpapi

import (
	"net/http/httptest"
	"testing"
)

// TestRequestTraceID: the trace a log line names comes from the W3C
// traceparent header, else from a Langfuse trace id in the path; anything
// malformed names none.
func TestRequestTraceID(t *testing.T) {
	cases := []struct {
		name, traceparent, pathID, want string
	}{
		{"traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "", "0af7651916cd43dd8448eb211c80319c"},
		{"traceparent wins over the path", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "lf-trace-1", "0af7651916cd43dd8448eb211c80319c"},
		{"Langfuse trace id in the path", "", "lf-trace-1", "lf-trace-1"},
		{"upper-case hex is not W3C", "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01", "", ""},
		{"short traceparent", "00-0af7651916cd43dd-b7ad6b7169203331-01", "", ""},
		{"path id with a control character", "", "a\x00b", ""},
		{"nothing", "", "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/api/public/traces/x", nil)
			if c.traceparent != "" {
				r.Header.Set("traceparent", c.traceparent)
			}
			if c.pathID != "" {
				r.SetPathValue("traceId", c.pathID)
			}
			if got := requestTraceID(r); got != c.want {
				t.Errorf("trace id %q, want %q", got, c.want)
			}
		})
	}
}

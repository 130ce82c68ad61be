package httpapi

import (
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/xtrace-dev/xtrace-operator/server/internal/config"
	"github.com/xtrace-dev/xtrace-operator/server/internal/telemetry"
)

// TestAPIRoutesWaitForTheSchema: until the migrations are applied, an
// authenticated API request gets 503 with Retry-After (which clients retry),
// not the 500 of a missing table; credentials are still checked first, and
// the web UI, which needs no database, is served.
func TestAPIRoutesWaitForTheSchema(t *testing.T) {
	cfg, err := config.Load(func(k string) string {
		return map[string]string{"DATABASE_URL": "postgres://127.0.0.1:1/x", "API_BEARER_TOKEN": "tok"}[k]
	}, config.ModeServe)
	if err != nil {
		t.Fatal(err)
	}
	a := New(Deps{Config: cfg, Telemetry: telemetry.New(), Log: slog.New(slog.NewTextHandler(io.Discard, nil))})

	get := func(path, token string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("GET", path, nil)
		if token != "" {
			r.Header.Set("Authorization", "Bearer "+token)
		}
		w := httptest.NewRecorder()
		a.Handler().ServeHTTP(w, r)
		return w
	}
	for _, path := range []string{"/api/public/metrics/names", "/api/public/traces", "/api/v1/query?query=up"} {
		w := get(path, "tok")
		if w.Code != 503 || w.Header().Get("Retry-After") == "" || !strings.Contains(w.Body.String(), "schema is not ready") {
			t.Errorf("%s before migrations: %d %q %s, want 503 with Retry-After", path, w.Code, w.Header().Get("Retry-After"), w.Body)
		}
		if w := get(path, "wrong"); w.Code != 401 {
			t.Errorf("%s with a wrong token before migrations: %d, want 401", path, w.Code)
		}
	}
	if w := get("/ui/", ""); w.Code != 200 {
		t.Errorf("web UI before migrations: %d, want 200", w.Code)
	}
}

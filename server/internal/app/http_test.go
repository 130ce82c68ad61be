package app_test

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xtrace-dev/xtrace-operator/internal/pgtest"
	"github.com/xtrace-dev/xtrace-operator/server/internal/servertest"
)

type errBody struct {
	Message string `json:"message"`
	Code    string `json:"code"`
	Data    any    `json:"data"`
	Meta    struct {
		RateLimit struct {
			Remaining int    `json:"remaining"`
			ResetAt   string `json:"reset_at"`
		} `json:"rate_limit"`
	} `json:"meta"`
}

func TestAuthentication(t *testing.T) {
	t.Parallel()
	s := servertest.Start(t, servertest.Options{Env: map[string]string{
		"API_BEARER_TOKEN": "old-token," + servertest.Token, "XTRACE_PUBLIC_KEY": "pk-lf-1", "XTRACE_SECRET_KEY": "sk-lf-1",
	}})
	basic := func(u, p string) string { return "Basic " + base64.StdEncoding.EncodeToString([]byte(u+":"+p)) }
	cases := []struct {
		auth string
		want int
	}{
		{"Bearer " + servertest.Token, 200},
		{"Bearer old-token", 200}, // rotation: both tokens work
		{"bearer " + servertest.Token, 200},
		{basic("pk-lf-1", "sk-lf-1"), 200},
		{"", 401},
		{"Bearer", 401},
		{"Bearer wrong", 401},
		{"Bearer " + servertest.Token + "x", 401},
		{basic("pk-lf-1", "wrong"), 401},
		{basic("wrong", "sk-lf-1"), 401},
		{"Basic !!!notbase64", 401},
		{"Token " + servertest.Token, 401},
	}
	for _, c := range cases {
		r := s.Do(t, "GET", "/api/public/metrics/names", nil, "Authorization", c.auth)
		if r.Status != c.want {
			t.Errorf("Authorization %q: %d, want %d", c.auth, r.Status, c.want)
		}
		if c.want == 401 {
			var e errBody
			r.JSON(t, &e)
			if e.Code != "UNAUTHORIZED" || e.Message == "" {
				t.Errorf("401 body: %s", r.Body)
			}
		}
	}
	for _, path := range []string{"/healthz", "/readyz", "/metrics", "/api/public/health"} {
		if r := s.Do(t, "GET", path, nil, "Authorization", ""); r.Status != 200 {
			t.Errorf("%s without credentials: %d", path, r.Status)
		}
	}
	for _, route := range [][2]string{{"POST", "/v1/metrics/batch"}, {"GET", "/api/public/metrics/query?name=x"}, {"GET", "/api/public/metrics/labels?name=x"}} {
		if r := s.Do(t, route[0], route[1], `{"metrics":[]}`, "Authorization", ""); r.Status != 401 {
			t.Errorf("%s %s without credentials: %d", route[0], route[1], r.Status)
		}
	}
}

func TestErrorModelAndRequestID(t *testing.T) {
	t.Parallel()
	s := servertest.Start(t, servertest.Options{Env: map[string]string{"XTRACE_MAX_REQUEST_BODY_BYTES": "2048"}})
	r := s.Do(t, "GET", "/no/such/route", nil, "X-Request-Id", "client-id-42")
	var e errBody
	r.JSON(t, &e)
	if r.Status != 404 || e.Code != "NOT_FOUND" || e.Data != nil || r.Header.Get("X-Request-Id") != "client-id-42" {
		t.Fatalf("unknown route: %d %s id=%q", r.Status, r.Body, r.Header.Get("X-Request-Id"))
	}
	if !strings.Contains(string(r.Body), `"data":null`) {
		t.Fatalf("error body lacks data:null: %s", r.Body)
	}
	r = s.Do(t, "GET", "/healthz", nil)
	if id := r.Header.Get("X-Request-Id"); len(id) < 16 {
		t.Fatalf("generated request id %q", id)
	}
	r = s.Do(t, "GET", "/healthz", nil, "X-Request-Id", "bad id with spaces")
	if id := r.Header.Get("X-Request-Id"); id == "bad id with spaces" || id == "" {
		t.Fatalf("unsafe request id echoed: %q", id)
	}
	big := `{"metrics":[` + strings.Repeat(`{"name":"x","value":1},`, 200) + `{"name":"x","value":1}]}`
	r = s.Do(t, "POST", "/v1/metrics/batch", big)
	r.JSON(t, &e)
	if r.Status != 413 || e.Code != "PAYLOAD_TOO_LARGE" {
		t.Fatalf("large body: %d %s", r.Status, r.Body)
	}
	if r := s.Do(t, "GET", "/api/public/health", nil); r.Status != 200 || !strings.Contains(string(r.Body), `"status":"OK"`) {
		t.Fatalf("public health: %d %s", r.Status, r.Body)
	}
	r = s.Do(t, "GET", "/metrics", nil)
	for _, name := range []string{"xtrace_http_requests_total", "xtrace_http_request_duration_seconds", "xtrace_ingest_queue_items", "xtrace_metric_points_written_total"} {
		if !strings.Contains(string(r.Body), name) {
			t.Errorf("/metrics lacks %s", name)
		}
	}
}

func TestRateLimit(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	now := time.Date(2026, 2, 14, 10, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	s := servertest.Start(t, servertest.Options{Now: clock, Env: map[string]string{
		"RATE_LIMIT_QPS": "0.25", "RATE_LIMIT_BURST": "3", "API_BEARER_TOKEN": "router," + servertest.Token,
	}})
	q := "/api/public/metrics/query?name=pending_requests&step=1m&agg=last"
	for i := 0; i < 3; i++ {
		if r := s.Do(t, "GET", q, nil); r.Status != 200 {
			t.Fatalf("request %d within the burst: %d %s", i, r.Status, r.Body)
		}
	}
	r := s.Do(t, "GET", q, nil)
	var e errBody
	r.JSON(t, &e)
	// At 0.25 QPS the next token comes in 4 s.
	if r.Status != 429 || e.Code != "TOO_MANY_REQUESTS" || e.Message != "Too Many Requests" || r.Header.Get("Retry-After") != "4" {
		t.Fatalf("over the limit: %d Retry-After=%q %s", r.Status, r.Header.Get("Retry-After"), r.Body)
	}
	if e.Meta.RateLimit.Remaining != 0 || e.Meta.RateLimit.ResetAt != "2026-02-14T10:00:04Z" {
		t.Fatalf("rate_limit meta: %+v", e.Meta.RateLimit)
	}
	// Another key has its own bucket; writes are not token-limited.
	if r := s.Do(t, "GET", q, nil, "Authorization", "Bearer router"); r.Status != 200 {
		t.Fatalf("other key limited: %d", r.Status)
	}
	if r := s.Do(t, "POST", "/v1/metrics/batch", `{"metrics":[]}`); r.Status != 200 {
		t.Fatalf("push rate-limited: %d", r.Status)
	}
	advance(3 * time.Second)
	if r := s.Do(t, "GET", q, nil); r.Status != 429 || r.Header.Get("Retry-After") != "1" {
		t.Fatalf("after 3 s: %d Retry-After=%q", r.Status, r.Header.Get("Retry-After"))
	}
	advance(time.Second)
	if r := s.Do(t, "GET", q, nil); r.Status != 200 {
		t.Fatalf("after Retry-After elapsed: %d %s", r.Status, r.Body)
	}
	if m := s.Do(t, "GET", "/metrics", nil); !strings.Contains(string(m.Body), `xtrace_rate_limited_requests_total{route="GET /api/public/metrics/query"} 2`) {
		t.Errorf("rate-limited counter missing or wrong")
	}
}

// TestGracefulShutdown: on SIGTERM readiness turns off and new requests get
// 503, while requests already waiting on the database are committed and answered.
func TestGracefulShutdown(t *testing.T) {
	t.Parallel()
	s := servertest.Start(t, servertest.Options{ShutdownDelay: 700 * time.Millisecond})
	tx := holdWriteLock(t, s, "metric_points, traces")
	db := pgtest.Connect(t, s.DatabaseURL)
	results := make(chan int, 6)
	go func() { // a trace write waits too
		r, err := s.Try("POST", "/v1/l/batch", `{"trace":{"id":"inflight-trace"},"observations":[{"id":"inflight-obs"}]}`)
		if err != nil {
			results <- -1
			return
		}
		results <- r.Status
	}()
	for i := 0; i < 5; i++ {
		go func(i int) {
			r, err := s.Try("POST", "/v1/metrics/batch", fmt.Sprintf(`{"metrics":[{"name":"inflight","labels":{"i":"%d"},"value":%d}]}`, i, i))
			if err != nil {
				results <- -1
				return
			}
			results <- r.Status
		}(i)
	}
	servertest.WaitFor(t, 10*time.Second, "pushes to wait on the lock", func() bool {
		// pg_locks, not pg_stat_activity: the latter is a snapshot fixed for the rest of tx.
		return db.Int("SELECT count(DISTINCT pid) FROM pg_locks WHERE NOT granted") >= 2 // both queues have a transaction waiting
	})
	stopped := make(chan error, 1)
	go func() { stopped <- s.Stop() }()
	servertest.WaitFor(t, 5*time.Second, "readyz 503 during shutdown", func() bool {
		r, err := s.Try("GET", "/readyz", nil)
		return err == nil && r.Status == http.StatusServiceUnavailable
	})
	if r, err := s.Try("GET", "/api/public/metrics/names", nil); err == nil && r.Status != http.StatusServiceUnavailable {
		t.Errorf("new request during shutdown: %d, want 503", r.Status)
	}
	tx.Rollback() // release the writes
	for i := 0; i < 6; i++ {
		if code := <-results; code != 200 {
			t.Errorf("in-flight push answered %d, want 200", code)
		}
	}
	if err := <-stopped; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if n := db.Int("SELECT count(*) FROM metrics WHERE name = 'inflight'"); n != 5 {
		t.Fatalf("in-flight points stored: %d, want 5", n)
	}
	if n := db.Int("SELECT count(*) FROM observations WHERE trace_id = 'inflight-trace'"); n != 1 {
		t.Fatalf("in-flight trace stored: %d observations, want 1", n)
	}
	if _, err := s.Try("GET", "/healthz", nil); err == nil {
		t.Errorf("server still accepting connections after shutdown")
	}
}

// TestFullQueueAnswers429: when writes wait on the database and the queue is
// full, new pushes get 429 with Retry-After: 1 at once instead of piling up.
func TestFullQueueAnswers429(t *testing.T) {
	t.Parallel()
	s := servertest.Start(t, servertest.Options{MaxQueuedItems: 3})
	tx := holdWriteLock(t, s, "metric_points")
	blocked := make(chan int, 3)
	for i := 0; i < 3; i++ {
		go func(i int) {
			r, err := s.Try("POST", "/v1/metrics/batch", fmt.Sprintf(`{"metrics":[{"name":"q","labels":{"i":"%d"},"value":1}]}`, i))
			if err != nil {
				blocked <- -1
				return
			}
			blocked <- r.Status
		}(i)
	}
	servertest.WaitFor(t, 10*time.Second, "three pushes waiting in the queue", func() bool {
		m := s.Do(t, "GET", "/metrics", nil)
		return strings.Contains(string(m.Body), `xtrace_ingest_queue_items{queue="metrics"} 3`)
	})
	start := time.Now()
	r := s.Do(t, "POST", "/v1/metrics/batch", `{"metrics":[{"name":"q","labels":{"i":"x"},"value":1}]}`)
	if r.Status != 429 || time.Since(start) > 5*time.Second {
		t.Fatalf("push into a full queue: %d after %s, want an immediate 429", r.Status, time.Since(start))
	}
	var e errBody
	r.JSON(t, &e)
	if r.Header.Get("Retry-After") != "1" || e.Code != "TOO_MANY_REQUESTS" {
		t.Fatalf("queue full: Retry-After=%q %s", r.Header.Get("Retry-After"), r.Body)
	}
	tx.Rollback()
	for i := 0; i < 3; i++ {
		if code := <-blocked; code != 200 {
			t.Errorf("queued push answered %d, want 200 once the database moved", code)
		}
	}
}

// holdWriteLock makes writes to tables wait: it creates today's partition with
// a first push, then holds an EXCLUSIVE lock in an open transaction (roll it
// back to let writes through). The connection closes when the test ends.
func holdWriteLock(t *testing.T, s *servertest.Server, tables string) *pgtest.Tx {
	t.Helper()
	if r := s.Do(t, "POST", "/v1/metrics/batch", `{"metrics":[{"name":"warmup","value":1}]}`); r.Status != 200 {
		t.Fatalf("warm-up push: %d", r.Status)
	}
	tx := pgtest.Connect(t, s.DatabaseURL).Begin()
	tx.Exec("LOCK TABLE " + tables + " IN EXCLUSIVE MODE")
	return tx
}

// TestWrongMethodGets405: a known path with the wrong method is 405 with
// Allow in the error model, not 404.
func TestWrongMethodGets405(t *testing.T) {
	t.Parallel()
	s := servertest.Start(t, servertest.Options{})
	cases := []struct{ method, path, allow string }{
		{"GET", "/v1/metrics/batch", "POST"},
		{"DELETE", "/api/public/traces", "GET, HEAD"},
		{"POST", "/api/public/traces/abc", "GET, HEAD"},
		{"PUT", "/api/public/ingestion", "POST"},
	}
	for _, c := range cases {
		r := s.Do(t, c.method, c.path, nil)
		var body struct{ Code, Message string }
		r.JSON(t, &body)
		if r.Status != http.StatusMethodNotAllowed || r.Header.Get("Allow") != c.allow || body.Code != "METHOD_NOT_ALLOWED" {
			t.Errorf("%s %s: %d Allow=%q %+v, want 405 Allow=%q", c.method, c.path, r.Status, r.Header.Get("Allow"), body, c.allow)
		}
	}
	if r := s.Do(t, "GET", "/no/such/path", nil); r.Status != http.StatusNotFound {
		t.Errorf("unknown path: %d, want 404", r.Status)
	}
}

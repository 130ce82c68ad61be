package client

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeServer answers with the scripted responses in order, then with the last one.
type fakeServer struct {
	*httptest.Server
	calls atomic.Int32
}

type reply struct {
	status     int
	body       string
	retryAfter string
	delay      time.Duration
}

func newFake(t *testing.T, replies ...reply) *fakeServer {
	f := &fakeServer{}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := int(f.calls.Add(1)) - 1
		rep := replies[min(n, len(replies)-1)]
		if rep.delay > 0 {
			select {
			case <-time.After(rep.delay):
			case <-r.Context().Done():
				return
			}
		}
		if rep.retryAfter != "" {
			w.Header().Set("Retry-After", rep.retryAfter)
		}
		w.Header().Set("X-Request-Id", fmt.Sprintf("req-%d", n))
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(rep.status)
		fmt.Fprint(w, rep.body)
	}))
	t.Cleanup(f.Close)
	return f
}

// recordingClient records the waits instead of sleeping.
func recordingClient(t *testing.T, url string, opts ...Option) (*Client, *[]time.Duration) {
	c, err := New(url, "tok", opts...)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var waits []time.Duration
	c.sleep = func(ctx context.Context, d time.Duration) error {
		mu.Lock()
		waits = append(waits, d)
		mu.Unlock()
		return ctx.Err()
	}
	return c, &waits
}

const okNames = `{"data":["a","b"]}`

func TestRetriesHonourRetryAfter(t *testing.T) {
	f := newFake(t,
		reply{status: 429, retryAfter: "3", body: `{"message":"Too Many Requests","code":"TOO_MANY_REQUESTS","data":null}`},
		reply{status: 200, body: okNames})
	c, waits := recordingClient(t, f.URL)
	names, err := c.ListMetricNames(context.Background())
	if err != nil || strings.Join(names, ",") != "a,b" {
		t.Fatalf("names %v err %v", names, err)
	}
	if f.calls.Load() != 2 || len(*waits) != 1 || (*waits)[0] != 3*time.Second {
		t.Fatalf("calls %d waits %v; want 2 calls and one wait of exactly Retry-After (3s, above the backoff)", f.calls.Load(), *waits)
	}
}

func TestBackoffOn503BurstIsExponentialWithJitterAndCapped(t *testing.T) {
	f := newFake(t, reply{status: 503, body: `{"message":"database unavailable","code":"SERVICE_UNAVAILABLE","data":null}`},
		reply{status: 503}, reply{status: 502, body: "bad gateway"}, reply{status: 503}, reply{status: 503}, reply{status: 200, body: okNames})
	c, waits := recordingClient(t, f.URL, WithRetry(RetryPolicy{MaxAttempts: 6, BaseDelay: time.Second, MaxDelay: 5 * time.Second, Jitter: 0.2}))
	if _, err := c.ListMetricNames(context.Background()); err != nil {
		t.Fatal(err)
	}
	if f.calls.Load() != 6 || len(*waits) != 5 {
		t.Fatalf("calls %d waits %v", f.calls.Load(), *waits)
	}
	for i, w := range *waits {
		base := time.Second << i
		if base > 5*time.Second {
			base = 5 * time.Second
		}
		lo, hi := time.Duration(float64(base)*0.8), time.Duration(float64(base)*1.2)
		if w < lo || w > hi {
			t.Errorf("wait %d = %s, want within ±20%% of %s", i, w, base)
		}
	}
}

func TestGivesUpAfterMaxAttemptsWithTypedError(t *testing.T) {
	f := newFake(t, reply{status: 503, body: `{"message":"database unavailable; retry shortly","code":"SERVICE_UNAVAILABLE","data":null}`})
	c, _ := recordingClient(t, f.URL)
	_, err := c.ListMetricNames(context.Background())
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.Status != 503 || apiErr.Code != "SERVICE_UNAVAILABLE" || apiErr.RequestID != "req-3" {
		t.Fatalf("err = %#v", err)
	}
	if f.calls.Load() != int32(DefaultRetryPolicy.MaxAttempts) || !errors.Is(err, ErrUnavailable) {
		t.Fatalf("calls %d, errors.Is unavailable=%v", f.calls.Load(), errors.Is(err, ErrUnavailable))
	}
}

func TestNoRetryOnClientErrors(t *testing.T) {
	for _, c := range []struct {
		status int
		code   string
		is     func(error) bool
	}{
		{400, "BAD_REQUEST", func(err error) bool { return !IsNotFound(err) && !IsUnauthorized(err) }},
		{401, "UNAUTHORIZED", IsUnauthorized},
		{404, "NOT_FOUND", IsNotFound},
	} {
		f := newFake(t, reply{status: c.status, body: fmt.Sprintf(`{"message":"m","code":%q,"data":null}`, c.code)})
		cl, waits := recordingClient(t, f.URL)
		_, err := cl.ListMetricNames(context.Background())
		var apiErr *APIError
		if !errors.As(err, &apiErr) || apiErr.Code != c.code || !c.is(err) {
			t.Errorf("%d: err %v", c.status, err)
		}
		if f.calls.Load() != 1 || len(*waits) != 0 {
			t.Errorf("%d retried: %d calls", c.status, f.calls.Load())
		}
	}
	f := newFake(t, reply{status: 429, retryAfter: "1", body: `{"code":"TOO_MANY_REQUESTS"}`})
	cl, _ := recordingClient(t, f.URL, WithRetry(RetryPolicy{MaxAttempts: 1}))
	if _, err := cl.ListMetricNames(context.Background()); !IsRateLimited(err) {
		t.Errorf("429: %v", err)
	}
}

func TestMalformedJSONIsADecodeErrorNotRetried(t *testing.T) {
	f := newFake(t, reply{status: 200, body: `{"data": [1, 2`})
	c, _ := recordingClient(t, f.URL)
	_, err := c.ListMetricNames(context.Background())
	var de *DecodeError
	if !errors.As(err, &de) || f.calls.Load() != 1 {
		t.Fatalf("err %v after %d calls", err, f.calls.Load())
	}
}

func TestSlowResponsesTimeOutAndRetry(t *testing.T) {
	f := newFake(t, reply{status: 200, body: okNames, delay: 2 * time.Second}, reply{status: 200, body: okNames})
	c, waits := recordingClient(t, f.URL, WithTimeouts(time.Second, 100*time.Millisecond))
	start := time.Now()
	names, err := c.ListMetricNames(context.Background())
	if err != nil || len(names) != 2 {
		t.Fatalf("names %v err %v", names, err)
	}
	if f.calls.Load() != 2 || len(*waits) != 1 {
		t.Fatalf("calls %d waits %v: the slow attempt must time out and be retried", f.calls.Load(), *waits)
	}
	if took := time.Since(start); took > 1500*time.Millisecond {
		t.Fatalf("took %s: the per-request timeout did not cut the slow attempt", took)
	}
}

func TestRespectsContextDeadline(t *testing.T) {
	f := newFake(t, reply{status: 429, retryAfter: "30", body: `{"code":"TOO_MANY_REQUESTS","message":"Too Many Requests"}`})
	c, waits := recordingClient(t, f.URL)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err := c.ListMetricNames(ctx)
	if !IsRateLimited(err) || len(*waits) != 0 || f.calls.Load() != 1 {
		t.Fatalf("err %v waits %v calls %d: a wait past the deadline must not start", err, *waits, f.calls.Load())
	}
	var apiErr *APIError
	if errors.As(err, &apiErr); apiErr.RetryAfter != 30*time.Second {
		t.Fatalf("RetryAfter = %s", apiErr.RetryAfter)
	}
}

func TestNetworkErrorsAreRetried(t *testing.T) {
	f := newFake(t, reply{status: 200, body: okNames})
	url := f.URL
	f.Close() // nothing listens any more
	c, waits := recordingClient(t, url)
	_, err := c.ListMetricNames(context.Background())
	var ne *NetworkError
	if !errors.As(err, &ne) || len(*waits) != DefaultRetryPolicy.MaxAttempts-1 {
		t.Fatalf("err %v waits %v", err, *waits)
	}
}

func TestPushSplitsLargeSlices(t *testing.T) {
	var sizes []int
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct{ Metrics []map[string]any }
		_ = jsonDecode(r, &body)
		mu.Lock()
		sizes = append(sizes, len(body.Metrics))
		mu.Unlock()
		fmt.Fprintf(w, `{"accepted":%d}`, len(body.Metrics))
	}))
	defer srv.Close()
	c, _ := New(srv.URL, "tok")
	pts := make([]MetricPoint, 25000)
	for i := range pts {
		pts[i] = MetricPoint{Name: "x", Value: float64(i)}
	}
	if err := c.PushMetrics(context.Background(), pts); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(sizes) != "[10000 10000 5000]" {
		t.Fatalf("batches %v", sizes)
	}
}

func TestCachedQuerierFallsBack(t *testing.T) {
	now := time.Date(2026, 2, 14, 10, 0, 0, 0, time.UTC)
	ok := `{"data":[{"labels":{"model_uid":"m"},"values":[{"timestamp":"2026-02-14T10:00:00Z","value":5}]}],"meta":{"latest_ts":"2026-02-14T10:00:03Z","series_count":1,"truncated":false}}`
	f := newFake(t, reply{status: 200, body: ok}, reply{status: 503, body: `{"code":"SERVICE_UNAVAILABLE"}`}, reply{status: 503},
		reply{status: 503}, reply{status: 503}, reply{status: 503}, reply{status: 503}, reply{status: 503}, reply{status: 503},
		reply{status: 400, body: `{"code":"BAD_REQUEST","message":"labels: bad"}`})
	c, _ := recordingClient(t, f.URL, WithRetry(RetryPolicy{MaxAttempts: 1}))
	cq := &CachedQuerier{Client: c, Now: func() time.Time { return now }}
	q := MetricsQuery{Name: "pending_requests", Labels: map[string]string{"model_uid": "m"}, Agg: AggLast, Step: time.Minute}
	r, err := cq.Query(context.Background(), q)
	if err != nil || r.FromCache || r.Series[0].Values[0].Value != 5 {
		t.Fatalf("first query: %+v %v", r, err)
	}
	now = now.Add(20 * time.Second)
	r, err = cq.Query(context.Background(), q)
	if err != nil || !r.FromCache || r.Series[0].Values[0].Value != 5 || !IsStale(r.Meta, 15*time.Second, now) || r.Err == nil {
		t.Fatalf("fallback within TTL: %+v %v", r, err)
	}
	now = now.Add(11 * time.Second) // 31 s after the good answer: past the default TTL
	if _, err := cq.Query(context.Background(), q); err == nil {
		t.Fatal("served a cached answer older than the TTL")
	}
	for f.calls.Load() < 9 {
		_, _ = cq.Query(context.Background(), q)
	}
	// A 400 is the caller's bug: never masked by the cache.
	now = now.Add(-25 * time.Second)
	if _, err := cq.Query(context.Background(), q); err == nil || IsRateLimited(err) {
		t.Fatalf("400 masked by the cache: %v", err)
	}
}

func TestIsStale(t *testing.T) {
	now := time.Date(2026, 2, 14, 10, 0, 30, 0, time.UTC)
	ts := now.Add(-16 * time.Second)
	if !IsStale(QueryMeta{LatestTS: &ts}, 15*time.Second, now) || IsStale(QueryMeta{LatestTS: &ts}, 30*time.Second, now) || !IsStale(QueryMeta{}, time.Hour, now) {
		t.Fatal("IsStale")
	}
}

func TestImportsNoServerOrKubernetesPackages(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").Output()
	if err != nil {
		t.Fatal(err)
	}
	deps := strings.Fields(string(out))
	if len(deps) != 1 || deps[0] != "github.com/xtrace-dev/xtrace-operator/server/client" {
		t.Fatalf("the SDK depends on %v; it must use the standard library only (no server or Kubernetes packages)", deps)
	}
}

func TestNewValidates(t *testing.T) {
	for _, bad := range []string{"", "localhost:8742", "ftp://x"} {
		if _, err := New(bad, "t"); err == nil {
			t.Errorf("New(%q) accepted", bad)
		}
	}
	if _, err := New("http://x", ""); err == nil {
		t.Error("New without credentials accepted")
	}
	if _, err := New("http://x", "", WithBasicAuth("pk", "sk")); err != nil {
		t.Error(err)
	}
}

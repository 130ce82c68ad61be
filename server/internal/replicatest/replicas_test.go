package replicatest

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xtrace-dev/xtrace-operator/internal/pgtest"
	"github.com/xtrace-dev/xtrace-operator/server/internal/servertest"
)

// seedTime is where the seeded points lie: far from the router's freshness
// window, so that no freshness re-check moves their queries to the primary.
var seedTime = time.Date(2026, 2, 14, 10, 0, 0, 0, time.UTC)

// seed writes points of metric name (one series per label value of "batch")
// and a trace with an observation in a session; every write is acknowledged.
func seed(t *testing.T, s *servertest.Server, name, traceID string) {
	t.Helper()
	var pts []map[string]any
	for i := 0; i < 5; i++ {
		pts = append(pts, map[string]any{"name": name, "labels": map[string]string{"node_id": "node-1"},
			"value": float64(i), "timestamp": seedTime.Add(time.Duration(i) * time.Minute).Format(time.RFC3339)})
	}
	if r := s.Do(t, "POST", "/v1/metrics/batch", map[string]any{"metrics": pts}); r.Status != 200 {
		t.Fatalf("push: %d %s", r.Status, r.Body)
	}
	r := s.Do(t, "POST", "/v1/l/batch", map[string]any{
		"trace":        map[string]any{"id": traceID, "name": "chat", "sessionId": "session-" + traceID, "timestamp": seedTime.Format(time.RFC3339)},
		"observations": []map[string]any{{"id": traceID + "-gen", "type": "GENERATION", "model": "m", "startTime": seedTime.Format(time.RFC3339)}},
	})
	if r.Status != 200 {
		t.Fatalf("trace batch: %d %s", r.Status, r.Body)
	}
}

func promTime(t time.Time) string { return strconv.FormatInt(t.Unix(), 10) }

func seedQuery(name string) string {
	return "/api/public/metrics/query?" + url.Values{"name": {name}, "from": {seedTime.Format(time.RFC3339)},
		"to": {seedTime.Add(time.Hour).Format(time.RFC3339)}, "agg": {"sum"}, "step": {"1h"}}.Encode()
}

// TestEveryReadRouteIsServedByTheReplica: each read-only route is answered by
// the replica, with the primary's data; the consistency header sends a read
// to the primary; writes read nothing; a write becomes visible to reads.
func TestEveryReadRouteIsServedByTheReplica(t *testing.T) {
	t.Parallel()
	r := startReplicated(t, nil)
	seed(t, r.server, "gpu_utilization", "trace-1")
	r.db.WaitCaughtUp(t, 30*time.Second)

	routes := []string{
		seedQuery("gpu_utilization"),
		"/api/public/metrics/names",
		"/api/public/metrics/labels?name=gpu_utilization",
		"/api/public/traces",
		"/api/public/traces/trace-1",
		"/api/public/observations?traceId=trace-1",
		"/api/public/observations/trace-1-gen",
		"/api/public/sessions",
		"/api/public/sessions/session-trace-1",
		"/api/public/metrics/daily",
		// The Prometheus API.
		"/api/v1/query?" + url.Values{"query": {"sum(gpu_utilization)"}, "time": {promTime(seedTime.Add(4 * time.Minute))}}.Encode(),
		"/api/v1/query_range?" + url.Values{"query": {"gpu_utilization"}, "start": {promTime(seedTime)},
			"end": {promTime(seedTime.Add(5 * time.Minute))}, "step": {"60"}}.Encode(),
		"/api/v1/series?" + url.Values{"match[]": {"gpu_utilization"}, "start": {promTime(seedTime)}}.Encode(),
		"/api/v1/labels",
		"/api/v1/label/node_id/values",
	}
	for _, path := range routes {
		status, pool := r.servedBy(t, "GET", path, nil)
		if status != 200 || pool != r.replica {
			t.Errorf("GET %s: %d served by %q; want 200 from %s", path, status, pool, r.replica)
		}
		status, pool = r.servedBy(t, "GET", path, nil, "X-Xtrace-Consistency", "strong")
		if status != 200 || pool != "primary" {
			t.Errorf("GET %s with X-Xtrace-Consistency: strong: %d served by %q; want 200 from the primary", path, status, pool)
		}
	}
	// The replica's answers are the primary's data.
	var q struct {
		Data []struct {
			Values []struct{ Value float64 } `json:"values"`
		} `json:"data"`
	}
	r.server.Do(t, "GET", seedQuery("gpu_utilization"), nil).JSON(t, &q)
	if len(q.Data) != 1 || len(q.Data[0].Values) != 1 || q.Data[0].Values[0].Value != 0+1+2+3+4 {
		t.Errorf("query from the replica: %+v; want one series summing to 10", q.Data)
	}
	if resp := r.server.Do(t, "GET", "/api/public/traces/trace-1", nil); !strings.Contains(string(resp.Body), `"trace-1-gen"`) {
		t.Errorf("trace from the replica lacks its observation: %s", resp.Body)
	}

	if status, pool := r.servedBy(t, "POST", "/v1/metrics/batch", `{"metrics":[{"name":"w","value":1}]}`); status != 200 || pool != "" {
		t.Errorf("a write: %d with pool %q; want 200 and no read pool", status, pool)
	}
	resp := r.server.Do(t, "GET", "/api/public/metrics/names", nil, "X-Xtrace-Consistency", "always")
	if resp.Status != 400 || !strings.Contains(string(resp.Body), "X-Xtrace-Consistency") {
		t.Errorf("unknown consistency: %d %s; want 400 naming the header", resp.Status, resp.Body)
	}

	// A write reaches the replica's readers.
	acked := time.Now()
	seed(t, r.server, "kv_cache_usage", "trace-2")
	servertest.WaitFor(t, 30*time.Second, "the new write to be readable", func() bool {
		resp := r.server.Do(t, "GET", seedQuery("kv_cache_usage"), nil)
		return resp.Status == 200 && strings.Contains(string(resp.Body), `"series_count":1`)
	})
	t.Logf("a write acknowledged at t0 was readable (default consistency) after %s", time.Since(acked).Round(time.Millisecond))

	m := scrape(t, r.server)
	for _, key := range []string{
		`xtrace_db_pool_max_connections{pool="primary"}`, `xtrace_db_pool_max_connections{pool="` + r.replica + `"}`,
		`xtrace_db_replica_lag_seconds{pool="` + r.replica + `"}`,
	} {
		if _, ok := m[key]; !ok {
			t.Errorf("/metrics lacks %s", key)
		}
	}
	if m[`xtrace_db_pool_reads_total{pool="`+r.replica+`"}`] < float64(len(routes)) ||
		m[`xtrace_http_read_requests_total{pool="`+r.replica+`",route="GET /api/public/metrics/query"}`] < 1 {
		t.Errorf("/metrics does not count the replica's reads: %v", m)
	}
}

// TestLagGuardMovesReadsToThePrimaryAndBack: with the replica's replay paused
// and writes going on, its lag passes XTRACE_READ_MAX_LAG: reads go to the
// primary (and see the newest write); once replay resumes they come back.
func TestLagGuardMovesReadsToThePrimaryAndBack(t *testing.T) {
	t.Parallel()
	r := startReplicated(t, map[string]string{"XTRACE_READ_MAX_LAG": "300ms"})
	seed(t, r.server, "before_pause", "trace-1")
	replica := pgtest.Connect(t, r.db.Replica.URL("postgres"))
	replica.Exec("SELECT pg_wal_replay_pause()")

	seed(t, r.server, "during_pause", "trace-2") // the replica does not replay this
	r.waitState(t, "lagging")
	status, pool := r.servedBy(t, "GET", seedQuery("during_pause"), nil)
	if status != 200 || pool != "primary" {
		t.Fatalf("read while the replica lags: %d from %q; want the primary", status, pool)
	}
	if resp := r.server.Do(t, "GET", seedQuery("during_pause"), nil); !strings.Contains(string(resp.Body), `"series_count":1`) {
		t.Fatalf("the write made while the replica lags is not read back: %s", resp.Body)
	}

	replica.Exec("SELECT pg_wal_replay_resume()")
	r.waitState(t, "serving")
	status, pool = r.servedBy(t, "GET", seedQuery("during_pause"), nil)
	if status != 200 || pool != r.replica {
		t.Fatalf("read after replay resumed: %d from %q; want %s", status, pool, r.replica)
	}
	if resp := r.server.Do(t, "GET", seedQuery("during_pause"), nil); !strings.Contains(string(resp.Body), `"series_count":1`) {
		t.Fatalf("the replica, caught up, lacks the write: %s", resp.Body)
	}
}

// TestStaleLookingSeriesAreAskedOfThePrimary: a replica whose lag the guard
// tolerates still lacks the newest points. A query ending inside the
// router's 15 s freshness window whose answer makes a series look stale is
// answered by the primary, so a lagging replica never makes a live node look
// stale; fresh-looking answers and older windows stay on the replica.
func TestStaleLookingSeriesAreAskedOfThePrimary(t *testing.T) {
	t.Parallel()
	r := startReplicated(t, map[string]string{"XTRACE_READ_MAX_LAG": "1h"})
	push := func(name string, at time.Time) {
		body := fmt.Sprintf(`{"metrics":[{"name":%q,"labels":{"replica_id":"0"},"value":1,"timestamp":%q}]}`, name, at.Format(time.RFC3339Nano))
		if resp := r.server.Do(t, "POST", "/v1/metrics/batch", body); resp.Status != 200 {
			t.Fatalf("push: %d %s", resp.Status, resp.Body)
		}
	}
	now := time.Now().UTC()
	push("pending_requests", now.Add(-40*time.Second)) // stale by the router's rule until the next push
	push("kv_cache_usage", now.Add(-2*time.Second))    // fresh
	r.db.WaitCaughtUp(t, 30*time.Second)
	pgtest.Connect(t, r.db.Replica.URL("postgres")).Exec("SELECT pg_wal_replay_pause()")
	push("pending_requests", time.Now().UTC()) // live again, on the primary only

	router := func(name string) string {
		return "/api/public/metrics/query?" + url.Values{"name": {name}, "labels": {`{"replica_id":"0"}`}, "step": {"1m"}, "agg": {"last"}}.Encode()
	}
	status, pool := r.servedBy(t, "GET", router("pending_requests"), nil)
	if status != 200 || pool != "primary" {
		t.Errorf("router query whose series looks stale on the replica: %d from %q; want the primary", status, pool)
	}
	var res struct {
		Meta struct {
			LatestTS time.Time `json:"latest_ts"`
		} `json:"meta"`
	}
	r.server.Do(t, "GET", router("pending_requests"), nil).JSON(t, &res)
	if age := time.Since(res.Meta.LatestTS); age > 15*time.Second {
		t.Errorf("the live series reads %s old; want its newest point (on the primary)", age)
	}
	if status, pool := r.servedBy(t, "GET", router("kv_cache_usage"), nil); status != 200 || pool != r.replica {
		t.Errorf("router query fresh on the replica: %d from %q; want %s", status, pool, r.replica)
	}
	past := "/api/public/metrics/query?" + url.Values{"name": {"pending_requests"}, "to": {now.Add(-time.Minute).Format(time.RFC3339)}}.Encode()
	if status, pool := r.servedBy(t, "GET", past, nil); status != 200 || pool != r.replica {
		t.Errorf("query ending before the freshness window: %d from %q; want %s", status, pool, r.replica)
	}
	if n := scrape(t, r.server)["xtrace_read_freshness_rechecks_total"]; n < 2 {
		t.Errorf("xtrace_read_freshness_rechecks_total = %v; want the two stale-looking answers counted", n)
	}
}

// load sends reads round the seeded routes from a few clients until stop,
// counting answers by status (-1: transport error) and by time.
type load struct {
	stop     atomic.Bool
	wg       sync.WaitGroup
	mu       sync.Mutex
	statuses map[int]int
	failures []string
	ok       atomic.Int64
}

func startReads(s *servertest.Server, paths []string, clients int) *load {
	l := &load{statuses: map[int]int{}}
	for c := 0; c < clients; c++ {
		l.wg.Add(1)
		go func(c int) {
			defer l.wg.Done()
			for i := c; !l.stop.Load(); i++ {
				path := paths[i%len(paths)]
				resp, err := s.Try("GET", path, nil)
				status := -1
				if err == nil {
					status = resp.Status
				}
				l.mu.Lock()
				l.statuses[status]++
				if status != 200 {
					detail := fmt.Sprint(err)
					if resp != nil {
						detail = string(resp.Body)
					}
					l.failures = append(l.failures, fmt.Sprintf("GET %s: %d %s", path, status, detail))
				} else {
					l.ok.Add(1)
				}
				l.mu.Unlock()
			}
		}(c)
	}
	return l
}

func (l *load) finish() (map[int]int, []string) {
	l.stop.Store(true)
	l.wg.Wait()
	return l.statuses, l.failures
}

// waitReads waits until n more reads have succeeded.
func (l *load) waitReads(t *testing.T, n int64, what string) {
	t.Helper()
	target := l.ok.Load() + n
	servertest.WaitFor(t, 30*time.Second, what, func() bool { return l.ok.Load() >= target })
}

var seededReads = []string{seedQuery("gpu_utilization"), "/api/public/traces/trace-1", "/api/public/traces", "/api/public/metrics/labels?name=gpu_utilization"}

// TestReplicaKilledAndRestarted: reads keep answering while the replica dies
// (a read it fails is retried once inside the store) and come back to it
// once it runs again.
func TestReplicaKilledAndRestarted(t *testing.T) {
	t.Parallel()
	r := startReplicated(t, nil)
	seed(t, r.server, "gpu_utilization", "trace-1")
	r.db.WaitCaughtUp(t, 30*time.Second)
	reads := startReads(r.server, seededReads, 4)
	defer reads.finish()
	replicaReads := func() float64 { return scrape(t, r.server)[`xtrace_db_pool_reads_total{pool="`+r.replica+`"}`] }
	primaryReads := func() float64 { return scrape(t, r.server)[`xtrace_db_pool_reads_total{pool="primary"}`] }
	servertest.WaitFor(t, 30*time.Second, "reads on the replica", func() bool { return replicaReads() > 20 })

	r.db.Replica.Crash()
	r.waitState(t, "down")
	before := primaryReads()
	reads.waitReads(t, 40, "reads while the replica is down")
	if primaryReads() <= before {
		t.Fatal("with the replica down, the primary answered no reads")
	}

	if err := r.db.Replica.Restart(context.Background()); err != nil {
		t.Fatal(err)
	}
	r.waitState(t, "serving")
	before = replicaReads()
	servertest.WaitFor(t, 30*time.Second, "reads on the restarted replica", func() bool { return replicaReads() > before+20 })

	statuses, failures := reads.finish()
	if len(failures) > 0 {
		t.Fatalf("%d of %d reads failed around the replica's death and restart; first: %s", len(failures), sum(statuses), failures[0])
	}
	t.Logf("%d reads, none failed; reads retried after a replica failure: %v", statuses[200],
		scrape(t, r.server)[`xtrace_db_replica_read_retries_total{pool="`+r.replica+`"}`])
}

// TestPrimaryKilledWhileTheReplicaLives: reads keep answering from the
// replica and /readyz stays ready; writes get 503; once the primary is back
// every acknowledged write is there, on the primary and on the replica.
func TestPrimaryKilledWhileTheReplicaLives(t *testing.T) {
	t.Parallel()
	r := startReplicated(t, nil)
	seed(t, r.server, "gpu_utilization", "trace-1")
	r.db.WaitCaughtUp(t, 30*time.Second)
	reads := startReads(r.server, seededReads, 2)
	defer reads.finish()

	var (
		writes servertest.Outcomes
		stop   atomic.Bool
		wg     sync.WaitGroup
	)
	for c := 0; c < 2; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			for b := 0; !stop.Load(); b++ {
				id := fmt.Sprintf("c%d-b%d", c, b)
				var pts []map[string]any
				for i := 0; i < 10; i++ {
					pts = append(pts, map[string]any{"name": "outage", "labels": map[string]string{"batch": id}, "value": i,
						"timestamp": seedTime.Add(time.Duration(i) * time.Second).Format(time.RFC3339)})
				}
				resp, err := r.server.Try("POST", "/v1/metrics/batch", map[string]any{"metrics": pts})
				writes.Record(id, resp, err)
				time.Sleep(5 * time.Millisecond)
			}
		}(c)
	}
	defer func() { stop.Store(true); wg.Wait() }()
	servertest.WaitFor(t, 30*time.Second, "acknowledged writes", func() bool { return writes.Count(200) >= 20 })

	r.db.Primary.Crash()
	servertest.WaitFor(t, 30*time.Second, "writes to get 503", func() bool { return writes.Count(503) >= 3 })
	reads.waitReads(t, 40, "reads with the primary down")
	ready := r.server.Do(t, "GET", "/readyz", nil)
	if ready.Status != 200 || !strings.Contains(string(ready.Body), `"primary"`) {
		t.Errorf("/readyz with the primary down and the replica serving: %d %s; want 200 saying the primary is unavailable", ready.Status, ready.Body)
	}
	ackedAtCrash := writes.Acked()
	onReplica := storedBatches(t, r.db.ReplicaURL())
	missing := 0
	for id := range ackedAtCrash {
		if onReplica[id] != 10 {
			missing++
		}
	}
	t.Logf("primary killed: %d acknowledged batches, %d of them not yet on the replica (asynchronous replication)", len(ackedAtCrash), missing)

	if err := r.db.Primary.Restart(context.Background()); err != nil {
		t.Fatal(err)
	}
	servertest.WaitFor(t, 30*time.Second, "writes to succeed again", func() bool { return writes.Count(200) > len(ackedAtCrash)+5 })
	stop.Store(true)
	wg.Wait()
	statuses, failures := reads.finish()
	if len(failures) > 0 {
		t.Fatalf("%d of %d reads failed while the primary was down; first: %s", len(failures), sum(statuses), failures[0])
	}
	acked := writes.Acked()
	for code, n := range writes.Statuses() {
		if code != 200 && code != 503 {
			t.Errorf("writes answered %d %d times; want only 200 or 503", code, n)
		}
	}
	r.db.WaitCaughtUp(t, 60*time.Second)
	for name, dbURL := range map[string]string{"primary": r.db.PrimaryURL(), "replica": r.db.ReplicaURL()} {
		stored := storedBatches(t, dbURL)
		for id := range acked {
			if stored[id] != 10 {
				t.Errorf("%s: acknowledged batch %s has %d of 10 points", name, id, stored[id])
			}
		}
	}
	t.Logf("writes: %v; reads: %v; all %d acknowledged batches stored on both", writes.Statuses(), statuses, len(acked))
}

// storedBatches counts the points of each "outage" batch, through the
// metrics view that SQL users read.
func storedBatches(t *testing.T, dbURL string) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, row := range pgtest.Connect(t, dbURL).Rows(`SELECT labels->>'batch', count(*) FROM metrics WHERE name = 'outage' GROUP BY 1`) {
		out[row[0].(string)] = int(row[1].(int64))
	}
	return out
}

func sum(m map[int]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

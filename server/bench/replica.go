package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/xtrace-dev/xtrace-operator/internal/devproc"
	"github.com/xtrace-dev/xtrace-operator/internal/pgtest"
	"github.com/xtrace-dev/xtrace-operator/server/internal/metrics"
	"github.com/xtrace-dev/xtrace-operator/server/internal/store"
)

// With -replica the run goes on with a streaming replica of the bench's
// PostgreSQL and the server restarted with DATABASE_READ_URL on it:
//
//   - router queries/s the replica serves, with their latency, and the
//     replica's PostgreSQL CPU per query (queries/s per replica core), next to
//     the same load on the primary (X-Xtrace-Consistency: strong);
//   - under live ingest at the fleet's cadence (every series every 5 s), how
//     far behind the primary the replica's newest point of each router series
//     is, and whether a live series ever reads stale (older than 15 s) on the
//     replica while fresh on the primary — at the natural lag, near the lag
//     guard (replay delayed 1.5 s), and past it (12 s, which the guard skips).

func (b *bench) replicaPhases() []phase {
	return []phase{
		{"start replica", b.startReplica},
		{"server with replica", b.serverWithReplica},
		{"replica router rate", b.replicaRouterRate},
		{"replica freshness", b.replicaFreshness},
	}
}

func (b *bench) startReplica(ctx context.Context) error {
	began := time.Now()
	var err error
	b.replica, err = b.cluster.StartReplica(ctx, pgtest.Options{DataDir: filepath.Join(b.dataDir, "replica"), Durable: true,
		Settings: []string{"max_wal_size=16GB", "checkpoint_timeout=1h", "shared_buffers=512MB", "hot_standby_feedback=on"}})
	if err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	if err := b.replica.WaitReplayed(wctx, b.cluster); err != nil {
		return err
	}
	fmt.Printf("replica: base backup and catch-up in %s\n", time.Since(began).Round(time.Millisecond))
	return nil
}

func (b *bench) replicaName() string { return "replica:127.0.0.1:" + strconv.Itoa(b.replica.Port) }

func (b *bench) serverWithReplica(context.Context) error {
	b.stopServer()
	if err := b.runServer("DATABASE_READ_URL=" + b.replica.URL(serverDB)); err != nil {
		return err
	}
	serving := `xtrace_db_replica_state{pool="` + b.replicaName() + `",state="serving"}`
	return waitUntil(time.Minute, "the replica serving reads", func() bool { return scrapeMetrics(b.base)[serving] == 1 })
}

// routerPath is the router query of SPEC §7.1 for model m, over the hour
// ending at `to`.
func routerPath(m int, to time.Time) string {
	return "/api/public/metrics/query?" + url.Values{"name": {"pending_requests"}, "labels": {fmt.Sprintf(`{"model_uid":"model-%d"}`, m)},
		"from": {to.Add(-time.Hour).Format(time.RFC3339)}, "to": {to.Format(time.RFC3339)}, "step": {"1m"}, "agg": {"last"}}.Encode()
}

// replicaRouterRate runs the router query from several clients for
// replicaDuration, first on the replica, then on the primary.
func (b *bench) replicaRouterRate(context.Context) error {
	for _, target := range []struct {
		name   string
		strong bool
		pid    int
	}{{"replica", false, b.replica.Pid()}, {"primary", true, b.cluster.Pid()}} {
		pool := b.replicaName()
		if target.strong {
			pool = store.PrimaryPool
		}
		readsKey := `xtrace_db_pool_reads_total{pool="` + pool + `"}`
		reads0 := scrapeMetrics(b.base)[readsKey]
		pgCPU0, srvCPU0 := treeCPU(target.pid), treeCPU(b.server.Process.Pid)
		n, lat, err := routerLoad(b.base, target.strong, b.o.replicaClients, b.o.replicaDuration, b.end)
		if err != nil {
			return fmt.Errorf("router load on the %s: %w", target.name, err)
		}
		pgCPU, srvCPU := treeCPU(target.pid)-pgCPU0, treeCPU(b.server.Process.Pid)-srvCPU0
		if reads := scrapeMetrics(b.base)[readsKey] - reads0; reads < float64(2*n) {
			return fmt.Errorf("%d router queries, but the %s pool answered only %.0f reads (2 per query)", n, target.name, reads)
		}
		qps := float64(n) / b.o.replicaDuration.Seconds()
		fmt.Printf("router queries on the %s: %d in %s (%d clients), postgres used %.1f CPU-s, xtrace %.1f CPU-s\n",
			target.name, n, b.o.replicaDuration, b.o.replicaClients, pgCPU, srvCPU)
		k := target.name + "_router_"
		b.result[k+"qps"] = round(qps, 0)
		b.result[k+"p50_ms"], b.result[k+"p95_ms"], b.result[k+"p99_ms"] = lat[0], lat[1], lat[2]
		b.result[k+"postgres_cpu_ms_per_query"] = round(pgCPU*1000/float64(n), 3)
		b.result[k+"qps_per_postgres_core"] = round(float64(n)/pgCPU, 0)
		b.result[k+"qps_per_xtrace_core"] = round(float64(n)/srvCPU, 0)
	}
	return nil
}

// routerLoad sends router queries (over a window ending at `to`, outside the
// freshness window, so every answer comes from the pool asked) from clients
// for d and returns how many were answered and their p50/p95/p99 in ms.
func routerLoad(base string, strong bool, clients int, d time.Duration, to time.Time) (int, [3]float64, error) {
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
	deadline := time.Now().Add(d)
	lat := make([][]float64, clients)
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			for i := c; time.Now().Before(deadline); i += clients {
				req, _ := http.NewRequest("GET", base+routerPath(i%50, to), nil)
				req.Header.Set("Authorization", "Bearer "+benchToken)
				if strong {
					req.Header.Set("X-Xtrace-Consistency", "strong")
				}
				began := time.Now()
				if err := send(client, req); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				lat[c] = append(lat[c], float64(time.Since(began).Microseconds())/1000)
			}
		}(c)
	}
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil {
		return 0, [3]float64{}, err
	}
	n, pct := percentiles(lat)
	return n, pct, nil
}

// freshnessResult is one replay delay's comparison of the replica with the primary.
type freshnessResult struct {
	delay        time.Duration
	queries      int       // router queries compared
	series       int       // series compared
	behind       []float64 // seconds the replica's newest point trails the primary's, per series
	maxAgeOnRep  float64   // oldest newest-point seen on the replica, seconds
	flips        int       // series stale (> 15 s) on the replica while fresh on the primary
	absent       int       // series the primary has and the replica lacks
	guardServing float64   // fraction of samples the server's lag guard let the replica serve
}

// replicaFreshness compares router answers of the replica and the primary
// under live ingest, at several replay delays.
func (b *bench) replicaFreshness(ctx context.Context) error {
	primary, err := store.Open(ctx, store.Options{URL: b.cluster.URL(serverDB), MaxConns: 4})
	if err != nil {
		return err
	}
	defer primary.Close()
	replica, err := store.Open(ctx, store.Options{URL: b.replica.URL(serverDB), MaxConns: 4})
	if err != nil {
		return err
	}
	defer replica.Close()

	lctx, stopIngest := context.WithCancel(ctx)
	defer stopIngest()
	ingestErr := make(chan error, 1)
	go func() { ingestErr <- b.liveIngest(lctx) }()
	time.Sleep(6 * time.Second) // every series gets a point at the live cadence before sampling

	for _, delay := range []time.Duration{0, 1500 * time.Millisecond, 12 * time.Second} {
		if err := b.replica.DelayReplay(ctx, delay); err != nil {
			return err
		}
		time.Sleep(delay + 2*time.Second) // the delay takes hold on new commits
		res, err := b.compareRouterAnswers(ctx, primary, replica, delay)
		if err != nil {
			return err
		}
		b.freshness = append(b.freshness, res)
		select {
		case err := <-ingestErr:
			return fmt.Errorf("live ingest: %w", err)
		default:
		}
	}
	stopIngest()
	if err := <-ingestErr; err != nil && ctx.Err() == nil {
		return fmt.Errorf("live ingest: %w", err)
	}
	return b.replica.DelayReplay(ctx, 0)
}

// liveIngest pushes the fleet at its real cadence until ctx ends: every
// series every 5 s, in ten slices 500 ms apart (agents push at their own
// moments), each point stamped with the time it is sent.
func (b *bench) liveIngest(ctx context.Context) error {
	client := &http.Client{Timeout: 30 * time.Second}
	const slices = 10
	tick := time.NewTicker(b.o.interval / slices)
	defer tick.Stop()
	model := newValueModel(b.fleet)
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		now := time.Now().UTC().Format(time.RFC3339Nano)
		var pts []map[string]any
		for si := i % slices; si < len(b.fleet); si += slices {
			s := b.fleet[si]
			pts = append(pts, map[string]any{"name": s.name, "labels": s.labels, "value": model.value(si), "timestamp": now})
		}
		body, _ := json.Marshal(map[string]any{"metrics": pts})
		req, _ := http.NewRequestWithContext(ctx, "POST", b.base+"/v1/metrics/batch", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+benchToken)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("live push answered %d", resp.StatusCode)
		}
	}
}

// compareRouterAnswers asks the replica, then the primary, the router query
// of one model after another (4 series each) for replicaDuration, and
// compares each series' newest point.
func (b *bench) compareRouterAnswers(ctx context.Context, primary, replica *store.Store, delay time.Duration) (freshnessResult, error) {
	res := freshnessResult{delay: delay}
	serving := `xtrace_db_replica_state{pool="` + b.replicaName() + `",state="serving"}`
	servingSamples := 0
	deadline := time.Now().Add(b.o.replicaDuration)
	for i := 0; time.Now().Before(deadline); i++ {
		q, err := metrics.NewQuery(metrics.QueryInput{Name: "pending_requests", Labels: map[string]string{"model_uid": fmt.Sprintf("model-%d", i%50)},
			Step: time.Minute, Agg: string(metrics.AggLast)}, time.Now())
		if err != nil {
			return res, err
		}
		fromReplica, err := metrics.Run(ctx, replica, "default", q)
		if err != nil {
			return res, fmt.Errorf("router query on the replica: %w", err)
		}
		fromPrimary, err := metrics.Run(ctx, primary, "default", q)
		if err != nil {
			return res, fmt.Errorf("router query on the primary: %w", err)
		}
		now := time.Now()
		onReplica := map[string]time.Time{}
		for _, s := range fromReplica.Series {
			onReplica[metrics.CanonicalLabels(s.Labels)] = s.LatestTS
		}
		for _, s := range fromPrimary.Series {
			r, ok := onReplica[metrics.CanonicalLabels(s.Labels)]
			res.series++
			if !ok {
				res.absent++
				continue
			}
			res.behind = append(res.behind, s.LatestTS.Sub(r).Seconds())
			ageR, ageP := now.Sub(r), now.Sub(s.LatestTS)
			res.maxAgeOnRep = max(res.maxAgeOnRep, ageR.Seconds())
			if ageR > 15*time.Second && ageP <= 15*time.Second {
				res.flips++
			}
		}
		res.queries++
		if scrapeMetrics(b.base)[serving] == 1 {
			servingSamples++
		}
		time.Sleep(200 * time.Millisecond)
	}
	res.guardServing = float64(servingSamples) / float64(res.queries)
	sort.Float64s(res.behind)
	return res, nil
}

func (b *bench) reportReplica() {
	r := b.result
	fmt.Printf("\nread replica (streaming, same machine)\n")
	for _, t := range []string{"replica", "primary"} {
		k := t + "_router_"
		fmt.Printf("%-34s %8.0f q/s   p50/p95/p99 %.1f / %.1f / %.1f ms; %.0f q/s per PostgreSQL core, %.0f per xtrace core\n",
			"router queries on the "+t, r[k+"qps"], r[k+"p50_ms"], r[k+"p95_ms"], r[k+"p99_ms"], r[k+"qps_per_postgres_core"], r[k+"qps_per_xtrace_core"])
	}
	fmt.Printf("\nlive ingest, every series every %s; router answers of the replica vs the primary\n", b.o.interval)
	fmt.Printf("%-12s %8s %8s %14s %14s %12s %8s %8s %10s\n", "replay delay", "queries", "series", "behind p50 (s)", "behind max (s)", "max age (s)", "stale*", "absent", "guard uses")
	for _, f := range b.freshness {
		p50, mx := 0.0, 0.0
		if n := len(f.behind); n > 0 {
			p50, mx = f.behind[n/2], f.behind[n-1]
		}
		fmt.Printf("%-12s %8d %8d %14.2f %14.2f %12.1f %8d %8d %9.0f%%\n", f.delay, f.queries, f.series, p50, mx, f.maxAgeOnRep, f.flips, f.absent, 100*f.guardServing)
		k := fmt.Sprintf("freshness_delay_%dms_", f.delay.Milliseconds())
		r[k+"behind_p50_s"], r[k+"behind_max_s"], r[k+"max_age_s"] = round(p50, 3), round(mx, 3), round(f.maxAgeOnRep, 1)
		r[k+"stale_on_replica_only"], r[k+"absent"], r[k+"guard_serving_fraction"] = float64(f.flips), float64(f.absent), round(f.guardServing, 3)
	}
	fmt.Println("* series stale (newest point > 15 s old) on the replica while fresh on the primary")
}

// scrapeMetrics reads the server's /metrics into "name{labels}" → value.
func scrapeMetrics(base string) map[string]float64 {
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		return map[string]float64{}
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return devproc.ParseMetrics(body)
}

func waitUntil(timeout time.Duration, what string, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil
}

// Command bench is `make bench`: it starts a throwaway PostgreSQL and the real
// xtrace binary, loads the Nebula fleet profile over HTTP, and prints, from one
// run: end-to-end ingest points/s next to raw COPY of the same points into the
// same schema (the ratio is the figure), bytes per point on disk, query
// latency percentiles of the router/dashboard/fleet queries (SPEC §7.1), and
// the time to prune one day. Results also go to a JSON file.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/xtrace-dev/xtrace-operator/internal/devproc"
	"github.com/xtrace-dev/xtrace-operator/internal/pgtest"
	"github.com/xtrace-dev/xtrace-operator/server/internal/metrics"
	"github.com/xtrace-dev/xtrace-operator/server/internal/store"
)

type options struct {
	server   string
	steps    int
	interval time.Duration
	batch    int
	clients  int
	reps     int
	out      string
	traces   int
}

func main() {
	var o options
	flag.StringVar(&o.server, "server", "bin/xtrace", "xtrace binary to benchmark")
	flag.IntVar(&o.steps, "steps", 1000, "snapshots per series (1000 = 3.8 M points; 17280 = one full day at 5 s)")
	flag.DurationVar(&o.interval, "interval", 5*time.Second, "time between snapshots")
	flag.IntVar(&o.batch, "batch", 2000, "points per push request")
	flag.IntVar(&o.clients, "clients", 8, "concurrent pushing clients (agents pushing at once)")
	flag.IntVar(&o.reps, "reps", 60, "repetitions of each query (≥ 50)")
	flag.StringVar(&o.out, "out", "bench-result.json", "JSON result file")
	flag.IntVar(&o.traces, "traces", 20000, "gateway requests to push to /v1/l/batch (one trace + 2 observations each)")
	flag.Parse()
	if o.reps < 50 {
		o.reps = 50
	}
	if err := run(o); err != nil {
		log.Fatalf("bench: %v", err)
	}
}

// fleet is the Nebula profile: 100 nodes × 8 GPUs × 4 metrics + 200 replicas × 3 metrics = 3,800 series.
type series struct {
	name   string
	labels map[string]string
}

func fleet() []series {
	var out []series
	for n := 0; n < 100; n++ {
		for g := 0; g < 8; g++ {
			for _, m := range []string{"gpu_utilization", "gpu_temperature", "gpu_memory_used_mb", "gpu_memory_total_mb"} {
				out = append(out, series{m, map[string]string{"node_id": fmt.Sprintf("node-%d", n), "gpu_index": strconv.Itoa(g)}})
			}
		}
	}
	for r := 0; r < 200; r++ {
		for _, m := range []string{"kv_cache_usage", "pending_requests", "prefix_cache_hit_rate"} {
			out = append(out, series{m, map[string]string{
				"model_uid": fmt.Sprintf("model-%d", r/4), "replica_id": strconv.Itoa(r % 4), "node_id": fmt.Sprintf("node-%d", r%100)}})
		}
	}
	return out
}

func value(si, step int) float64 { return float64((si*7919+step*104729)%10000) / 100 }

func run(o options) error {
	ctx := context.Background()
	fl := fleet()
	total := len(fl) * o.steps
	end := time.Now().UTC().Truncate(o.interval)
	start := end.Add(-time.Duration(o.steps-1) * o.interval)
	fmt.Printf("fleet profile: %d series × %d steps at %s = %d points (%s … %s)\n",
		len(fl), o.steps, o.interval, total, start.Format(time.RFC3339), end.Format(time.RFC3339))

	dataDir, err := pgtest.ReachableTempDir("xtrace-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dataDir)
	cluster, err := pgtest.Start(ctx, pgtest.Options{
		DataDir: filepath.Join(dataDir, "pg"), Durable: true,
		// No checkpoint during the run: both the raw COPY and the server pay the same WAL costs.
		Settings: []string{"max_wal_size=16GB", "checkpoint_timeout=1h", "shared_buffers=512MB"},
	})
	if err != nil {
		return err
	}
	defer cluster.Stop()
	admin, err := pgx.Connect(ctx, cluster.URL("postgres"))
	if err != nil {
		return err
	}
	defer admin.Close(ctx)
	for _, db := range []string{"bench_server", "bench_copy"} {
		if _, err := admin.Exec(ctx, "CREATE DATABASE "+db); err != nil {
			return err
		}
	}

	// 1. Raw COPY of the same points into the same schema (series created first, untimed).
	pgCPU0 := treeCPU(cluster.Pid())
	copyRate, err := rawCopy(ctx, cluster.URL("bench_copy"), fl, o, start)
	if err != nil {
		return fmt.Errorf("raw copy: %w", err)
	}
	fmt.Printf("raw COPY: postgres used %.1f CPU-s\n", treeCPU(cluster.Pid())-pgCPU0)

	// 2. The real server, fed over HTTP.
	port, err := devproc.FreePort()
	if err != nil {
		return err
	}
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	const token = "bench-token"
	srv := exec.Command(o.server, "serve")
	srv.Env = append(os.Environ(), "DATABASE_URL="+cluster.URL("bench_server"), "API_BEARER_TOKEN="+token,
		"BIND_ADDR=127.0.0.1:"+strconv.Itoa(port), "RATE_LIMIT_QPS=100000", "RATE_LIMIT_BURST=100000",
		"XTRACE_LOG_LEVEL=warn", "XTRACE_RETENTION_INTERVAL=0")
	srv.Stdout, srv.Stderr = os.Stderr, os.Stderr
	srv.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := srv.Start(); err != nil {
		return fmt.Errorf("start %s: %w", o.server, err)
	}
	defer func() { _ = srv.Process.Signal(syscall.SIGTERM); _ = srv.Wait() }()
	if err := devproc.WaitOK(base+"/readyz", 60*time.Second, nil); err != nil {
		return err
	}
	pgCPU0, srvCPU0 := treeCPU(cluster.Pid()), treeCPU(srv.Process.Pid)
	ingestRate, err := ingest(base, token, fl, o, start)
	if err != nil {
		return fmt.Errorf("ingest: %w", err)
	}
	fmt.Printf("ingest: postgres used %.1f CPU-s, xtrace %.1f CPU-s\n", treeCPU(cluster.Pid())-pgCPU0, treeCPU(srv.Process.Pid)-srvCPU0)
	if commits, seconds, err := commitStats(base); err == nil && commits > 0 {
		fmt.Printf("server: %d group commits, %.0f points per commit, %.1f ms per commit on average\n",
			int(commits), float64(total)/commits, seconds/commits*1000)
	}

	// 3. Bytes per point on disk (tables + indexes) of the server's database.
	srvConn, err := pgx.Connect(ctx, cluster.URL("bench_server"))
	if err != nil {
		return err
	}
	defer srvConn.Close(ctx)
	if _, err := srvConn.Exec(ctx, "VACUUM ANALYZE"); err != nil {
		return err
	}
	var bytesOnDisk, heapBytes, stored int64
	if err := srvConn.QueryRow(ctx, `
		SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0), coalesce(sum(pg_table_size(c.oid)), 0) FROM pg_class c
		WHERE c.relkind = 'r' AND (c.relname = 'metric_series' OR c.relname LIKE 'metric\_points\_p%')`).Scan(&bytesOnDisk, &heapBytes); err != nil {
		return err
	}
	if err := srvConn.QueryRow(ctx, "SELECT count(*) FROM metric_points").Scan(&stored); err != nil {
		return err
	}
	if stored != int64(total) {
		return fmt.Errorf("server stored %d points, pushed %d", stored, total)
	}

	// 4. Query latency over HTTP.
	queries := []struct{ name, query string }{
		{"router", url.Values{"name": {"pending_requests"}, "labels": {`{"model_uid":"model-7"}`},
			"from": {end.Add(-time.Hour).Format(time.RFC3339)}, "to": {end.Format(time.RFC3339)}, "step": {"1m"}, "agg": {"last"}}.Encode()},
		{"dashboard", url.Values{"name": {"gpu_utilization"}, "labels": {`{"node_id":"node-3"}`},
			"from": {start.Format(time.RFC3339)}, "to": {end.Format(time.RFC3339)}, "step": {"5m"}, "agg": {"avg"}}.Encode()},
		{"fleet", url.Values{"name": {"gpu_utilization"}, "from": {start.Format(time.RFC3339)}, "to": {end.Format(time.RFC3339)},
			"step": {"1h"}, "agg": {"avg"}, "group_by": {"node_id"}}.Encode()},
	}
	lat := map[string][3]float64{}
	for _, q := range queries {
		ms, err := measure(base, token, q.query, o.reps)
		if err != nil {
			return fmt.Errorf("%s query: %w", q.name, err)
		}
		lat[q.name] = ms
	}

	// 5. Trace ingest: one request per gateway call, as Nebula Gateway sends them.
	traceRate, traceLat, err := traceIngest(base, token, o)
	if err != nil {
		return fmt.Errorf("trace ingest: %w", err)
	}

	// 6. Time to prune one day: drop the partition holding the most points, through the retention code.
	pruneSeconds, prunedPoints, err := pruneOneDay(ctx, cluster.URL("bench_server"))
	if err != nil {
		return fmt.Errorf("prune: %w", err)
	}

	result := map[string]float64{
		"points":                float64(total),
		"series":                float64(len(fl)),
		"ingest_points_per_s":   round(ingestRate, 0),
		"copy_points_per_s":     round(copyRate, 0),
		"ingest_ratio":          round(ingestRate/copyRate, 3),
		"bytes_per_point":       round(float64(bytesOnDisk)/float64(total), 1),
		"table_bytes_per_point": round(float64(heapBytes)/float64(total), 1),
		"index_bytes_per_point": round(float64(bytesOnDisk-heapBytes)/float64(total), 1),
		"router_p50_ms":         lat["router"][0], "router_p95_ms": lat["router"][1], "router_p99_ms": lat["router"][2],
		"dashboard_p50_ms": lat["dashboard"][0], "dashboard_p95_ms": lat["dashboard"][1], "dashboard_p99_ms": lat["dashboard"][2],
		"fleet_p50_ms": lat["fleet"][0], "fleet_p95_ms": lat["fleet"][1], "fleet_p99_ms": lat["fleet"][2],
		"prune_day_s":       round(pruneSeconds, 4),
		"prune_day_points":  float64(prunedPoints),
		"query_repetitions": float64(o.reps),
	}
	result["traces"] = float64(o.traces)
	result["traces_per_s"] = round(traceRate, 0)
	result["trace_batch_p50_ms"], result["trace_batch_p95_ms"], result["trace_batch_p99_ms"] = traceLat[0], traceLat[1], traceLat[2]
	fmt.Printf("\n%-34s %14s\n", "measure", "value")
	fmt.Printf("%-34s %14.0f\n", "points", result["points"])
	fmt.Printf("%-34s %14.0f\n", "ingest over HTTP (points/s)", result["ingest_points_per_s"])
	fmt.Printf("%-34s %14.0f\n", "raw COPY, same schema (points/s)", result["copy_points_per_s"])
	fmt.Printf("%-34s %14.3f   (target ≥ 0.5)\n", "ingest / raw COPY", result["ingest_ratio"])
	fmt.Printf("%-34s %14.1f   (target ≤ 100; table %.1f + indexes %.1f)\n", "bytes per point (incl. indexes)",
		result["bytes_per_point"], result["table_bytes_per_point"], result["index_bytes_per_point"])
	for _, q := range []struct {
		name   string
		target float64
	}{{"router", 10}, {"dashboard", 25}, {"fleet", 500}} {
		l := lat[q.name]
		fmt.Printf("%-34s %4.1f / %4.1f / %5.1f   (p95 target ≤ %.0f ms)\n", q.name+" query p50/p95/p99 (ms)", l[0], l[1], l[2], q.target)
	}
	fmt.Printf("%-34s %14.4f   (target ≤ 1 s; %d points)\n", "prune one day (s)", result["prune_day_s"], prunedPoints)
	fmt.Printf("%-34s %14.0f   (%d clients, 1 trace + 2 observations per request)\n", "trace ingest /v1/l/batch (traces/s)", result["traces_per_s"], o.clients)
	fmt.Printf("%-34s %4.1f / %4.1f / %5.1f\n", "trace request p50/p95/p99 (ms)", traceLat[0], traceLat[1], traceLat[2])
	b, _ := json.MarshalIndent(result, "", "  ")
	if err := os.WriteFile(o.out, append(b, '\n'), 0o644); err != nil {
		return err
	}
	fmt.Printf("\nwrote %s\n", o.out)
	return nil
}

func round(v float64, digits int) float64 {
	p := 1.0
	for i := 0; i < digits; i++ {
		p *= 10
	}
	return float64(int64(v*p+0.5)) / p
}

// rawCopy creates the schema and series, then times COPY of every point into the points table.
func rawCopy(ctx context.Context, dbURL string, fl []series, o options, start time.Time) (float64, error) {
	st, err := store.Open(ctx, store.Options{URL: dbURL, MaxConns: 4})
	if err != nil {
		return 0, err
	}
	defer st.Close()
	if _, err := store.Migrate(ctx, st.Pool); err != nil {
		return 0, err
	}
	end := start.Add(time.Duration(o.steps) * o.interval)
	var days []time.Time
	for d := start; !d.After(end.Add(24 * time.Hour)); d = d.Add(24 * time.Hour) {
		days = append(days, d)
	}
	if err := st.EnsurePartitions(ctx, days...); err != nil {
		return 0, err
	}
	ids := make([]int64, len(fl))
	for i, s := range fl {
		if err := st.Pool.QueryRow(ctx, `INSERT INTO metric_series (project_id, name, labels) VALUES ('default', $1, $2::jsonb) RETURNING id`,
			s.name, metrics.CanonicalLabels(s.labels)).Scan(&ids[i]); err != nil {
			return 0, err
		}
	}
	conn, err := st.Pool.Acquire(ctx)
	if err != nil {
		return 0, err
	}
	defer conn.Release()
	began := time.Now()
	// The same order and chunking the server sees: by time step, batch-sized chunks of one COPY each.
	const chunk = 100000
	rows := make([][]any, 0, chunk)
	flush := func() error {
		if len(rows) == 0 {
			return nil
		}
		_, err := conn.CopyFrom(ctx, pgx.Identifier{"metric_points"}, []string{"series_id", "ts", "value"}, pgx.CopyFromRows(rows))
		rows = rows[:0]
		return err
	}
	for step := 0; step < o.steps; step++ {
		ts := start.Add(time.Duration(step) * o.interval)
		for si := range fl {
			rows = append(rows, []any{ids[si], ts, value(si, step)})
			if len(rows) == chunk {
				if err := flush(); err != nil {
					return 0, err
				}
			}
		}
	}
	if err := flush(); err != nil {
		return 0, err
	}
	took := time.Since(began)
	n := len(fl) * o.steps
	fmt.Printf("raw COPY: %d points in %s\n", n, took.Round(time.Millisecond))
	return float64(n) / took.Seconds(), nil
}

// ingest pushes every point over HTTP with several clients.
func ingest(base, token string, fl []series, o options, start time.Time) (float64, error) {
	type wire struct {
		Name      string            `json:"name"`
		Labels    map[string]string `json:"labels"`
		Value     float64           `json:"value"`
		Timestamp string            `json:"timestamp"`
	}
	// Bodies are encoded before the clock starts: the load generator's JSON
	// encoding would otherwise compete with the server for the same 2 cores.
	var encoded [][]byte
	batch := make([]wire, 0, o.batch)
	emit := func() {
		b, _ := json.Marshal(map[string]any{"metrics": batch})
		encoded = append(encoded, b)
		batch = batch[:0]
	}
	for step := 0; step < o.steps; step++ {
		ts := start.Add(time.Duration(step) * o.interval).Format(time.RFC3339)
		for si, s := range fl {
			batch = append(batch, wire{s.name, s.labels, value(si, step), ts})
			if len(batch) == o.batch {
				emit()
			}
		}
	}
	if len(batch) > 0 {
		emit()
	}
	bodies := make(chan []byte, len(encoded))
	for _, b := range encoded {
		bodies <- b
	}
	close(bodies)
	client := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: o.clients}}
	var wg sync.WaitGroup
	var firstErr atomic.Value
	var retries atomic.Int64
	began := time.Now()
	for c := 0; c < o.clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for body := range bodies {
				for attempt := 0; ; attempt++ {
					req, _ := http.NewRequest("POST", base+"/v1/metrics/batch", bytes.NewReader(body))
					req.Header.Set("Authorization", "Bearer "+token)
					req.Header.Set("Content-Type", "application/json")
					resp, err := client.Do(req)
					if err == nil {
						_, _ = io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						if resp.StatusCode == 200 {
							break
						}
						if resp.StatusCode == 429 && attempt < 100 {
							retries.Add(1)
							time.Sleep(50 * time.Millisecond)
							continue
						}
						err = fmt.Errorf("push answered %d", resp.StatusCode)
					}
					firstErr.CompareAndSwap(nil, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil {
		for range bodies {
		}
		return 0, err
	}
	took := time.Since(began)
	n := len(fl) * o.steps
	fmt.Printf("ingest over HTTP: %d points in %s (%d clients, %d points per request, %d retries after 429)\n",
		n, took.Round(time.Millisecond), o.clients, o.batch, retries.Load())
	return float64(n) / took.Seconds(), nil
}

// traceIngest pushes o.traces gateway-shaped batches with o.clients clients and
// returns traces/s and the request latency percentiles.
func traceIngest(base, token string, o options) (float64, [3]float64, error) {
	if o.traces <= 0 {
		return 0, [3]float64{}, nil
	}
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: o.clients}}
	next := make(chan int, o.traces)
	for i := 0; i < o.traces; i++ {
		next <- i
	}
	close(next)
	lat := make([][]float64, o.clients)
	var firstErr atomic.Value
	var wg sync.WaitGroup
	began := time.Now()
	for c := 0; c < o.clients; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			for i := range next {
				ts := time.Now().UTC()
				body, _ := json.Marshal(map[string]any{
					"trace": map[string]any{"id": fmt.Sprintf("bench-trace-%d", i), "name": "/v1/chat/completions", "userId": fmt.Sprintf("team-%d", i%20),
						"tags": []string{"gateway"}, "timestamp": ts.Format(time.RFC3339Nano)},
					"observations": []map[string]any{
						{"id": fmt.Sprintf("bench-route-%d", i), "name": "routing", "startTime": ts.Format(time.RFC3339Nano),
							"endTime": ts.Add(2 * time.Millisecond).Format(time.RFC3339Nano), "metadata": map[string]any{"endpoint": fmt.Sprintf("node-%d", i%100)}},
						{"id": fmt.Sprintf("bench-gen-%d", i), "type": "GENERATION", "name": "chat", "model": fmt.Sprintf("model-%d", i%50),
							"startTime": ts.Format(time.RFC3339Nano), "endTime": ts.Add(800 * time.Millisecond).Format(time.RFC3339Nano),
							"input": "How do I route this request?", "output": "To the least loaded replica.", "promptTokens": 120, "completionTokens": 48},
					},
				})
				req, _ := http.NewRequest("POST", base+"/v1/l/batch", bytes.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+token)
				req.Header.Set("Content-Type", "application/json")
				start := time.Now()
				resp, err := client.Do(req)
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						err = fmt.Errorf("/v1/l/batch answered %d", resp.StatusCode)
					}
				}
				if err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				lat[c] = append(lat[c], float64(time.Since(start).Microseconds())/1000)
			}
		}(c)
	}
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil {
		return 0, [3]float64{}, err
	}
	took := time.Since(began)
	var all []float64
	for _, l := range lat {
		all = append(all, l...)
	}
	sort.Float64s(all)
	pct := func(p float64) float64 { return round(all[int(p*float64(len(all)-1)+0.5)], 2) }
	fmt.Printf("trace ingest: %d requests in %s\n", o.traces, took.Round(time.Millisecond))
	return float64(o.traces) / took.Seconds(), [3]float64{pct(0.5), pct(0.95), pct(0.99)}, nil
}

// measure runs a query reps times (after two warm-ups) and returns p50/p95/p99 in ms.
func measure(base, token, query string, reps int) ([3]float64, error) {
	client := &http.Client{Timeout: 30 * time.Second}
	var ms []float64
	for i := 0; i < reps+2; i++ {
		req, _ := http.NewRequest("GET", base+"/api/public/metrics/query?"+query, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		began := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			return [3]float64{}, err
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		took := time.Since(began)
		if resp.StatusCode != 200 {
			return [3]float64{}, fmt.Errorf("answered %d: %s", resp.StatusCode, body)
		}
		if i == 0 {
			var r struct {
				Data []json.RawMessage
				Meta struct {
					SeriesCount int  `json:"series_count"`
					Truncated   bool `json:"truncated"`
				}
			}
			_ = json.Unmarshal(body, &r)
			fmt.Printf("query %s → %d series, truncated=%v\n", query, r.Meta.SeriesCount, r.Meta.Truncated)
		}
		if i >= 2 {
			ms = append(ms, float64(took.Microseconds())/1000)
		}
	}
	sort.Float64s(ms)
	pct := func(p float64) float64 { return round(ms[int(p*float64(len(ms)-1)+0.5)], 2) }
	return [3]float64{pct(0.50), pct(0.95), pct(0.99)}, nil
}

func pruneOneDay(ctx context.Context, dbURL string) (float64, int64, error) {
	st, err := store.Open(ctx, store.Options{URL: dbURL, MaxConns: 2})
	if err != nil {
		return 0, 0, err
	}
	defer st.Close()
	parts, err := st.ListPartitions(ctx)
	if err != nil {
		return 0, 0, err
	}
	var biggest store.Partition
	var most int64 = -1
	for _, p := range parts {
		var n int64
		if err := st.Pool.QueryRow(ctx, "SELECT count(*) FROM "+pgx.Identifier{p.Name}.Sanitize()).Scan(&n); err != nil {
			return 0, 0, err
		}
		if n > most {
			biggest, most = p, n
		}
	}
	began := time.Now()
	if err := st.DropPartition(ctx, biggest); err != nil {
		return 0, 0, err
	}
	return time.Since(began).Seconds(), most, nil
}

// commitStats reads the server's own metrics: number and total seconds of metric commits.
func commitStats(base string) (count, sum float64, err error) {
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		fields := strings.Fields(line)
		if len(fields) != 2 {
			continue
		}
		v, _ := strconv.ParseFloat(fields[1], 64)
		switch fields[0] {
		case `xtrace_ingest_commit_duration_seconds_count{queue="metrics"}`:
			count = v
		case `xtrace_ingest_commit_duration_seconds_sum{queue="metrics"}`:
			sum = v
		}
	}
	return count, sum, nil
}

// treeCPU returns the user+system CPU seconds of pid and its children (Linux /proc).
func treeCPU(pid int) float64 {
	total := 0.0
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// Fields after the command name: state ppid ... utime(14) stime(15).
		rest := string(b[strings.LastIndexByte(string(b), ')')+2:])
		f := strings.Fields(rest)
		if len(f) < 13 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		if p != pid && ppid != pid {
			continue
		}
		ut, _ := strconv.ParseFloat(f[11], 64)
		st, _ := strconv.ParseFloat(f[12], 64)
		total += (ut + st) / 100 // USER_HZ
	}
	return total
}

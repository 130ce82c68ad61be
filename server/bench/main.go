// Command bench is `make bench`: it starts a throwaway PostgreSQL and the real
// xtrace binary, loads the Nebula fleet profile over HTTP, and prints, from one
// run: end-to-end ingest points/s next to raw COPY of the same points into the
// same schema (the ratio is the figure), bytes per point on disk, query
// latency percentiles of the router/dashboard/fleet queries (SPEC §7.1), and
// the time to prune one day. Results also go to a JSON file.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

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

	replica         bool          // also measure a streaming read replica (replica.go)
	replicaDuration time.Duration // length of each replica measurement
	replicaClients  int           // concurrent router clients against the replica
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
	flag.BoolVar(&o.replica, "replica", false, "also measure a streaming read replica: router queries/s it serves, and how far behind the primary its answers are under live ingest")
	flag.DurationVar(&o.replicaDuration, "replica-duration", 20*time.Second, "length of each read-replica measurement")
	flag.IntVar(&o.replicaClients, "replica-clients", 4, "concurrent router clients in the read-replica measurement")
	flag.Parse()
	if o.reps < 50 {
		o.reps = 50
	}
	if err := run(o); err != nil {
		log.Fatalf("bench: %v", err)
	}
}

// bench is one run: its settings, the processes it started and the figures it measured.
type bench struct {
	o          options
	fleet      []series
	start, end time.Time

	dataDir string
	cluster *pgtest.Cluster
	replica *pgtest.Cluster // with -replica
	server  *exec.Cmd
	base    string

	result    map[string]float64
	latency   map[string][3]float64
	pruned    int64
	freshness []freshnessResult // with -replica
}

const (
	benchToken = "bench-token"
	serverDB   = "bench_server"
	copyDB     = "bench_copy"
)

func run(o options) error {
	b := &bench{o: o, fleet: fleet(), result: map[string]float64{}, latency: map[string][3]float64{}}
	b.end = time.Now().UTC().Truncate(o.interval)
	b.start = b.end.Add(-time.Duration(o.steps-1) * o.interval)
	fmt.Printf("fleet profile: %d series × %d steps at %s = %d points (%s … %s)\n",
		len(b.fleet), o.steps, o.interval, b.points(), b.start.Format(time.RFC3339), b.end.Format(time.RFC3339))
	defer b.close()
	phases := []phase{
		{"start postgres", b.startPostgres},
		{"raw copy", b.rawCopy},
		{"start server", b.startServer},
		{"ingest", b.ingest},
		{"storage", b.storage},
		{"queries", b.queries},
		{"trace ingest", b.traceIngest},
	}
	if o.replica { // before prune, which drops the day the queries read
		phases = append(phases, b.replicaPhases()...)
	}
	phases = append(phases, phase{"prune", b.prune})
	ctx := context.Background()
	for _, p := range phases {
		if err := p.run(ctx); err != nil {
			return fmt.Errorf("%s: %w", p.name, err)
		}
	}
	return b.report()
}

// phase is one step of the run.
type phase struct {
	name string
	run  func(context.Context) error
}

func (b *bench) points() int { return len(b.fleet) * b.o.steps }

func (b *bench) close() {
	b.stopServer()
	if b.replica != nil {
		b.replica.Stop()
	}
	if b.cluster != nil {
		b.cluster.Stop()
	}
	if b.dataDir != "" {
		_ = os.RemoveAll(b.dataDir)
	}
}

func (b *bench) startPostgres(ctx context.Context) error {
	var err error
	if b.dataDir, err = pgtest.ReachableTempDir("xtrace-bench-"); err != nil {
		return err
	}
	b.cluster, err = pgtest.Start(ctx, pgtest.Options{
		DataDir: filepath.Join(b.dataDir, "pg"), Durable: true,
		// No checkpoint during the run: both the raw COPY and the server pay the same WAL costs.
		Settings: []string{"max_wal_size=16GB", "checkpoint_timeout=1h", "shared_buffers=512MB"},
	})
	if err != nil {
		return err
	}
	for _, db := range []string{serverDB, copyDB} {
		if err := b.cluster.CreateDatabase(ctx, db); err != nil {
			return err
		}
	}
	return nil
}

func openStore(ctx context.Context, dbURL string, conns int32) (*store.Store, error) {
	st, err := store.Open(ctx, store.Options{URL: dbURL, MaxConns: conns})
	if err != nil {
		return nil, err
	}
	if _, err := st.Migrate(ctx); err != nil {
		st.Close()
		return nil, err
	}
	return st, nil
}

// rawCopy times COPY of every point into the points table of a second
// database with the same schema (series and partitions created first, untimed).
func (b *bench) rawCopy(ctx context.Context) error {
	st, err := openStore(ctx, b.cluster.URL(copyDB), 4)
	if err != nil {
		return err
	}
	defer st.Close()
	var days []time.Time
	for d := b.start; !d.After(b.end.Add(24 * time.Hour)); d = d.Add(24 * time.Hour) {
		days = append(days, d)
	}
	if err := st.EnsurePartitions(ctx, days...); err != nil {
		return err
	}
	probe := make([]metrics.Point, len(b.fleet))
	for i, s := range b.fleet {
		probe[i] = metrics.Point{Name: s.name, LabelsJSON: metrics.CanonicalLabels(s.labels)}
	}
	ids, err := st.SeriesIDs(ctx, "default", probe)
	if err != nil {
		return err
	}
	pgCPU0 := treeCPU(b.cluster.Pid())
	began := time.Now()
	// The same order and chunking the server sees: by time step, in chunks of one COPY each.
	const chunk = 100000
	rows := make([]store.RawPoint, 0, chunk)
	for step := 0; step < b.o.steps; step++ {
		ts := b.start.Add(time.Duration(step) * b.o.interval)
		for si := range b.fleet {
			rows = append(rows, store.RawPoint{SeriesID: ids[si], Time: ts, Value: value(si, step)})
			if len(rows) == chunk {
				if err := st.CopyRawPoints(ctx, rows); err != nil {
					return err
				}
				rows = rows[:0]
			}
		}
	}
	if err := st.CopyRawPoints(ctx, rows); err != nil {
		return err
	}
	took := time.Since(began)
	fmt.Printf("raw COPY: %d points in %s; postgres used %.1f CPU-s\n", b.points(), took.Round(time.Millisecond), treeCPU(b.cluster.Pid())-pgCPU0)
	b.result["copy_points_per_s"] = round(float64(b.points())/took.Seconds(), 0)
	return nil
}

func (b *bench) startServer(_ context.Context) error { return b.runServer() }

func (b *bench) stopServer() {
	if b.server != nil {
		_ = b.server.Process.Signal(syscall.SIGTERM)
		_ = b.server.Wait()
		b.server = nil
	}
}

// runServer starts the xtrace binary on the server database with env added.
func (b *bench) runServer(env ...string) error {
	port, err := devproc.FreePort()
	if err != nil {
		return err
	}
	b.base = fmt.Sprintf("http://127.0.0.1:%d", port)
	b.server = exec.Command(b.o.server, "serve")
	b.server.Env = append(os.Environ(), "DATABASE_URL="+b.cluster.URL(serverDB), "API_BEARER_TOKEN="+benchToken,
		"BIND_ADDR=127.0.0.1:"+strconv.Itoa(port), "RATE_LIMIT_QPS=100000", "RATE_LIMIT_BURST=100000",
		"XTRACE_LOG_LEVEL=warn", "XTRACE_RETENTION_INTERVAL=0")
	b.server.Env = append(b.server.Env, env...)
	b.server.Stdout, b.server.Stderr = os.Stderr, os.Stderr
	b.server.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := b.server.Start(); err != nil {
		b.server = nil
		return fmt.Errorf("start %s: %w", b.o.server, err)
	}
	return devproc.WaitOK(b.base+"/readyz", 60*time.Second, nil)
}

func (b *bench) ingest(_ context.Context) error {
	pgCPU0, srvCPU0 := treeCPU(b.cluster.Pid()), treeCPU(b.server.Process.Pid)
	rate, err := ingest(b.base, benchToken, b.fleet, b.o, b.start)
	if err != nil {
		return err
	}
	fmt.Printf("ingest: postgres used %.1f CPU-s, xtrace %.1f CPU-s\n", treeCPU(b.cluster.Pid())-pgCPU0, treeCPU(b.server.Process.Pid)-srvCPU0)
	if commits, seconds, err := commitStats(b.base); err == nil && commits > 0 {
		fmt.Printf("server: %d group commits, %.0f points per commit, %.1f ms per commit on average\n",
			int(commits), float64(b.points())/commits, seconds/commits*1000)
	}
	b.result["ingest_points_per_s"] = round(rate, 0)
	b.result["ingest_ratio"] = round(rate/b.result["copy_points_per_s"], 3)
	return nil
}

// storage measures bytes per point (tables + indexes) of the server's database.
func (b *bench) storage(ctx context.Context) error {
	st, err := openStore(ctx, b.cluster.URL(serverDB), 2)
	if err != nil {
		return err
	}
	defer st.Close()
	stats, err := st.MetricStorage(ctx)
	if err != nil {
		return err
	}
	if stats.Points != int64(b.points()) {
		return fmt.Errorf("server stored %d points, pushed %d", stats.Points, b.points())
	}
	n := float64(b.points())
	b.result["bytes_per_point"] = round(float64(stats.TotalBytes)/n, 1)
	b.result["table_bytes_per_point"] = round(float64(stats.TableBytes)/n, 1)
	b.result["index_bytes_per_point"] = round(float64(stats.TotalBytes-stats.TableBytes)/n, 1)
	return nil
}

// queries measures the latency of the query mix of SPEC §7.1 over HTTP.
func (b *bench) queries(_ context.Context) error {
	rfc := func(t time.Time) string { return t.Format(time.RFC3339) }
	mix := []struct{ name, query string }{
		{"router", url.Values{"name": {"pending_requests"}, "labels": {`{"model_uid":"model-7"}`},
			"from": {rfc(b.end.Add(-time.Hour))}, "to": {rfc(b.end)}, "step": {"1m"}, "agg": {"last"}}.Encode()},
		{"dashboard", url.Values{"name": {"gpu_utilization"}, "labels": {`{"node_id":"node-3"}`},
			"from": {rfc(b.start)}, "to": {rfc(b.end)}, "step": {"5m"}, "agg": {"avg"}}.Encode()},
		{"fleet", url.Values{"name": {"gpu_utilization"}, "from": {rfc(b.start)}, "to": {rfc(b.end)},
			"step": {"1h"}, "agg": {"avg"}, "group_by": {"node_id"}}.Encode()},
	}
	for _, q := range mix {
		ms, err := measure(b.base, benchToken, q.query, b.o.reps)
		if err != nil {
			return fmt.Errorf("%s query: %w", q.name, err)
		}
		b.latency[q.name] = ms
		b.result[q.name+"_p50_ms"], b.result[q.name+"_p95_ms"], b.result[q.name+"_p99_ms"] = ms[0], ms[1], ms[2]
	}
	return nil
}

// traceIngest pushes one request per gateway call, as Nebula Gateway sends
// them, and measures the CPU both processes spent and the bytes on disk.
func (b *bench) traceIngest(ctx context.Context) error {
	pgCPU0, srvCPU0 := treeCPU(b.cluster.Pid()), treeCPU(b.server.Process.Pid)
	rate, lat, err := traceIngest(b.base, benchToken, b.o)
	if err != nil || b.o.traces <= 0 {
		return err
	}
	pgCPU, srvCPU := treeCPU(b.cluster.Pid())-pgCPU0, treeCPU(b.server.Process.Pid)-srvCPU0
	fmt.Printf("trace ingest: postgres used %.1f CPU-s, xtrace %.1f CPU-s\n", pgCPU, srvCPU)
	b.result["traces"] = float64(b.o.traces)
	b.result["traces_per_s"] = round(rate, 0)
	b.result["traces_per_cpu_s"] = round(float64(b.o.traces)/(pgCPU+srvCPU), 0)
	b.result["traces_per_postgres_cpu_s"] = round(float64(b.o.traces)/pgCPU, 0)
	b.result["trace_batch_p50_ms"], b.result["trace_batch_p95_ms"], b.result["trace_batch_p99_ms"] = lat[0], lat[1], lat[2]
	st, err := openStore(ctx, b.cluster.URL(serverDB), 2)
	if err != nil {
		return err
	}
	defer st.Close()
	stats, err := st.TraceStorage(ctx)
	if err != nil {
		return err
	}
	if stats.Traces != int64(b.o.traces) {
		return fmt.Errorf("server stored %d traces, pushed %d", stats.Traces, b.o.traces)
	}
	b.result["bytes_per_trace"] = round(float64(stats.TotalBytes)/float64(stats.Traces), 1)
	b.result["observations_per_trace"] = round(float64(stats.Observations)/float64(stats.Traces), 2)
	return nil
}

// prune times dropping the day partition holding the most points, through the retention code.
func (b *bench) prune(ctx context.Context) error {
	st, err := openStore(ctx, b.cluster.URL(serverDB), 2)
	if err != nil {
		return err
	}
	defer st.Close()
	parts, err := st.ListPartitions(ctx)
	if err != nil {
		return err
	}
	var biggest store.Partition
	var most int64 = -1
	for _, p := range parts {
		n, err := st.PartitionPoints(ctx, p)
		if err != nil {
			return err
		}
		if n > most {
			biggest, most = p, n
		}
	}
	began := time.Now()
	if err := st.DropPartition(ctx, biggest); err != nil {
		return err
	}
	b.result["prune_day_s"] = round(time.Since(began).Seconds(), 4)
	b.result["prune_day_points"] = float64(most)
	b.pruned = most
	return nil
}

func (b *bench) report() error {
	r := b.result
	r["points"], r["series"], r["query_repetitions"] = float64(b.points()), float64(len(b.fleet)), float64(b.o.reps)
	fmt.Printf("\n%-34s %14s\n", "measure", "value")
	fmt.Printf("%-34s %14.0f\n", "points", r["points"])
	fmt.Printf("%-34s %14.0f\n", "ingest over HTTP (points/s)", r["ingest_points_per_s"])
	fmt.Printf("%-34s %14.0f\n", "raw COPY, same schema (points/s)", r["copy_points_per_s"])
	fmt.Printf("%-34s %14.3f   (target ≥ 0.5)\n", "ingest / raw COPY", r["ingest_ratio"])
	fmt.Printf("%-34s %14.1f   (target ≤ 100; table %.1f + indexes %.1f)\n", "bytes per point (incl. indexes)",
		r["bytes_per_point"], r["table_bytes_per_point"], r["index_bytes_per_point"])
	for _, q := range []struct {
		name   string
		target float64
	}{{"router", 10}, {"dashboard", 25}, {"fleet", 500}} {
		l := b.latency[q.name]
		fmt.Printf("%-34s %4.1f / %4.1f / %5.1f   (p95 target ≤ %.0f ms)\n", q.name+" query p50/p95/p99 (ms)", l[0], l[1], l[2], q.target)
	}
	fmt.Printf("%-34s %14.4f   (target ≤ 1 s; %d points)\n", "prune one day (s)", r["prune_day_s"], b.pruned)
	fmt.Printf("%-34s %14.0f   (%d clients, 1 trace + 2 observations per request)\n", "trace ingest /v1/l/batch (traces/s)", r["traces_per_s"], b.o.clients)
	fmt.Printf("%-34s %4.1f / %4.1f / %5.1f\n", "trace request p50/p95/p99 (ms)", r["trace_batch_p50_ms"], r["trace_batch_p95_ms"], r["trace_batch_p99_ms"])
	fmt.Printf("%-34s %14.0f   (%.0f per PostgreSQL CPU-second)\n", "traces per CPU-second (pg + xtrace)", r["traces_per_cpu_s"], r["traces_per_postgres_cpu_s"])
	fmt.Printf("%-34s %14.0f   (%.0f observations per trace; tables + indexes)\n", "bytes per trace on disk", r["bytes_per_trace"], r["observations_per_trace"])
	if b.o.replica {
		b.reportReplica()
	}
	out, _ := json.MarshalIndent(r, "", "  ")
	if err := os.WriteFile(b.o.out, append(out, '\n'), 0o644); err != nil {
		return err
	}
	fmt.Printf("\nwrote %s\n", b.o.out)
	return nil
}

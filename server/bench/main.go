// Command bench is `make bench`: it starts a throwaway PostgreSQL and the real
// xtrace binary, loads the Nebula fleet profile over HTTP, and prints, from one
// run: end-to-end ingest points/s next to raw COPY of the same points into the
// same schema (the ratio is the figure), the same profile through Prometheus
// remote-write, bytes per point on disk, query latency percentiles of the
// router/dashboard/fleet queries (SPEC §7.1) in the native API and in PromQL,
// and the time to prune one day. Results also go to a JSON file.
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
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/xtrace-dev/xtrace-operator/internal/devproc"
	"github.com/xtrace-dev/xtrace-operator/internal/pgtest"
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
	procs    int // GOMAXPROCS of the xtrace servers; 0: Go's default
	ownProcs int // GOMAXPROCS of the bench itself (its clients and in-process writers); 0: Go's default

	peers           bool          // also load Prometheus and VictoriaMetrics (peers.go)
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
	// A p95 of 60 runs is the third-slowest of them: on a shared machine,
	// one burst of other work decided it (the same server's router p95
	// ranged 1.2–2.0 ms over eight sets of 68 runs).
	flag.IntVar(&o.reps, "reps", 300, "timed repetitions of each query (≥ 50; a slow query stops after 30 s, see timedBudget)")
	flag.StringVar(&o.out, "out", "bench-result.json", "JSON result file")
	flag.IntVar(&o.traces, "traces", 20000, "gateway requests to push to /v1/l/batch (one trace + 2 observations each)")
	flag.IntVar(&o.procs, "server-procs", max(1, runtime.NumCPU()/2),
		"GOMAXPROCS of the xtrace servers the bench starts (0: Go's default, every core); the first line of the output says why")
	flag.IntVar(&o.ownProcs, "client-procs", max(1, runtime.NumCPU()/2),
		"GOMAXPROCS of the bench itself: its load clients and the trace writer it runs in-process (0: Go's default); the first line of the output says why")
	flag.BoolVar(&o.peers, "peers", false, "also push the same data to prometheus and victoria-metrics (when on PATH) by remote-write and time the same PromQL queries there")
	flag.BoolVar(&o.replica, "replica", false, "also measure a streaming read replica: router queries/s it serves, and how far behind the primary its answers are under live ingest")
	flag.DurationVar(&o.replicaDuration, "replica-duration", 20*time.Second, "length of each read-replica measurement")
	flag.IntVar(&o.replicaClients, "replica-clients", 4, "concurrent router clients in the read-replica measurement")
	flag.Parse()
	if o.reps < 50 {
		o.reps = 50
	}
	if o.ownProcs > 0 {
		runtime.GOMAXPROCS(o.ownProcs)
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
	peers     map[string]map[string]float64 // with -peers
	latency   map[string][3]float64
	pruned    int64
	freshness []freshnessResult // with -replica
	closed    sync.Once
}

const (
	benchToken = "bench-token"
	serverDB   = "bench_server"
	copyDB     = "bench_copy"
	rwDB       = "bench_remote_write"
	writerDB   = "bench_trace_writer"
)

func run(o options) error {
	b := &bench{o: o, fleet: fleet(), result: map[string]float64{}, peers: map[string]map[string]float64{}, latency: map[string][3]float64{}}
	b.end = time.Now().UTC().Truncate(o.interval)
	b.start = b.end.Add(-time.Duration(o.steps-1) * o.interval)
	fmt.Printf("xtrace servers run with GOMAXPROCS=%s of this host's %d cores, the bench's own clients with %s: %s\n",
		procsText(o.procs), runtime.NumCPU(), procsText(o.ownProcs), procsDoc)
	b.result["server_gomaxprocs"], b.result["client_gomaxprocs"] = float64(o.procs), float64(o.ownProcs)
	fmt.Printf("fleet profile: %d series × %d steps at %s = %d points (%s … %s)\n%s\n",
		len(b.fleet), o.steps, o.interval, b.points(), b.start.Format(time.RFC3339), b.end.Format(time.RFC3339), valueModelDoc)
	defer b.close()
	b.closeOnSignal()
	phases := []phase{
		{"start postgres", b.startPostgres},
		{"start server", b.startServer},
		{"ingest", b.alone("ingest", serverDB, b.ingest)},
		{"compact", b.alone("compaction", serverDB, b.compact)},
		{"remote-write ingest", b.alone("remote_write", rwDB, b.remoteWriteIngest)},
		{"storage", b.storage},
		{"settle", b.settle},
		{"queries", b.queries},
		{"PromQL queries", b.promqlQueries},
		{"traces", b.alone("trace_ingest", serverDB, b.traces)},
	}
	if o.peers {
		phases = append(phases, b.peerPhases()...)
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

// close stops what the run started and removes its data directory (a
// full day's run leaves about a gigabyte per database in it).
func (b *bench) close() {
	b.closed.Do(func() {
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
	})
}

// closeOnSignal makes an interrupted run (Ctrl-C, a CI timeout's SIGTERM)
// clean up as a finished one does, then exit.
func (b *bench) closeOnSignal() {
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM)
	go func() {
		sig := <-signals
		fmt.Fprintf(os.Stderr, "bench: %v: stopping the servers and removing the data directory\n", sig)
		b.close()
		os.Exit(130)
	}()
}

func (b *bench) startPostgres(ctx context.Context) error {
	var err error
	if b.dataDir, err = pgtest.ReachableTempDir("xtrace-bench-"); err != nil {
		return err
	}
	b.cluster, err = pgtest.Start(ctx, pgtest.Options{
		DataDir: filepath.Join(b.dataDir, "pg"), Durable: true,
		// No checkpoint during the run: both the raw COPY and the server pay
		// the same WAL costs. New WAL segments are not zero-filled: the first
		// write phase would otherwise create (and fill) every segment while
		// the next ones reuse them after the checkpoint between phases.
		Settings: []string{"max_wal_size=16GB", "checkpoint_timeout=1h", "shared_buffers=512MB", "wal_init_zero=off"},
	})
	if err != nil {
		return err
	}
	for _, db := range []string{serverDB, copyDB, rwDB, writerDB} {
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

// alone runs a timed write phase with autovacuum paused, then does untimed
// the vacuum, analyze and checkpoint its writes left in database, and
// reports what they cost under <name>_after_postgres_cpu_s. Each write phase
// thus pays for its own writes only, never for the background work of the
// phase before it (a raw COPY's autovacuum used to run during the server's
// ingest), and raw COPYs and the server's ingest are measured alike.
func (b *bench) alone(name, database string, run func(context.Context) error) func(context.Context) error {
	return func(ctx context.Context) error {
		if err := b.cluster.SetAutovacuum(ctx, false); err != nil {
			return err
		}
		if _, err := b.cluster.Settle(ctx, 2*time.Minute); err != nil {
			return err
		}
		if err := run(ctx); err != nil {
			return err
		}
		pgCPU0 := treeCPU(b.cluster.Pid())
		if err := b.cluster.Vacuum(ctx, database); err != nil {
			return err
		}
		if err := b.cluster.SetAutovacuum(ctx, true); err != nil {
			return err
		}
		if _, err := b.cluster.Settle(ctx, 2*time.Minute); err != nil {
			return err
		}
		cpu := treeCPU(b.cluster.Pid()) - pgCPU0
		fmt.Printf("%s: the vacuum, analyze and checkpoint its writes left, untimed: postgres used %.1f CPU-s\n", name, cpu)
		b.result[name+"_after_postgres_cpu_s"] = round(cpu, 2)
		return nil
	}
}

func (b *bench) startServer(_ context.Context) error { return b.runServer() }

func (b *bench) stopServer() {
	if b.server != nil {
		stopServer(b.server)
		b.server = nil
	}
}

// runServer starts the xtrace binary on the server database with env added.
func (b *bench) runServer(env ...string) error {
	var err error
	b.server, b.base, err = b.startXtrace(b.cluster.URL(serverDB), env...)
	return err
}

// procsDoc says why the bench caps the servers' GOMAXPROCS and its own.
const procsDoc = "this one host plays the clients, the server and PostgreSQL, which in a deployment do not share cores " +
	"(the server in a pod whose CPU limit sets its GOMAXPROCS, PostgreSQL on its own). A server allowed every core here takes them " +
	"from PostgreSQL: its idle threads wake to look for work on each of a request's hand-offs. The bench's own clients " +
	"(gateways and agents elsewhere in a deployment) and the trace writer it runs in-process are capped the same way (-client-procs)"

func procsText(procs int) string {
	if procs <= 0 {
		return "Go's default (" + strconv.Itoa(runtime.NumCPU()) + ")"
	}
	return strconv.Itoa(procs)
}

// startXtrace launches the benchmarked binary on a database with the
// run's GOMAXPROCS (see procsDoc) and env added.
func (b *bench) startXtrace(dbURL string, env ...string) (*exec.Cmd, string, error) {
	if b.o.procs > 0 {
		env = append([]string{"GOMAXPROCS=" + strconv.Itoa(b.o.procs)}, env...)
	}
	return launchServer(b.o.server, dbURL, env...)
}

// launchServer starts the xtrace binary on a database and waits until it is ready.
func launchServer(binary, dbURL string, env ...string) (*exec.Cmd, string, error) {
	port, err := devproc.FreePort()
	if err != nil {
		return nil, "", err
	}
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	cmd := exec.Command(binary, "serve")
	cmd.Env = append(os.Environ(), "DATABASE_URL="+dbURL, "API_BEARER_TOKEN="+benchToken,
		"BIND_ADDR=127.0.0.1:"+strconv.Itoa(port), "RATE_LIMIT_QPS=100000", "RATE_LIMIT_BURST=100000",
		// Compaction is measured on its own (the compact phase), not during ingest.
		"XTRACE_LOG_LEVEL=warn", "XTRACE_RETENTION_INTERVAL=0", "XTRACE_COMPACTION_INTERVAL=0")
	cmd.Env = append(cmd.Env, env...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return nil, "", fmt.Errorf("start %s: %w", binary, err)
	}
	if err := devproc.WaitOK(base+"/readyz", 60*time.Second, nil); err != nil {
		stopServer(cmd)
		return nil, "", err
	}
	return cmd, base, nil
}

func stopServer(cmd *exec.Cmd) {
	_ = cmd.Process.Signal(syscall.SIGTERM)
	_ = cmd.Wait()
}

// storage measures bytes per point (tables + indexes) of the server's database.
func (b *bench) storage(ctx context.Context) error {
	stats, err := storedPoints(ctx, b.cluster.URL(serverDB), b.points())
	if err != nil {
		return err
	}
	n := float64(b.points())
	b.result["bytes_per_point"] = round(float64(stats.TotalBytes)/n, 2)
	b.result["table_bytes_per_point"] = round(float64(stats.TableBytes)/n, 2)
	b.result["index_bytes_per_point"] = round(float64(stats.TotalBytes-stats.TableBytes)/n, 2)
	b.result["hot_points_fraction"] = round(float64(stats.RawPoints)/n, 4)
	for _, tier := range []string{"raw points", "chunks", "metric_series", "metric_latest"} {
		sz := stats.Tiers[tier]
		per := ""
		switch tier {
		case "raw points":
			per = " (no point is raw)"
			if stats.RawPoints > 0 {
				per = fmt.Sprintf(" = %.1f B per raw point", float64(sz[0]+sz[1])/float64(stats.RawPoints))
			}
		case "chunks":
			per = fmt.Sprintf(" = %.2f B per compacted point", float64(sz[0]+sz[1])/float64(max(stats.Points-stats.RawPoints, 1)))
		}
		fmt.Printf("storage: %-13s table %6.1f MB + indexes %6.1f MB%s\n", tier, float64(sz[0])/1e6, float64(sz[1])/1e6, per)
	}
	if closed := stats.Points - stats.RawPoints; closed > 0 {
		// What closed time costs: the steady state of a long retention, where the hot window is a sliver.
		b.result["closed_bytes_per_point"] = round(float64(stats.ClosedBytes)/float64(closed), 2)
	}
	return nil
}

// storedPoints returns the storage figures of a server's database after
// checking that it holds every point sent.
func storedPoints(ctx context.Context, dbURL string, sent int) (store.StorageStats, error) {
	st, err := openStore(ctx, dbURL, 2)
	if err != nil {
		return store.StorageStats{}, err
	}
	defer st.Close()
	stats, err := st.MetricStorage(ctx)
	if err == nil && stats.Points != int64(sent) {
		err = fmt.Errorf("the server stored %d points, %d were sent", stats.Points, sent)
	}
	return stats, err
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
		began, stolen0 := time.Now(), stolenCPU()
		ms, runs, err := measure(b.base, benchToken, "/api/public/metrics/query?"+q.query, b.o.reps)
		if err != nil {
			return fmt.Errorf("%s query: %w", q.name, err)
		}
		b.latency[q.name] = ms
		recordLatency(b.result, q.name, ms, runs)
		// A p95 of a millisecond query is read off its slowest twentieth:
		// a burst of steal while it runs shows there first.
		steal := stealShare(stolenCPU()-stolen0, time.Since(began))
		b.result[q.name+"_steal_share"] = steal
		fmt.Printf("%s query: %d runs; the host took %.0f%% of the cores (steal)\n", q.name, runs, 100*steal)
	}
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
	chunkParts, err := st.ListChunkPartitions(ctx)
	if err != nil {
		return err
	}
	parts = append(parts, chunkParts...)
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

// capacity is what an item costs over its life in the store, the figures
// the capacity plan uses: its write, the vacuum, analyze and checkpoint
// that the write leaves behind (done after the timed phase), and for a
// point its share of compaction and of the vacuum after it (every point is
// compacted once).
func (b *bench) capacity() {
	r := b.result
	if pts := float64(b.points()); pts > 0 && r["compaction_xtrace_cpu_s"] > 0 {
		pg := r["ingest_postgres_cpu_s"] + r["ingest_after_postgres_cpu_s"] + r["compaction_postgres_cpu_s"] + r["compaction_after_postgres_cpu_s"]
		r["points_per_postgres_cpu_s"] = round(pts/pg, 0)
		r["points_per_xtrace_cpu_s"] = round(pts/(r["ingest_xtrace_cpu_s"]+r["compaction_xtrace_cpu_s"]), 0)
	}
	if traces := float64(b.o.traces); traces > 0 && r["trace_ingest_postgres_cpu_s"] > 0 {
		pg := r["trace_ingest_postgres_cpu_s"] + r["trace_ingest_after_postgres_cpu_s"]
		r["traces_per_cpu_s"] = round(traces/(pg+r["trace_ingest_xtrace_cpu_s"]), 0)
		r["traces_per_postgres_cpu_s"] = round(traces/pg, 0)
	}
}

func (b *bench) report() error {
	b.capacity()
	r := b.result
	r["points"], r["series"], r["query_repetitions"] = float64(b.points()), float64(len(b.fleet)), float64(b.o.reps)
	fmt.Printf("\n%-34s %14s\n", "measure", "value")
	fmt.Printf("%-34s %14.0f\n", "points", r["points"])
	line := func(name string, v float64, format, note string) {
		fmt.Printf("%-40s "+format+"   %s\n", name, v, note)
	}
	line("ingest over HTTP (points/s)", r["ingest_points_per_s"], "%14.0f", "")
	line("raw COPY into the hot table (points/s)", r["copy_points_per_s"], "%14.0f", "")
	line("ingest_ratio", r["ingest_ratio"], "%14.3f", "(first bar ≥ 0.8, stretch ≥ 1.0)")
	line("bytes_per_point (all tiers)", r["bytes_per_point"], "%14.2f", fmt.Sprintf("(first bar ≤ 8, stretch ≤ 3; %.1f%% of points still raw)", 100*r["hot_points_fraction"]))
	line("closed_bytes_per_point (chunks)", r["closed_bytes_per_point"], "%14.2f", "(what compacted time costs)")
	line("compaction_points_per_s", r["compaction_points_per_s"], "%14.0f",
		fmt.Sprintf("(≥ 10× the fleet's %.0f points/s; %.2f xtrace CPU-s per million points)", r["fleet_ingest_points_per_s"], r["compaction_cpu_s_per_million_points"]))
	for _, q := range []struct {
		name        string
		first, best float64
	}{{"router", 2, 1}, {"dashboard", 5, 2.5}, {"fleet", 40, 20}} {
		l := b.latency[q.name]
		fmt.Printf("%-40s %4.2f / %4.2f / %5.2f   (p95 first bar ≤ %g ms, stretch ≤ %g)\n", q.name+" query p50/p95/p99 (ms)", l[0], l[1], l[2], q.first, q.best)
	}
	fmt.Printf("%-40s %14.4f   (%d points)\n", "prune one day (s)", r["prune_day_s"], b.pruned)
	line("trace ingest /v1/l/batch (traces/s)", r["traces_per_s"], "%14.0f", fmt.Sprintf("(%d clients, 1 trace + 2 observations per request)", b.o.clients))
	line("raw COPY of the same rows (traces/s)", r["trace_copy_per_s"], "%14.0f", "")
	line("trace_ingest_ratio", r["trace_ingest_ratio"], "%14.3f", "(first bar ≥ 0.3, stretch ≥ 0.5)")
	line("trace_writer_ratio", r["trace_writer_ratio"], "%14.3f", "(the trace writer alone: the ratio were HTTP and parsing free)")
	line("trace_cpu_bound_ratio", r["trace_cpu_bound_ratio"], "%14.3f", fmt.Sprintf("(the ratio with every core busy; %.0f%% of them idle in the push)", 100*r["trace_ingest_idle_share"]))
	fmt.Printf("%-40s %4.1f / %4.1f / %5.1f\n", "trace request p50/p95/p99 (ms)", r["trace_batch_p50_ms"], r["trace_batch_p95_ms"], r["trace_batch_p99_ms"])
	fmt.Printf("%-40s %14.0f\n", "remote-write ingest (samples/s)", r["remote_write_samples_per_s"])
	fmt.Printf("%-40s %14.3f   (same profile, %d writers, snappy protobuf)\n", "remote_write_ratio", r["remote_write_ratio"], b.o.clients)
	for _, name := range []string{"router", "dashboard", "fleet"} {
		fmt.Printf("%-40s %4.2f / %4.2f / %5.2f\n", "PromQL "+name+" p50/p95/p99 (ms)",
			r["promql_"+name+"_p50_ms"], r["promql_"+name+"_p95_ms"], r["promql_"+name+"_p99_ms"])
	}
	line("metric points per PostgreSQL CPU-second", r["points_per_postgres_cpu_s"], "%14.0f", "(ingest, compaction and the vacuum each leaves: the capacity plan's P_pg)")
	line("metric points per xtrace CPU-second", r["points_per_xtrace_cpu_s"], "%14.0f", "(ingest + compaction: P_x)")
	line("traces per CPU-second (pg + xtrace)", r["traces_per_cpu_s"], "%14.0f", fmt.Sprintf("(%.0f per PostgreSQL CPU-second)", r["traces_per_postgres_cpu_s"]))
	line("bytes per trace on disk", r["bytes_per_trace"], "%14.0f", fmt.Sprintf("(%.0f observations per trace; tables + indexes)", r["observations_per_trace"]))
	if b.o.replica {
		b.reportReplica()
	}
	doc := map[string]any{}
	for k, v := range r {
		doc[k] = v
	}
	if len(b.peers) > 0 {
		b.reportPeers()
		doc["peers"] = b.peers
	}
	out, _ := json.MarshalIndent(doc, "", "  ")
	if err := os.WriteFile(b.o.out, append(out, '\n'), 0o644); err != nil {
		return err
	}
	fmt.Printf("\nwrote %s\n", b.o.out)
	return nil
}

package retention_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xtrace-dev/xtrace-operator/internal/devproc"
	"github.com/xtrace-dev/xtrace-operator/internal/pgtest"
	"github.com/xtrace-dev/xtrace-operator/server/internal/metrics"
	"github.com/xtrace-dev/xtrace-operator/server/internal/retention"
	"github.com/xtrace-dev/xtrace-operator/server/internal/servertest"
	"github.com/xtrace-dev/xtrace-operator/server/internal/store"
	"github.com/xtrace-dev/xtrace-operator/server/internal/traces"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// testStore is a store plus a direct connection for setting up and inspecting its database.
type testStore struct {
	*store.Store
	db  *pgtest.DB
	url string
}

func openStore(t *testing.T, url string) testStore {
	t.Helper()
	st, err := store.Open(context.Background(), store.Options{URL: url, MaxConns: 8})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	return testStore{Store: st, db: pgtest.Connect(t, url), url: url}
}

func point(name, series string, v float64, ts time.Time) metrics.Point {
	labels := map[string]string{"s": series}
	return metrics.Point{Name: name, LabelsJSON: metrics.CanonicalLabels(labels), Value: v, Time: ts}
}

func count(t *testing.T, st testStore, sql string, args ...any) int {
	t.Helper()
	return int(st.db.Int(sql, args...))
}

// now is the pruner's clock: 30-day metrics retention puts the cut-off at
// 2026-02-01T12:42:30Z, in the middle of a raw window's partition.
var now = time.Date(2026, 3, 3, 12, 42, 30, 0, time.UTC)

func TestMetricsRetention(t *testing.T) {
	t.Parallel()
	st := openStore(t, servertest.MigratedDatabase(t))
	ctx := context.Background()
	cutoff := now.AddDate(0, 0, -30)
	var pts []metrics.Point
	// Five whole days before the cut-off day, the edge day around the cut-off, and newer days.
	for d := 5; d >= 1; d-- {
		pts = append(pts, point("gpu_utilization", "old", float64(d), cutoff.AddDate(0, 0, -d)))
	}
	pts = append(pts,
		point("gpu_utilization", "edge", 1, cutoff.Add(-time.Second)), // same day, expired
		point("gpu_utilization", "edge", 2, cutoff),                   // kept (not older than the cut-off)
		point("gpu_utilization", "edge", 3, cutoff.Add(time.Second)),  // kept
		point("gpu_utilization", "new", 4, now.Add(-time.Hour)),
		point("gone_metric", "only-old", 5, cutoff.AddDate(0, 0, -3)), // its series goes too
	)
	if err := st.WritePoints(ctx, "default", pts); err != nil {
		t.Fatal(err)
	}
	// Series are "seen" on the day they are pushed; pretend the old ones were last pushed long ago.
	st.db.Exec(`UPDATE metric_series SET last_seen = '2026-01-01' WHERE labels->>'s' IN ('old', 'only-old')`)
	before, _ := st.ListPartitions(ctx)
	p := &retention.Pruner{Store: st.Store, Log: quiet, MetricsDays: 30, TracesDays: 90, Now: func() time.Time { return now }}
	res, err := p.RunOnce(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Each expired day's raw partition, and its chunk partition (made with it).
	var wantDropped []string
	for d := 5; d >= 1; d-- {
		day := cutoff.AddDate(0, 0, -d)
		wantDropped = append(wantDropped, "metric_points_m"+day.Truncate(store.RawWindow).Format("200601021504"),
			"metric_chunks_p"+day.Format("20060102"))
	}
	sort.Strings(wantDropped)
	sort.Strings(res.DroppedPartitions)
	if fmt.Sprint(res.DroppedPartitions) != fmt.Sprint(wantDropped) {
		t.Fatalf("dropped %v, want %v (partitions before: %v)", res.DroppedPartitions, wantDropped, before)
	}
	after, _ := st.ListPartitions(ctx)
	for _, part := range after {
		for _, gone := range wantDropped {
			if part.Name == gone {
				t.Fatalf("partition %s still exists", gone)
			}
		}
	}
	// Only the one expired point of the edge day was deleted row by row: whole days were dropped, not DELETEd.
	if res.DeletedPoints != 1 {
		t.Fatalf("deleted %d points row by row, want 1 (the partial edge day)", res.DeletedPoints)
	}
	var values []float64
	for _, row := range st.db.Rows(`SELECT value FROM metrics ORDER BY "timestamp"`) {
		values = append(values, row[0].(float64))
	}
	if fmt.Sprint(values) != "[2 3 4]" {
		t.Fatalf("remaining values %v, want [2 3 4] (edge kept to the second)", values)
	}
	if res.DeletedSeries != 2 || count(t, st, "SELECT count(*) FROM metric_series") != 2 {
		t.Fatalf("deleted %d series; %d left, want 2 deleted and the edge and new series left", res.DeletedSeries, count(t, st, "SELECT count(*) FROM metric_series"))
	}
	names, _ := st.MetricNames(ctx, "default")
	if fmt.Sprint(names) != "[gpu_utilization]" {
		t.Fatalf("names after retention: %v", names)
	}
	// Another replica pushes the removed series again: it comes back, nothing is orphaned.
	// (A replica whose cache still holds it notices at its daily touch; see the store tests.)
	if err := openStore(t, st.url).WritePoints(ctx, "default", []metrics.Point{point("gone_metric", "only-old", 6, now)}); err != nil {
		t.Fatal(err)
	}
	if n := count(t, st, `SELECT count(*) FROM metric_points p WHERE NOT EXISTS (SELECT 1 FROM metric_series s WHERE s.id = p.series_id)`); n != 0 {
		t.Fatalf("%d orphaned points after a cached series was removed", n)
	}
	if n := count(t, st, `SELECT count(*) FROM metrics WHERE name = 'gone_metric'`); n != 1 {
		t.Fatalf("re-pushed point not readable through its series: %d", n)
	}
}

func upserts(t *testing.T, body string) []traces.Upsert {
	t.Helper()
	ups, _, _, err := traces.ParseNativeBatch([]byte(body), now)
	if err != nil {
		t.Fatal(err)
	}
	return ups
}

func writeTrace(t *testing.T, st testStore, id string, ts time.Time) {
	t.Helper()
	body := fmt.Sprintf(`{"trace":{"id":%q,"timestamp":%q},"observations":[{"id":"%s-o1","startTime":%q},{"id":"%s-o2","startTime":%q}]}`,
		id, ts.Format(time.RFC3339), id, ts.Format(time.RFC3339), id, ts.Format(time.RFC3339))
	ups := upserts(t, body)
	ingest, _, _, err := traces.ParseIngestion([]byte(fmt.Sprintf(`{"batch":[{"id":"e-%s","type":"score-create","timestamp":%q,"body":{"id":"%s-s","traceId":%q,"name":"q","value":1}}]}`,
		id, ts.Format(time.RFC3339), id, id)), now)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.WriteTraces(context.Background(), "default", []*store.TraceWrite{store.PrepareTraceWrite(append(ups, ingest...))}); err != nil {
		t.Fatal(err)
	}
	ingestedAt(t, st, id, ts)
}

// ingestedAt pretends trace id (with its observations and scores) arrived at
// ts: retention goes by ingestion time, which only the database sets.
func ingestedAt(t *testing.T, st testStore, id string, ts time.Time) {
	t.Helper()
	st.db.Exec(`UPDATE traces SET created_at = $2 WHERE id = $1`, id, ts)
	st.db.Exec(`UPDATE observations SET created_at = $2 WHERE trace_id = $1 OR id = $1`, id, ts)
	st.db.Exec(`UPDATE scores SET created_at = $2 WHERE trace_id = $1`, id, ts)
}

func TestTracesRetention(t *testing.T) {
	t.Parallel()
	st := openStore(t, servertest.MigratedDatabase(t))
	ctx := context.Background()
	cutoff := now.AddDate(0, 0, -90)
	writeTrace(t, st, "old-1", cutoff.Add(-48*time.Hour))
	writeTrace(t, st, "old-2", cutoff.Add(-time.Second))
	writeTrace(t, st, "new-1", cutoff)
	writeTrace(t, st, "new-2", now)
	// Back-dated (or replayed) but ingested just now: retention goes by ingestion time, so it stays.
	writeTrace(t, st, "backdated", now.AddDate(0, 0, -200))
	ingestedAt(t, st, "backdated", now)
	// An orphan observation update (no trace) from long ago.
	orphan, _, _, _ := traces.ParseIngestion([]byte(`{"batch":[{"id":"x","type":"span-update","timestamp":"2025-01-01T00:00:00Z","body":{"id":"lonely","startTime":"2025-01-01T00:00:00Z"}}]}`), now)
	if err := st.WriteTraces(ctx, "default", []*store.TraceWrite{store.PrepareTraceWrite(orphan)}); err != nil {
		t.Fatal(err)
	}
	ingestedAt(t, st, "lonely", time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	p := &retention.Pruner{Store: st.Store, Log: quiet, MetricsDays: 30, TracesDays: 90, Now: func() time.Time { return now }}
	res, err := p.RunOnce(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.Traces.Traces != 2 || res.Traces.Observations != 5 || res.Traces.Scores != 2 || !res.Traces.Complete {
		t.Fatalf("deleted %+v, want 2 traces, 5 observations (4 + the orphan), 2 scores", res.Traces)
	}
	for table, want := range map[string]int{"traces": 3, "observations": 6, "scores": 3} {
		if n := count(t, st, "SELECT count(*) FROM "+table); n != want {
			t.Errorf("%s: %d rows left, want %d", table, n, want)
		}
	}
	if n := count(t, st, "SELECT count(*) FROM traces WHERE id IN ('new-1', 'new-2', 'backdated')"); n != 3 {
		t.Errorf("newer or recently ingested traces touched: %d of 3 left", n)
	}
}

func TestConcurrentPassesDoNotFailOrDoubleDelete(t *testing.T) {
	t.Parallel()
	url := servertest.MigratedDatabase(t)
	st := openStore(t, url)
	ctx := context.Background()
	for i := 0; i < 30; i++ {
		writeTrace(t, st, fmt.Sprintf("t%d", i), now.AddDate(0, 0, -100))
	}
	var wg sync.WaitGroup
	results := make([]retention.Result, 4)
	errs := make([]error, 4)
	for i := range results {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			p := &retention.Pruner{Store: openStore(t, url).Store, Log: quiet, MetricsDays: 30, TracesDays: 90, Now: func() time.Time { return now }}
			results[i], errs[i] = p.RunOnce(ctx)
		}(i)
	}
	wg.Wait()
	deleted := int64(0)
	for i := range results {
		if errs[i] != nil {
			t.Fatalf("pass %d: %v", i, errs[i])
		}
		deleted += results[i].Traces.Traces
	}
	if deleted != 30 || count(t, st, "SELECT count(*) FROM traces") != 0 {
		t.Fatalf("passes deleted %d traces in total, want exactly 30", deleted)
	}
}

// TestIngestDuringPrune: writes keep succeeding while a large prune runs.
func TestIngestDuringPrune(t *testing.T) {
	t.Parallel()
	s := servertest.Start(t, servertest.Options{})
	st := openStore(t, s.DatabaseURL)
	ctx := context.Background()
	// 12,000 expired traces (more than two delete batches), written directly.
	old := now.AddDate(0, 0, -200)
	var rows []map[string]any
	for i := 0; i < 12000; i++ {
		rows = append(rows, map[string]any{"id": fmt.Sprintf("old-%d", i), "ts": old.Add(time.Duration(i) * time.Second)})
	}
	payload, _ := json.Marshal(rows)
	st.db.Exec(`INSERT INTO traces (project_id, id, "timestamp", created_at, doc, stamps)
		SELECT 'default', r.id, r.ts, r.ts, '{}', '{}' FROM jsonb_to_recordset($1::jsonb) AS r(id text, ts timestamptz)`, string(payload))
	p := &retention.Pruner{Store: st.Store, Log: quiet, MetricsDays: 30, TracesDays: 90}
	done := make(chan error, 1)
	go func() { _, err := p.RunOnce(ctx); done <- err }()
	pushes := 0
	for running := true; running; {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			running = false
		default:
			r := s.Do(t, "POST", "/v1/l/batch", fmt.Sprintf(`{"trace":{"id":"live-%d"},"observations":[{"id":"live-%d-o"}]}`, pushes, pushes))
			if r.Status != 200 {
				t.Fatalf("push during prune: %d %s", r.Status, r.Body)
			}
			if r := s.Do(t, "POST", "/v1/metrics/batch", `{"metrics":[{"name":"live","value":1}]}`); r.Status != 200 {
				t.Fatalf("metrics push during prune: %d %s", r.Status, r.Body)
			}
			pushes++
		}
	}
	if n := count(t, st, "SELECT count(*) FROM traces WHERE id LIKE 'old-%'"); n != 0 {
		t.Fatalf("%d expired traces left", n)
	}
	if n := count(t, st, "SELECT count(*) FROM traces WHERE id LIKE 'live-%'"); n != pushes {
		t.Fatalf("%d of %d live traces stored", n, pushes)
	}
	t.Logf("%d pushes succeeded during the prune", pushes)
}

func TestRetentionCommand(t *testing.T) {
	t.Parallel()
	bin, err := devproc.Build("./server/cmd/xtrace", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	url := pgtest.NewDatabase(t) // not migrated: the command migrates first
	run := func(env ...string) (string, error) {
		cmd := exec.Command(bin, "retention")
		cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, env...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := run("DATABASE_URL="+url, "XTRACE_LOG_FORMAT=text")
	if err != nil || !strings.Contains(out, "retention pass") {
		t.Fatalf("retention: %v\n%s", err, out)
	}
	out, err = run("DATABASE_URL="+url, "METRICS_RETENTION_DAYS=0")
	if err == nil || !strings.Contains(out, "METRICS_RETENTION_DAYS") {
		t.Fatalf("bad setting: err=%v\n%s", err, out)
	}
	out, err = run("DATABASE_URL=postgres://nobody@127.0.0.1:1/x?connect_timeout=1")
	if err == nil || !strings.Contains(out, "xtrace retention:") {
		t.Fatalf("unreachable database: err=%v\n%s", err, out)
	}
}

// TestInProcessPruning: with XTRACE_RETENTION_INTERVAL set, the server prunes by itself and reports it on /metrics.
func TestInProcessPruning(t *testing.T) {
	t.Parallel()
	url := servertest.MigratedDatabase(t)
	st := openStore(t, url)
	writeTrace(t, st, "ancient", time.Now().AddDate(0, 0, -400))
	s := servertest.Start(t, servertest.Options{DatabaseURL: url, RetentionFirstPass: 10 * time.Millisecond,
		Env: map[string]string{"XTRACE_RETENTION_INTERVAL": "1h"}})
	deadline := time.Now().Add(30 * time.Second)
	for {
		body := string(s.Do(t, "GET", "/metrics", nil).Body)
		if strings.Contains(body, `xtrace_retention_deleted_rows_total{table="traces"} 1`) &&
			!strings.Contains(body, "xtrace_retention_last_success_timestamp_seconds 0\n") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no retention pass reported within 30s:\n%s", grep(body, "xtrace_retention"))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := count(t, st, "SELECT count(*) FROM traces"); n != 0 {
		t.Fatalf("%d traces left after the in-process pass", n)
	}
}

func grep(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

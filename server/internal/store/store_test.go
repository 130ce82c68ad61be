package store

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/prometheus/model/value"

	"github.com/xtrace-dev/xtrace-operator/internal/pgtest"
	"github.com/xtrace-dev/xtrace-operator/server/internal/metrics"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }

func open(t *testing.T, url string) *Store {
	t.Helper()
	s, err := Open(context.Background(), Options{URL: url, MaxConns: 8})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func TestConcurrentMigrationsApplyOnce(t *testing.T) {
	t.Parallel()
	url := pgtest.NewDatabase(t)
	var wg sync.WaitGroup
	results := make([][]string, 4)
	errs := make([]error, 4)
	for i := range results {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			s, err := Open(context.Background(), Options{URL: url, MaxConns: 2})
			if err != nil {
				errs[i] = err
				return
			}
			defer s.Close()
			results[i], errs[i] = s.Migrate(context.Background())
		}(i)
	}
	wg.Wait()
	applied := 0
	for i := range results {
		if errs[i] != nil {
			t.Fatalf("migrator %d: %v", i, errs[i])
		}
		applied += len(results[i])
	}
	all, _ := loadMigrations()
	if applied != len(all) {
		t.Fatalf("%d migrations applied by 4 concurrent migrators, want each of %d once", applied, len(all))
	}
}

// TestReadsUseGenericPlans: the server's connections keep one plan per
// statement (see setSessionParams) unless the connection string says
// otherwise.
func TestReadsUseGenericPlans(t *testing.T) {
	t.Parallel()
	url := pgtest.NewDatabase(t)
	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	for _, c := range []struct{ url, want string }{
		{url, "force_generic_plan"},
		{url + sep + "plan_cache_mode=auto", "auto"},
	} {
		var mode string
		if err := open(t, c.url).pool.QueryRow(context.Background(), "SHOW plan_cache_mode").Scan(&mode); err != nil {
			t.Fatal(err)
		}
		if mode != c.want {
			t.Errorf("plan_cache_mode %q, want %q", mode, c.want)
		}
	}
}

func migrated(t *testing.T) *Store {
	t.Helper()
	s := open(t, pgtest.NewDatabase(t))
	if _, err := s.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s
}

func pt(name string, labels map[string]string, v float64, ts time.Time) metrics.Point {
	return metrics.Point{Name: name, LabelsJSON: metrics.CanonicalLabels(labels), Value: v, Time: ts}
}

func TestPartitionsAheadAndOnDemand(t *testing.T) {
	t.Parallel()
	s := migrated(t)
	ctx := context.Background()
	now := time.Date(2026, 2, 14, 23, 30, 0, 0, time.UTC)
	if err := s.EnsurePartitionsAhead(ctx, now, 2); err != nil {
		t.Fatal(err)
	}
	// A back-filled point from a month earlier creates its window's partition.
	old := time.Date(2026, 1, 10, 5, 0, 0, 0, time.UTC)
	if err := s.WritePoints(ctx, "default", []metrics.Point{pt("x", nil, 1, old), pt("x", nil, 2, now)}); err != nil {
		t.Fatal(err)
	}
	parts, err := s.ListPartitions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range parts {
		names = append(names, p.Name)
	}
	// Raw points by raw window: the next PartitionsAhead; the back-filled
	// point's closed time gets its quarter hour.
	want := []string{"metric_points_m202601100500_202601100515"}
	for w := now; !w.After(now.Add(PartitionsAhead)); w = w.Add(RawWindow) {
		want = append(want, "metric_points_m"+w.Format("200601021504"))
	}
	if fmt.Sprint(names) != fmt.Sprint(want) {
		t.Fatalf("partitions %v, want %v", names, want)
	}
	chunkParts, err := s.ListChunkPartitions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	names = nil
	for _, p := range chunkParts {
		names = append(names, p.Name)
	}
	// Chunks by day: today and the next two, and the back-filled point's
	// day, made with its raw partition.
	if want := []string{"metric_chunks_p20260110", "metric_chunks_p20260214", "metric_chunks_p20260215", "metric_chunks_p20260216"}; fmt.Sprint(names) != fmt.Sprint(want) {
		t.Fatalf("chunk partitions %v, want %v", names, want)
	}
	// A second store (another replica) creating the same partitions does not fail.
	other := open(t, s.pool.Config().ConnString())
	if err := other.EnsurePartitionsAhead(ctx, now, 2); err != nil {
		t.Fatal(err)
	}
	var inOld int
	if err := s.pool.QueryRow(ctx, "SELECT count(*) FROM metric_points_m202601100500_202601100515").Scan(&inOld); err != nil || inOld != 1 {
		t.Fatalf("back-filled point not in its window's partition: %d %v", inOld, err)
	}
}

// TestBackfillPartitionsPerChunkWindow: a write that needs many raw windows
// (a back-fill) gets one partition per chunk window for the windows it
// needs, around the partitions that already exist, not one per raw window.
func TestBackfillPartitionsPerChunkWindow(t *testing.T) {
	t.Parallel()
	s := migrated(t)
	ctx := context.Background()
	at := func(hhmm string) time.Time {
		ts, err := time.Parse("2006-01-02 15:04", "2026-01-20 "+hhmm)
		if err != nil {
			t.Fatal(err)
		}
		return ts
	}
	// A late point first: closed time, its quarter hour.
	if err := s.WritePoints(ctx, "default", []metrics.Point{pt("x", nil, 0, at("00:30"))}); err != nil {
		t.Fatal(err)
	}
	var backfill []metrics.Point
	for _, hhmm := range []string{"00:00", "00:05", "00:15", "00:35", "01:55", "03:00"} {
		backfill = append(backfill, pt("x", nil, 1, at(hhmm)))
	}
	if err := s.WritePoints(ctx, "default", backfill); err != nil {
		t.Fatal(err)
	}
	// 00:10 lies between windows of the back-fill: the partition of that gap holds it too.
	if err := s.WritePoints(ctx, "default", []metrics.Point{pt("x", nil, 2, at("00:10"))}); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"metric_points_m202601200000_202601200030 [00:00, 00:30)",
		"metric_points_m202601200030_202601200045 [00:30, 00:45)",
		"metric_points_m202601200045_202601200156 [00:45, 01:56)",
		"metric_points_m202601200300 [03:00, 03:01)",
	}
	if got := partitionRanges(t, s); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("partitions\n%v\nwant\n%v", got, want)
	}
	var n int
	if err := s.pool.QueryRow(ctx, "SELECT count(*) FROM metric_points").Scan(&n); err != nil || n != 8 {
		t.Fatalf("points %d (%v), want 8", n, err)
	}
	// Compaction empties and drops them like any raw partition.
	res, err := s.Compact(ctx, at("06:00"), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.DroppedPartitions) != 4 || res.Points != 8 {
		t.Fatalf("compaction: %+v, want 8 points and the 4 partitions dropped", res)
	}
}

// partitionRanges lists the raw partitions as "name [HH:MM, HH:MM)".
func partitionRanges(t *testing.T, s *Store) []string {
	t.Helper()
	parts, err := s.ListPartitions(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range parts {
		out = append(out, fmt.Sprintf("%s [%s, %s)", p.Name, p.Start.Format("15:04"), p.End.Format("15:04")))
	}
	return out
}

// TestClosedTimeSharesPartitions: a live push gets its minute's partition;
// points of time the compactor has already closed share one per quarter
// hour, cut at the closing edge so that open minutes keep their own.
func TestClosedTimeSharesPartitions(t *testing.T) {
	t.Parallel()
	s := migrated(t)
	ctx := context.Background()
	now := time.Date(2026, 2, 14, 10, 7, 30, 0, time.UTC)
	s.now = func() time.Time { return now }
	closed := ClosedBefore(now) // 10:05
	for _, ts := range []time.Time{
		now,                        // open: 10:07
		closed.Add(-time.Second),   // closed: 10:00–10:05
		now.Add(-time.Hour),        // closed: 09:00–09:15
		closed.Add(time.Second),    // open: 10:05
		now.Add(-55 * time.Minute), // closed, in the quarter hour above
	} {
		if err := s.WritePoints(ctx, "default", []metrics.Point{pt("x", nil, 1, ts)}); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{
		"metric_points_m202602140900_202602140915 [09:00, 09:15)",
		"metric_points_m202602141000_202602141005 [10:00, 10:05)",
		"metric_points_m202602141005 [10:05, 10:06)",
		"metric_points_m202602141007 [10:07, 10:08)",
	}
	if got := partitionRanges(t, s); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("partitions\n%v\nwant\n%v", got, want)
	}
}

// TestALatePartitionDroppedBeforeItsWriteIsMadeAgainWithIt: a compaction
// pass that drops a closed, empty raw partition between its creation for a
// late write and that write's commit (every time: a compactor can keep
// passing over closed time) costs the write a retry, not the write.
func TestALatePartitionDroppedBeforeItsWriteIsMadeAgainWithIt(t *testing.T) {
	t.Parallel()
	s := migrated(t)
	ctx := context.Background()
	now := time.Date(2026, 2, 14, 10, 7, 30, 0, time.UTC)
	s.now = func() time.Time { return now }
	late := now.Add(-time.Hour) // closed
	drops := 0
	s.afterPartitions = func() {
		parts, err := s.ListPartitions(ctx)
		if err != nil {
			t.Error(err)
			return
		}
		for _, p := range parts {
			if dropped, err := s.dropPartition(ctx, p, true); err != nil {
				t.Error(err)
			} else if dropped {
				drops++
			}
		}
	}
	points := []metrics.Point{pt("x", nil, 1, late), pt("x", nil, 2, late.Add(time.Second))}
	if err := s.WritePoints(ctx, "default", points); err != nil {
		t.Fatalf("write: %v (partitions dropped before it: %d)", err, drops)
	}
	if drops < 1 {
		t.Fatal("the partition was never dropped; the test needs the first try to lose it")
	}
	var n int
	if err := s.pool.QueryRow(ctx, "SELECT count(*) FROM metric_points WHERE ts >= $1", late).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != len(points) {
		t.Fatalf("%d points stored, want %d", n, len(points))
	}
}

// TestFiveMinutePartitionsOfEarlierVersions: raw partitions made when the
// raw window was 5 minutes wide are read with their real range, compacted
// and dropped.
func TestFiveMinutePartitionsOfEarlierVersions(t *testing.T) {
	t.Parallel()
	s := migrated(t)
	ctx := context.Background()
	for _, sql := range []string{
		"CREATE TABLE metric_points_w202602140900 (LIKE metric_points INCLUDING DEFAULTS INCLUDING CONSTRAINTS)",
		"ALTER TABLE metric_points ATTACH PARTITION metric_points_w202602140900 FOR VALUES FROM ('2026-02-14T09:00:00Z') TO ('2026-02-14T09:05:00Z')",
	} {
		if _, err := s.pool.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	at := time.Date(2026, 2, 14, 9, 3, 0, 0, time.UTC)
	s.now = func() time.Time { return at }
	if err := s.WritePoints(ctx, "default", []metrics.Point{pt("x", nil, 1, at.Add(-2*time.Minute)), pt("x", nil, 2, at)}); err != nil {
		t.Fatal(err)
	}
	parts, err := s.ListPartitions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(parts) != 1 || parts[0].Start != at.Add(-3*time.Minute) || parts[0].End != at.Add(2*time.Minute) {
		t.Fatalf("partitions %+v, want the five-minute one alone", parts)
	}
	if n := count(t, s, "SELECT count(*) FROM metric_points_w202602140900"); n != 2 {
		t.Fatalf("%d points in the five-minute partition, want 2", n)
	}
	res, err := s.Compact(ctx, at.Add(10*time.Minute), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if res.Points != 2 || fmt.Sprint(res.DroppedPartitions) != "[metric_points_w202602140900]" {
		t.Fatalf("compaction: %+v, want 2 points and the partition dropped", res)
	}
}

func TestMetricsViewHasTheOriginalColumns(t *testing.T) {
	t.Parallel()
	s := migrated(t)
	ctx := context.Background()
	ts := time.Date(2026, 2, 14, 10, 0, 0, 0, time.UTC)
	if err := s.WritePoints(ctx, "default", []metrics.Point{pt("gpu_utilization", map[string]string{"node_id": "n1", "gpu_index": "0"}, 87.5, ts)}); err != nil {
		t.Fatal(err)
	}
	var project, env, name, labels string
	var value float64
	var got time.Time
	err := s.pool.QueryRow(ctx, `SELECT project_id, environment, name, labels::text, value, "timestamp" FROM metrics`).Scan(&project, &env, &name, &labels, &value, &got)
	if err != nil {
		t.Fatal(err)
	}
	if project != "default" || env != "default" || name != "gpu_utilization" || labels != `{"node_id": "n1", "gpu_index": "0"}` || value != 87.5 || !got.Equal(ts) {
		t.Fatalf("view row: %s %s %s %s %v %v", project, env, name, labels, value, got)
	}
}

// onReplicas runs fn on n stores of one database at once, as n replicas would
// (each with its own pool and cold caches), and fails the test on any error.
func onReplicas(t *testing.T, url string, n int, fn func(w int, st *Store) error) {
	t.Helper()
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make([]error, n)
	for w := 0; w < n; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			st, err := Open(context.Background(), Options{URL: url, MaxConns: 2})
			if err != nil {
				errs[w] = err
				return
			}
			defer st.Close()
			<-start
			errs[w] = fn(w, st)
		}(w)
	}
	close(start)
	wg.Wait()
	for w, err := range errs {
		if err != nil {
			t.Fatalf("replica %d: %v", w, err)
		}
	}
}

func TestConcurrentWritersAgreeOnSeriesIDs(t *testing.T) {
	t.Parallel()
	s := migrated(t)
	ctx := context.Background()
	url := s.pool.Config().ConnString()
	base := time.Date(2026, 2, 14, 10, 0, 0, 0, time.UTC)
	if err := s.EnsurePartitionsAhead(ctx, base, 0); err != nil {
		t.Fatal(err)
	}
	// Four stores (as four replicas, each with a cold cache) write the same 200 new series at once.
	onReplicas(t, url, 4, func(w int, st *Store) error {
		var pts []metrics.Point
		for i := 0; i < 200; i++ {
			pts = append(pts, pt("kv_cache_usage", map[string]string{"replica_id": fmt.Sprint(i)}, float64(w), base.Add(time.Duration(w)*time.Second)))
		}
		return st.WritePoints(ctx, "default", pts)
	})
	var series, points int
	if err := s.pool.QueryRow(ctx, "SELECT count(*) FROM metric_series").Scan(&series); err != nil {
		t.Fatal(err)
	}
	if err := s.pool.QueryRow(ctx, "SELECT count(*) FROM metric_points").Scan(&points); err != nil {
		t.Fatal(err)
	}
	if series != 200 || points != 800 {
		t.Fatalf("%d series and %d points, want 200 and 800", series, points)
	}
}

func TestIsUnavailable(t *testing.T) {
	s := open(t, "postgres://nobody@127.0.0.1:1/none?sslmode=disable&connect_timeout=1")
	err := s.Ping(context.Background())
	if err == nil || !IsUnavailable(err) {
		t.Fatalf("unreachable database: %v is not classified as unavailable", err)
	}
	// Exhausted resources are not "unavailable": a retry of the same request would fail again.
	for code, want := range map[string]bool{"53200": false, "53100": false, "53400": false, "22P05": false,
		"53300": true, "57P01": true, "08006": true, "55P03": true} {
		if got := IsUnavailable(&pgconn.PgError{Code: code}); got != want {
			t.Errorf("SQLSTATE %s: unavailable=%v, want %v", code, got, want)
		}
	}
}

// TestStaleCachedSeriesIsResolvedAgain: retention removed a series this
// replica still has cached; the daily "seen" touch notices and the point is
// written to a live series, never to a deleted id.
func TestStaleCachedSeriesIsResolvedAgain(t *testing.T) {
	t.Parallel()
	s := migrated(t)
	ctx := context.Background()
	ts := time.Date(2026, 2, 14, 10, 0, 0, 0, time.UTC)
	p := pt("gpu_temperature", map[string]string{"node_id": "n1"}, 50, ts)
	if err := s.WritePoints(ctx, "default", []metrics.Point{p}); err != nil {
		t.Fatal(err)
	}
	key := seriesKey{"default", p.Name, p.LabelsJSON}
	entry, ok := s.series.get(key)
	if !ok {
		t.Fatal("series not cached after a write")
	}
	// As retention would: the series and its points are gone; the cache entry is from an earlier day.
	if _, err := s.pool.Exec(ctx, "DELETE FROM metric_points; DELETE FROM metric_series"); err != nil {
		t.Fatal(err)
	}
	s.series.put(key, cachedSeries{id: entry.id, seen: entry.seen.AddDate(0, 0, -1)})
	p.Time = ts.Add(time.Minute)
	if err := s.WritePoints(ctx, "default", []metrics.Point{p}); err != nil {
		t.Fatal(err)
	}
	var orphans, visible int
	_ = s.pool.QueryRow(ctx, "SELECT count(*) FROM metric_points p WHERE NOT EXISTS (SELECT 1 FROM metric_series s WHERE s.id = p.series_id)").Scan(&orphans)
	_ = s.pool.QueryRow(ctx, "SELECT count(*) FROM metrics WHERE name = 'gpu_temperature'").Scan(&visible)
	if orphans != 0 || visible != 1 {
		t.Fatalf("%d orphaned points, %d visible; want 0 and 1", orphans, visible)
	}
}

func TestChangedMigrationIsRefused(t *testing.T) {
	t.Parallel()
	s := migrated(t)
	ctx := context.Background()
	if _, err := s.pool.Exec(ctx, "UPDATE xtrace_schema_migrations SET checksum = 'edited' WHERE version = 1"); err != nil {
		t.Fatal(err)
	}
	_, err := s.Migrate(ctx)
	if err == nil || !strings.Contains(err.Error(), "0001_metrics.sql was changed after it was applied") {
		t.Fatalf("a changed migration was accepted: %v", err)
	}
	if _, err := s.pool.Exec(ctx, "UPDATE xtrace_schema_migrations SET checksum = $1 WHERE version = 1", mustChecksum(t, 1)); err != nil {
		t.Fatal(err)
	}
	if applied, err := s.Migrate(ctx); err != nil || len(applied) != 0 {
		t.Fatalf("re-running migrations: %v %v", applied, err)
	}
}

func mustChecksum(t *testing.T, version int) string {
	ms, err := loadMigrations()
	if err != nil {
		t.Fatal(err)
	}
	return ms[version-1].checksum()
}

// TestPointsCopyKeepsEveryValueExactly: the hand-encoded binary COPY stores
// what pgx's own encoding stored — every float bit pattern (NaN payloads
// such as staleness markers included), and times cut to PostgreSQL's
// microseconds — on both write paths (new series in a transaction, known
// series on their own).
func TestPointsCopyKeepsEveryValueExactly(t *testing.T) {
	t.Parallel()
	s := migrated(t)
	ctx := context.Background()
	base := time.Now().UTC().Truncate(time.Second)
	values := []float64{87.5, math.Copysign(0, -1), math.NaN(), math.Float64frombits(value.StaleNaN), math.Inf(1), math.Inf(-1), 5e-324, math.MaxFloat64, -123456.789}
	var first, second []metrics.Point
	for i, v := range values {
		labels := map[string]string{"gpu": strconv.Itoa(i)}
		first = append(first, pt("gpu_utilization", labels, v, base.Add(time.Duration(i)*time.Microsecond+999*time.Nanosecond)))
		second = append(second, pt("gpu_utilization", labels, -v, base.Add(time.Second+time.Duration(i)*123457*time.Nanosecond)))
	}
	for _, group := range [][]metrics.Point{first, second} {
		if err := s.WritePoints(ctx, "default", group); err != nil {
			t.Fatal(err)
		}
	}
	rows, err := s.pool.Query(ctx, `SELECT s.labels->>'gpu', p.ts, p.value FROM metric_points p JOIN metric_series s ON s.id = p.series_id`)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	var gpu string
	var ts time.Time
	var v float64
	_, err = pgx.ForEachRow(rows, []any{&gpu, &ts, &v}, func() error {
		got[gpu+"@"+ts.UTC().Format(time.RFC3339Nano)] = v
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2*len(values) {
		t.Fatalf("%d rows stored, want %d: %v", len(got), 2*len(values), got)
	}
	for _, p := range append(first, second...) {
		var labels map[string]string
		if err := json.Unmarshal([]byte(p.LabelsJSON), &labels); err != nil {
			t.Fatal(err)
		}
		key := labels["gpu"] + "@" + p.Time.Truncate(time.Microsecond).Format(time.RFC3339Nano)
		stored, ok := got[key]
		if !ok {
			t.Fatalf("no row for %s in %v", key, got)
		}
		if math.Float64bits(stored) != math.Float64bits(p.Value) { // NaN payloads (staleness markers) too
			t.Errorf("%s: stored %v (%#x), wrote %v (%#x)", key, stored, math.Float64bits(stored), p.Value, math.Float64bits(p.Value))
		}
	}
}

package store

import (
	"context"
	"fmt"
	"math"
	"math/rand"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"

	"github.com/xtrace-dev/xtrace-operator/internal/pgtest"
	"github.com/xtrace-dev/xtrace-operator/server/internal/chunks"
	"github.com/xtrace-dev/xtrace-operator/server/internal/metrics"
)

// storedPoints reads every point of name through the metrics view (raw rows
// and the SQL decoder of chunks), as "series ts value" lines, sorted.
func storedPoints(t *testing.T, s *Store, name string) []string {
	t.Helper()
	rows, err := s.pool.Query(context.Background(), `SELECT labels->>'s', "timestamp", value FROM metrics WHERE name = $1`, name)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var series string
		var ts time.Time
		var v float64
		if err := rows.Scan(&series, &ts, &v); err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("%s %s %v", series, ts.UTC().Format(time.RFC3339Nano), v))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

func pointLines(pts []metrics.Point) []string {
	latest := map[string]float64{} // last write wins
	for _, p := range pts {
		latest[fmt.Sprintf("%s %s", p.LabelsJSON, p.Time.UTC().Format(time.RFC3339Nano))] = p.Value
	}
	var out []string
	for k, v := range latest {
		var series, ts string
		fmt.Sscanf(k, "%s %s", &series, &ts)
		out = append(out, fmt.Sprintf("%s %s %v", series[6:len(series)-2], ts, v)) // {"s":"a"} → a
	}
	sort.Strings(out)
	return out
}

func count(t *testing.T, s *Store, sql string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := s.pool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// TestCompactionKeepsEveryPointAndFreesRawRows: closed raw windows move from
// raw rows into chunks, with no point lost or changed (read back through the
// SQL view, whose decoder is checked by the same comparison); emptied raw
// partitions are dropped; the hot window stays raw.
func TestCompactionKeepsEveryPointAndFreesRawRows(t *testing.T) {
	t.Parallel()
	s := migrated(t)
	ctx := context.Background()
	now := time.Date(2026, 2, 14, 12, 10, 0, 0, time.UTC)
	rng := rand.New(rand.NewSource(3))
	var pts []metrics.Point
	for _, series := range []string{"a", "b", "c"} {
		ts := now.Add(-3 * time.Hour)
		for ts.Before(now) {
			v := math.Round(rng.Float64()*1000) / 10
			switch rng.Intn(40) {
			case 0:
				v = math.Float64frombits(value.StaleNaN)
			case 1:
				v = math.Inf(1)
			case 2:
				v = -1.2345e-310 // subnormal
			case 3:
				v = 5e-324 // the smallest subnormal
			case 4:
				v = -math.MaxFloat64
			}
			pts = append(pts, pt("compact_me", map[string]string{"s": series}, v, ts))
			ts = ts.Add(5*time.Second + time.Duration(rng.Intn(1000))*time.Microsecond)
		}
	}
	// Pushed as a live fleet pushes them: a raw window after another, at
	// its end, each in its own partition (TestBackfillPartitionsPerChunkWindow
	// covers one write of them all, TestClosedTimeSharesPartitions late ones).
	byWindow := map[time.Time][]metrics.Point{}
	for _, p := range pts {
		w := p.Time.Truncate(RawWindow)
		byWindow[w] = append(byWindow[w], p)
	}
	for w := now.Add(-3 * time.Hour); w.Before(now); w = w.Add(RawWindow) {
		s.now = func() time.Time { return w.Add(RawWindow) }
		if err := s.WritePoints(ctx, "default", byWindow[w]); err != nil {
			t.Fatal(err)
		}
	}
	s.now = time.Now
	want := pointLines(pts)
	if err := s.EnsurePartitionsAhead(ctx, now, 0); err != nil {
		t.Fatal(err)
	}
	res, err := s.Compact(ctx, now, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	closed := ClosedBefore(now) // 12:08: 12:08–12:10 stays raw
	var rawWant int64
	for _, p := range pts {
		if !p.Time.Before(closed) {
			rawWant++
		}
	}
	if res.Points != int64(len(pts))-rawWant || !res.Complete {
		t.Fatalf("compacted %d points (complete=%v), want %d", res.Points, res.Complete, int64(len(pts))-rawWant)
	}
	if n := count(t, s, "SELECT count(*) FROM metric_points"); n != rawWant {
		t.Fatalf("%d raw rows left, want the %d of the hot window", n, rawWant)
	}
	if n := count(t, s, "SELECT count(*) FROM metric_chunks"); n != 3*3 { // 3 series × windows 08–10, 10–12, 12–14 (being filled)
		t.Fatalf("%d chunk rows, want 9", n)
	}
	// The day's chunk partition is analysed by the pass, not left to
	// autovacuum: queries right after it are planned from its real size.
	if n := count(t, s, "SELECT count(*) FROM pg_stat_user_tables WHERE relname = 'metric_chunks_p20260214' AND last_analyze IS NOT NULL"); n != 1 {
		t.Fatal("the pass did not analyse the chunk partition it filled")
	}
	// The hot window's partitions are analysed too; those made ahead, still empty, are not.
	if n := count(t, s, "SELECT count(*) FROM pg_stat_user_tables WHERE relname = 'metric_points_m202602141209' AND last_analyze IS NOT NULL"); n != 1 {
		t.Fatal("the pass did not analyse the hot window's partition")
	}
	if n := count(t, s, "SELECT count(*) FROM pg_stat_user_tables WHERE relname = 'metric_points_m202602141211' AND last_analyze IS NOT NULL"); n != 0 {
		t.Fatal("the pass analysed a partition made ahead")
	}
	if want := int(closed.Sub(now.Add(-3*time.Hour)) / RawWindow); len(res.DroppedPartitions) != want { // 09:10 to 12:08
		t.Fatalf("dropped partitions %v, want the %d closed raw windows", res.DroppedPartitions, want)
	}
	if got := storedPoints(t, s, "compact_me"); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("points differ after compaction:\n got %d: %v\nwant %d: %v", len(got), head(got), len(want), head(want))
	}
	// A second pass finds nothing to do.
	if res, err := s.Compact(ctx, now, time.Minute); err != nil || res.Points != 0 {
		t.Fatalf("second pass: %+v %v", res, err)
	}

	// Late points for a compacted window: a new time, and a new value for a stored time.
	late := []metrics.Point{
		pt("compact_me", map[string]string{"s": "a"}, 42, now.Add(-150*time.Minute).Add(7*time.Millisecond)),
		pt("compact_me", map[string]string{"s": "b"}, 4242, pts[len(pts)/2].Time),
	}
	if err := s.WritePoints(ctx, "default", late); err != nil {
		t.Fatal(err)
	}
	all := append(append([]metrics.Point{}, pts...), late...)
	want = pointLines(all)
	if got := storedPoints(t, s, "compact_me"); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("late points not read over the chunks:\n got %d: %v\nwant %d: %v", len(got), head(got), len(want), head(want))
	}
	checkReadSamples(t, s, all, now)
	res, err = s.Compact(ctx, now, time.Minute)
	if err != nil || res.Points != 2 || res.Merged != 2 {
		t.Fatalf("merging late points: %+v %v", res, err)
	}
	if got := storedPoints(t, s, "compact_me"); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("late points lost or doubled by the merge:\n got %d: %v\nwant %d: %v", len(got), head(got), len(want), head(want))
	}
	if n := count(t, s, "SELECT count(*) FROM metric_points"); n != rawWant {
		t.Fatalf("%d raw rows after the merge, want %d", n, rawWant)
	}
	checkReadSamples(t, s, all, now)
}

// firstSamples prints the start of a batch for a failure message.
func firstSamples(b SampleBatch) string {
	n := min(len(b.T), 8)
	return fmt.Sprint(b.T[:n], b.V[:n])
}

// checkReadSamples compares what ReadSamples (PromQL's reads) gives for
// ranges across the tiers — starting and ending inside chunks, spanning
// late raw points over compacted ones and the raw hot window — with the
// samples computed from the points written: last write wins per time, at
// millisecond precision the last in each millisecond.
func checkReadSamples(t *testing.T, s *Store, written []metrics.Point, now time.Time) {
	t.Helper()
	ctx := context.Background()
	for _, series := range []string{"a", "b"} {
		found, err := s.SelectSeries(ctx, SeriesQuery{Project: "default", AnyTime: true, Limit: 10, Matchers: []*labels.Matcher{
			labels.MustNewMatcher(labels.MatchEqual, "__name__", "compact_me"), labels.MustNewMatcher(labels.MatchEqual, "s", series)}})
		if err != nil || len(found) != 1 {
			t.Fatalf("series %s: %v %v", series, found, err)
		}
		for _, r := range [][2]time.Duration{{-170 * time.Minute, -100 * time.Minute}, {-151 * time.Minute, -2 * time.Minute}, {-3 * time.Hour, 0}} {
			mint, maxt := now.Add(r[0]).UnixMilli()+3, now.Add(r[1]).UnixMilli()-7
			byTime := map[int64]float64{} // microseconds; the last write wins
			for _, p := range written {
				if p.LabelsJSON == metrics.CanonicalLabels(map[string]string{"s": series}) {
					byTime[p.Time.UnixMicro()] = p.Value
				}
			}
			times := make([]int64, 0, len(byTime))
			for us := range byTime {
				if us >= mint*1000 && us < (maxt+1)*1000 {
					times = append(times, us)
				}
			}
			slices.Sort(times)
			want := SampleBatch{SeriesID: found[0].ID}
			for _, us := range times {
				if n := len(want.T); n > 0 && want.T[n-1] == us/1000 {
					want.V[n-1] = byTime[us]
					continue
				}
				want.T, want.V = append(want.T, us/1000), append(want.V, byTime[us])
			}
			var got SampleBatch
			err = s.ReadSamples(ctx, []int64{found[0].ID}, mint, maxt, 1e6, func(b SampleBatch) error { got = b; return nil })
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got.T, want.T) || fmt.Sprint(got.V) != fmt.Sprint(want.V) {
				t.Fatalf("series %s, range %v: %d samples read, want %d\n got %v\nwant %v", series, r,
					len(got.T), len(want.T), firstSamples(got), firstSamples(want))
			}
		}
	}
}

// TestRollupsAreStoredAsWritten: a chunk row's rollups stay uncompressed
// and inline, as read by every long-range query, even where they would
// compress well (every 5-minute bucket alike) and the samples make the row
// large enough to be toasted: the chunk partitions' low toast_tuple_target
// would otherwise have PostgreSQL compress them.
func TestRollupsAreStoredAsWritten(t *testing.T) {
	t.Parallel()
	s := migrated(t)
	ctx := context.Background()
	now := time.Date(2026, 2, 14, 12, 10, 0, 0, time.UTC)
	rng := rand.New(rand.NewSource(5))
	pattern := make([]float64, 60) // five minutes of samples, repeated
	for i := range pattern {
		pattern[i] = rng.Float64() * 100 // full mantissas: the samples take ~8 bytes each
	}
	var pts []metrics.Point
	for i, ts := 0, now.Add(-4*time.Hour); ts.Before(now); i, ts = i+1, ts.Add(5*time.Second) {
		pts = append(pts, pt("repeating", map[string]string{"s": "a"}, pattern[i%len(pattern)], ts))
	}
	if err := s.WritePoints(ctx, "default", pts); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Compact(ctx, now, time.Minute); err != nil {
		t.Fatal(err)
	}
	if n := count(t, s, "SELECT count(*) FROM metric_chunks WHERE octet_length(rollup) >= 20*42 AND octet_length(data) > 8000"); n != 2 {
		t.Fatalf("%d chunk rows of closed windows with rollups and many samples, want 2", n)
	}
	// pg_column_size is the stored size: the bytes and a 1- or 4-byte header when stored as written.
	if n := count(t, s, `SELECT count(*) FROM metric_chunks
		WHERE pg_column_size(rollup) NOT IN (octet_length(rollup) + 1, octet_length(rollup) + 4)
		   OR pg_column_size(rollup_hour) NOT IN (octet_length(rollup_hour) + 1, octet_length(rollup_hour) + 4)`); n != 0 {
		t.Fatalf("%d chunk rows have compressed or out-of-line rollups", n)
	}
}

func head(lines []string) []string {
	if len(lines) > 5 {
		return lines[:5]
	}
	return lines
}

// TestCompactionSurvivesADatabaseCrash kills PostgreSQL while a compaction
// pass is half done. After recovery every point is there exactly once, and
// the next pass finishes the work.
func TestCompactionSurvivesADatabaseCrash(t *testing.T) {
	cluster := pgtest.StartPrivate(t)
	url := cluster.URL("postgres")
	s := open(t, url)
	ctx := context.Background()
	if _, err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 2, 14, 12, 10, 0, 0, time.UTC)
	var pts []metrics.Point
	for i := 0; i < 2500; i++ { // several transactions' worth of series (compactSeriesPerTx each)
		for ts := now.Add(-70 * time.Minute); ts.Before(now.Add(-10 * time.Minute)); ts = ts.Add(30 * time.Second) {
			pts = append(pts, pt("crash_me", map[string]string{"s": fmt.Sprint(i)}, float64(i)+float64(ts.Unix()%1000)/10, ts))
		}
	}
	for start := 0; start < len(pts); start += 20000 {
		if err := s.WritePoints(ctx, "default", pts[start:min(start+20000, len(pts))]); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan error, 1)
	go func() { _, err := s.Compact(ctx, now, time.Minute); done <- err }()
	watch := pgtest.Connect(t, url)
	deadline := time.Now().Add(60 * time.Second)
	for watch.Int("SELECT count(*) FROM metric_chunks") == 0 { // the first transactions committed, more to come
		if time.Now().After(deadline) {
			t.Fatal("compaction wrote nothing within a minute")
		}
		time.Sleep(time.Millisecond)
	}
	cluster.Crash()
	if err := <-done; err == nil {
		t.Fatal("the pass finished before the crash; make the data larger")
	}
	cluster.Restart()
	s2 := open(t, url)
	partial := count(t, s2, "SELECT count(*) FROM metric_chunks")
	raw := count(t, s2, "SELECT count(*) FROM metric_points")
	compacted := count(t, s2, "SELECT coalesce(sum(count), 0) FROM metric_chunks")
	if raw+compacted != int64(len(pts)) || partial == 0 || raw == 0 {
		t.Fatalf("after the crash: %d raw + %d compacted points in %d chunks, want %d in all, both tiers non-empty", raw, compacted, partial, len(pts))
	}
	if res, err := s2.Compact(ctx, now, time.Minute); err != nil || !res.Complete {
		t.Fatalf("pass after recovery: %+v %v", res, err)
	}
	if got, want := decodedPoints(t, s2, "crash_me"), pointLines(pts); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("points after crash and recovery: %d, want %d (first: %v vs %v)", len(got), len(want), head(got), head(want))
	}
	t.Logf("crashed with %d of %d points compacted into %d chunks; recovered and finished", compacted, len(pts), partial)
}

// decodedPoints is storedPoints through the server's own reader (ReadSeries
// and the Go decoder): much faster than the SQL view on many points.
func decodedPoints(t *testing.T, s *Store, name string) []string {
	t.Helper()
	ctx := context.Background()
	series, err := s.FindSeries(ctx, "default", metrics.Selector{Name: name, From: time.Unix(0, 0), To: time.Now().AddDate(1, 0, 0), Limit: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	label := map[int64]string{}
	var ids []int64
	for _, sr := range series {
		ids = append(ids, sr.ID)
		label[sr.ID] = sr.Labels["s"]
	}
	data, err := s.ReadSeries(ctx, "default", metrics.ReadRequest{IDs: ids, From: time.Unix(0, 0), To: time.Now().AddDate(1, 0, 0)})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, d := range data {
		raw := map[int64]bool{}
		for _, p := range d.Raw {
			raw[p.T] = true
			out = append(out, fmt.Sprintf("%s %s %v", label[d.ID], time.UnixMicro(p.T).UTC().Format(time.RFC3339Nano), p.V))
		}
		for _, w := range d.Windows {
			samples, err := chunks.Decode(w.Data)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range samples {
				if !raw[p.T] {
					out = append(out, fmt.Sprintf("%s %s %v", label[d.ID], time.UnixMicro(p.T).UTC().Format(time.RFC3339Nano), p.V))
				}
			}
		}
	}
	sort.Strings(out)
	return out
}

// TestLatestValuesAdvanceOnlyForward: metric_latest holds each series'
// newest point; older points (out of order) do not move it back, a new value
// for the newest time replaces it, and RepairLatest restores rows lost
// before they were written.
func TestLatestValuesAdvanceOnlyForward(t *testing.T) {
	t.Parallel()
	s := migrated(t)
	ctx := context.Background()
	base := time.Date(2026, 2, 14, 10, 0, 0, 0, time.UTC)
	write := func(v float64, ts time.Time) {
		t.Helper()
		if err := s.WritePoints(ctx, "default", []metrics.Point{pt("latest_me", map[string]string{"s": "a"}, v, ts)}); err != nil {
			t.Fatal(err)
		}
	}
	ids, err := s.SeriesIDs(ctx, "default", []metrics.Point{pt("latest_me", map[string]string{"s": "a"}, 0, base)})
	if err != nil {
		t.Fatal(err)
	}
	latest := func() chunks.Sample {
		t.Helper()
		got, err := s.LatestPoints(ctx, "default", ids)
		if err != nil {
			t.Fatal(err)
		}
		return got[ids[0]]
	}
	write(1, base.Add(10*time.Second))
	write(2, base.Add(5*time.Second)) // older, arrives later
	if l := latest(); l.V != 1 || l.T != base.Add(10*time.Second).UnixMicro() {
		t.Fatalf("after an out-of-order point: %+v, want the newer one (1)", l)
	}
	write(3, base.Add(10*time.Second)) // the same time again: the last write wins
	if l := latest(); l.V != 3 {
		t.Fatalf("after a re-push: %+v, want 3", l)
	}
	s.pool.Exec(ctx, "DELETE FROM metric_latest")
	if err := s.RepairLatest(ctx, base); err != nil {
		t.Fatal(err)
	}
	if l := latest(); l.V != 3 || l.T != base.Add(10*time.Second).UnixMicro() {
		t.Fatalf("after repair: %+v, want 3 at +10s", l)
	}
}

// TestInterruptedDetachIsFinishedAndItsRowsShownAgain: a detach cut short
// (the process died between its two steps) leaves a partition pending, its
// rows hidden from every reader; the next compaction pass finishes the
// detach and attaches the partition back when it holds rows.
func TestInterruptedDetachIsFinishedAndItsRowsShownAgain(t *testing.T) {
	t.Parallel()
	s := migrated(t)
	ctx := context.Background()
	old := time.Date(2026, 2, 14, 9, 1, 0, 0, time.UTC)
	if err := s.WritePoints(ctx, "default", []metrics.Point{pt("pending_me", nil, 7, old)}); err != nil {
		t.Fatal(err)
	}
	parts, err := s.ListPartitions(ctx)
	if err != nil || len(parts) != 1 {
		t.Fatalf("partitions %v (%v), want the one of the point", parts, err)
	}
	name := parts[0].Name
	reader, err := s.pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Release()
	detacher, err := s.pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer detacher.Release()
	// A reader's open transaction makes the detach wait after its first step.
	if _, err := reader.Exec(ctx, "BEGIN; SELECT count(*) FROM metric_points"); err != nil {
		t.Fatal(err)
	}
	var pid int
	if err := detacher.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := detacher.Exec(ctx, "ALTER TABLE metric_points DETACH PARTITION "+name+" CONCURRENTLY")
		done <- err
	}()
	deadline := time.Now().Add(30 * time.Second)
	for count(t, s, "SELECT count(*) FROM pg_inherits WHERE inhrelid = '"+name+"'::regclass AND inhdetachpending") == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the detach never became pending")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := s.pool.Exec(ctx, "SELECT pg_cancel_backend($1)", pid); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err == nil {
		t.Fatal("the detach was not interrupted")
	}
	if _, err := reader.Exec(ctx, "COMMIT"); err != nil {
		t.Fatal(err)
	}
	if n := count(t, s, "SELECT count(*) FROM metrics WHERE name = 'pending_me'"); n != 0 {
		t.Fatalf("setup: the pending partition's point is visible (%d); the test proves nothing", n)
	}
	if _, err := s.Compact(ctx, old.Add(time.Hour), time.Minute); err != nil {
		t.Fatal(err)
	}
	if n := count(t, s, "SELECT count(*) FROM pg_inherits WHERE inhdetachpending"); n != 0 {
		t.Fatalf("%d partitions still pending a detach", n)
	}
	if n := count(t, s, "SELECT count(*) FROM metrics WHERE name = 'pending_me'"); n != 1 {
		t.Fatalf("the point is visible %d times after compaction, want 1", n)
	}
}

// TestAPassCompactsPartitionsMadeSinceItBegan: a late write can make a raw
// partition again, for a window that a pass has already emptied and
// dropped, while the next pass runs. That pass finds rows in a partition it
// did not list; it compacts them like the others, rather than failing (and
// failing again, for as long as late points keep coming).
func TestAPassCompactsPartitionsMadeSinceItBegan(t *testing.T) {
	t.Parallel()
	s := migrated(t)
	ctx := context.Background()
	old := time.Date(2026, 2, 14, 9, 1, 0, 0, time.UTC)
	if err := s.WritePoints(ctx, "default", []metrics.Point{pt("made_since", nil, 1, old), pt("made_since", nil, 2, old.Add(time.Second))}); err != nil {
		t.Fatal(err)
	}
	from := old.Truncate(ChunkWindow)
	var res CompactionResult
	// The pass's list of partitions is empty: every partition was made since it began.
	if err := s.compactWindow(ctx, from, from.Add(ChunkWindow), map[uint32]string{}, time.Now().Add(time.Minute), &res); err != nil {
		t.Fatal(err)
	}
	if res.Points != 2 || res.Chunks != 1 {
		t.Errorf("compacted %d points into %d chunks, want 2 into 1", res.Points, res.Chunks)
	}
	if n := count(t, s, "SELECT count(*) FROM metric_points"); n != 0 {
		t.Errorf("%d raw rows left", n)
	}
	if got := decodedPoints(t, s, "made_since"); len(got) != 2 {
		t.Errorf("points in chunks: %v, want both", got)
	}
}

// TestAQueryPlannedBeforeACompactionSeesItsPoints: a statement fixes the
// partitions it reads when it is planned, and takes its snapshot a moment
// later. A compaction that commits in between must not move points into a
// partition the plan does not have: the day's chunk partition is made with
// its first raw partition. Here planning is held up (a sleeping immutable
// function, folded while planning) while a pass compacts the only point.
func TestAQueryPlannedBeforeACompactionSeesItsPoints(t *testing.T) {
	t.Parallel()
	s := migrated(t)
	ctx := context.Background()
	old := time.Now().UTC().AddDate(0, 0, -9).Truncate(time.Hour)
	if err := s.WritePoints(ctx, "default", []metrics.Point{pt("planned_before", nil, 7, old)}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.pool.Exec(ctx, `CREATE FUNCTION sleep_while_planning(s float8) RETURNS int
		LANGUAGE plpgsql IMMUTABLE AS $$ BEGIN PERFORM pg_sleep(s); RETURN 1; END $$`); err != nil {
		t.Fatal(err)
	}
	got := make(chan int64, 1)
	go func() {
		var n int64
		if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM (SELECT value FROM metrics WHERE name = 'planned_before'
			UNION ALL SELECT 1 WHERE sleep_while_planning(1) = 0) x`).Scan(&n); err != nil {
			t.Error(err)
		}
		got <- n
	}()
	deadline := time.Now().Add(10 * time.Second)
	for count(t, s, "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'PgSleep'") == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the query never began planning")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The pass's chunk transaction (a whole pass would then wait to drop the
	// emptied raw partition until the query ends).
	parts, err := s.ListPartitions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	names := map[uint32]string{}
	for _, p := range parts {
		names[p.oid] = p.Name
	}
	var res CompactionResult
	from := old.Truncate(ChunkWindow)
	if err := s.compactWindow(ctx, from, from.Add(ChunkWindow), names, time.Now().Add(time.Minute), &res); err != nil || res.Points != 1 {
		t.Fatalf("compacted %d points (%v), want the one, while the query was planned", res.Points, err)
	}
	if count(t, s, "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'PgSleep'") == 0 {
		t.Fatal("the query was planned before the pass ended; the test proves nothing")
	}
	if n := <-got; n != 1 {
		t.Errorf("the query saw %d points, want 1", n)
	}
}

// TestCompactionWaitsAPassForAChunkPartitionItMade: raw rows of a day whose
// chunk partition is missing (written by an older version) are compacted
// one pass after the partition is made, not by the pass that makes it
// (see TestAQueryPlannedBeforeACompactionSeesItsPoints).
func TestCompactionWaitsAPassForAChunkPartitionItMade(t *testing.T) {
	t.Parallel()
	writer := migrated(t)
	ctx := context.Background()
	old := time.Now().UTC().AddDate(0, 0, -9).Truncate(time.Hour)
	if err := writer.WritePoints(ctx, "default", []metrics.Point{pt("older_day", nil, 7, old)}); err != nil {
		t.Fatal(err)
	}
	if _, err := writer.pool.Exec(ctx, "DROP TABLE "+chunkPartitions.name(dayOf(old), dayOf(old).AddDate(0, 0, 1))); err != nil {
		t.Fatal(err)
	}
	s := open(t, writer.pool.Config().ConnString()) // knows no partitions yet
	res, err := s.Compact(ctx, time.Now(), time.Minute)
	if err != nil || res.Points != 0 {
		t.Fatalf("first pass compacted %d points (%v), want none", res.Points, err)
	}
	if n := count(t, s, "SELECT count(*) FROM pg_inherits WHERE inhparent = 'metric_chunks'::regclass AND inhrelid = to_regclass($1)",
		chunkPartitions.name(dayOf(old), dayOf(old).AddDate(0, 0, 1))); n != 1 {
		t.Fatalf("the day's chunk partition was not made")
	}
	if res, err = s.Compact(ctx, time.Now(), time.Minute); err != nil || res.Points != 1 {
		t.Fatalf("second pass compacted %d points (%v), want 1", res.Points, err)
	}
	if got := decodedPoints(t, s, "older_day"); len(got) != 1 {
		t.Errorf("points in chunks: %v", got)
	}
}

// TestOverlappingCompactionsLoseNothing: a replica killed mid-pass loses its
// compaction lock with its connection, while the transaction it had sent
// may still commit; the next pass, on another replica, can then run beside
// it. Here two replicas compact at once, over and over, without the lock,
// while writers push late points into the windows being compacted and
// re-push some with new values. Every acknowledged point is stored, with
// its last acknowledged value.
func TestOverlappingCompactionsLoseNothing(t *testing.T) {
	t.Parallel()
	url := pgtest.NewDatabase(t)
	s := open(t, url)
	ctx := context.Background()
	if _, err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	base := ClosedBefore(now).Add(-time.Hour).Truncate(ChunkWindow) // closed: every write is late
	const writers, series, rounds = 2, 8, 60
	acked := make([]map[string]float64, writers) // per writer (each writes its own series): "series ts" -> value
	var stop atomic.Bool
	var failed atomic.Int64
	var firstFailure atomic.Value
	var wg sync.WaitGroup
	compactions := make([]int, 2)
	stores := make([]*Store, len(compactions)+writers) // opened here: t.Fatal must not run in the goroutines
	for i := range stores {
		stores[i] = open(t, url)
	}
	for c := range compactions {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			st := stores[c]
			for !stop.Load() {
				// Two passes at once may fail (one drops a partition the other
				// listed); a failed pass is retried by the next. Only loss counts.
				if _, err := st.Compact(ctx, now, time.Minute); err == nil {
					compactions[c]++
				}
			}
		}(c)
	}
	var writing sync.WaitGroup
	for w := 0; w < writers; w++ {
		acked[w] = map[string]float64{}
		writing.Add(1)
		go func(w int) {
			defer writing.Done()
			st := stores[len(compactions)+w]
			rng := rand.New(rand.NewSource(int64(w)))
			for r := 0; r < rounds; r++ {
				var pts []metrics.Point
				var names []string
				for i := 0; i < series; i++ {
					name := fmt.Sprintf("w%d-%d", w, i)
					// A new point each round, and now and then a re-push of an earlier one.
					ts := base.Add(time.Duration(r) * 10 * time.Second)
					if r > 0 && rng.Intn(4) == 0 {
						ts = base.Add(time.Duration(rng.Intn(r)) * 10 * time.Second)
					}
					pts = append(pts, pt("overlap_me", map[string]string{"s": name}, float64(w*1000000+r*100+i), ts))
					names = append(names, name)
				}
				if err := st.WritePoints(ctx, "default", pts); err != nil {
					if failed.Add(1) == 1 { // not acknowledged: nothing is owed
						firstFailure.Store(err.Error())
					}
					continue
				}
				for i, p := range pts {
					acked[w][fmt.Sprintf("%s %s", names[i], p.Time.UTC().Format(time.RFC3339Nano))] = p.Value
				}
			}
		}(w)
	}
	writing.Wait()
	stop.Store(true)
	wg.Wait()
	// A write whose partition a pass drops retries with the partition made
	// in its own transaction (TestALatePartitionDroppedBeforeItsWriteIsMadeAgainWithIt);
	// what may still fail is a lock wait past partitionLockTimeout on a loaded machine.
	if n := failed.Load(); n > 2 {
		t.Errorf("%d of %d writes failed, the first with: %v", n, writers*rounds, firstFailure.Load())
	}
	if compactions[0] == 0 || compactions[1] == 0 {
		t.Errorf("passes that completed: %v; both compactors must have run", compactions)
	}
	if _, err := s.Compact(ctx, now, time.Minute); err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, m := range acked {
		for k, v := range m {
			want = append(want, fmt.Sprintf("%s %v", k, v))
		}
	}
	sort.Strings(want)
	got := decodedPoints(t, s, "overlap_me")
	if fmt.Sprint(got) != fmt.Sprint(want) {
		missing := map[string]bool{}
		for _, l := range want {
			missing[l] = true
		}
		for _, l := range got {
			delete(missing, l)
		}
		t.Fatalf("%d points stored, %d acknowledged; %d acknowledged not stored as written, e.g. %v", len(got), len(want), len(missing), head(sortedKeys(missing)))
	}
	t.Logf("%d points after %v overlapping passes; %d writes failed", len(got), compactions, failed.Load())
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

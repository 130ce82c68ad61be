package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/xtrace-dev/xtrace-operator/internal/pgtest"
	"github.com/xtrace-dev/xtrace-operator/server/internal/servertest"
	"github.com/xtrace-dev/xtrace-operator/server/internal/store"
)

// point is a sample as the tests know it, independent of the server's code.
type point struct {
	name   string
	labels map[string]string
	value  float64
	ts     time.Time
}

func push(t *testing.T, s *servertest.Server, pts []point) {
	t.Helper()
	for start := 0; start < len(pts); start += 5000 {
		end := min(start+5000, len(pts))
		var body struct {
			Metrics []map[string]any `json:"metrics"`
		}
		for _, p := range pts[start:end] {
			body.Metrics = append(body.Metrics, map[string]any{
				"name": p.name, "labels": p.labels, "value": p.value, "timestamp": p.ts.Format(time.RFC3339Nano),
			})
		}
		resp := s.Do(t, "POST", "/v1/metrics/batch", body)
		if resp.Status != 200 {
			t.Fatalf("push: %d %s", resp.Status, resp.Body)
		}
		var got struct{ Accepted int }
		resp.JSON(t, &got)
		if got.Accepted != end-start {
			t.Fatalf("accepted %d, want %d", got.Accepted, end-start)
		}
	}
}

type querySeries struct {
	Labels   map[string]string `json:"labels"`
	LatestTS time.Time         `json:"latest_ts"`
	Values   []struct {
		Timestamp time.Time `json:"timestamp"`
		Value     float64   `json:"value"`
	} `json:"values"`
}

type queryResult struct {
	Data []querySeries `json:"data"`
	Meta struct {
		LatestTS    *time.Time `json:"latest_ts"`
		SeriesCount int        `json:"series_count"`
		Truncated   bool       `json:"truncated"`
	} `json:"meta"`
}

func query(t *testing.T, s *servertest.Server, params url.Values) queryResult {
	t.Helper()
	resp := s.Do(t, "GET", "/api/public/metrics/query?"+params.Encode(), nil)
	if resp.Status != 200 {
		t.Fatalf("query %v: %d %s", params, resp.Status, resp.Body)
	}
	var r queryResult
	resp.JSON(t, &r)
	return r
}

// expected computes the answer of a query from the raw points, the slow and obvious way.
// Besides the buckets of each group it returns each group's newest point and the newest overall.
func expected(pts []point, name string, filter map[string]string, from, to time.Time, step time.Duration, agg string, groupBy []string) (map[string]map[int64]float64, map[string]time.Time, time.Time) {
	groups := map[string]map[int64][]point{}
	groupLatest := map[string]time.Time{}
	var latest time.Time
	for _, p := range pts {
		if p.name != name || p.ts.Before(from) || p.ts.After(to) || !contains(p.labels, filter) {
			continue
		}
		labels := p.labels
		if len(groupBy) > 0 {
			labels = map[string]string{}
			for _, k := range groupBy {
				if v, ok := p.labels[k]; ok {
					labels[k] = v
				}
			}
		}
		key := canon(labels)
		sec := int64(step / time.Second)
		bucket := int64(math.Floor(float64(p.ts.UnixMicro())/1e6/float64(sec))) * sec
		if groups[key] == nil {
			groups[key] = map[int64][]point{}
		}
		groups[key][bucket] = append(groups[key][bucket], p)
		if p.ts.After(latest) {
			latest = p.ts
		}
		if p.ts.After(groupLatest[key]) {
			groupLatest[key] = p.ts
		}
	}
	out := map[string]map[int64]float64{}
	for key, buckets := range groups {
		out[key] = map[int64]float64{}
		for b, ps := range buckets {
			out[key][b] = aggregate(ps, agg)
		}
	}
	return out, groupLatest, latest
}

func aggregate(ps []point, agg string) float64 {
	vals := make([]float64, len(ps))
	for i, p := range ps {
		vals[i] = p.value
	}
	sort.Float64s(vals)
	sum := 0.0
	for _, v := range vals {
		sum += v
	}
	switch agg {
	case "avg":
		return sum / float64(len(vals))
	case "min":
		return vals[0]
	case "max":
		return vals[len(vals)-1]
	case "sum":
		return sum
	case "count":
		return float64(len(vals))
	case "last":
		best := ps[0]
		for _, p := range ps[1:] {
			if p.ts.After(best.ts) {
				best = p
			}
		}
		return best.value
	case "p50", "p90", "p95", "p99":
		var q float64
		fmt.Sscanf(agg[1:], "%g", &q)
		return percentileCont(vals, q/100)
	}
	panic(agg)
}

// percentileCont is PostgreSQL's percentile_cont: linear interpolation between closest ranks.
func percentileCont(sorted []float64, q float64) float64 {
	pos := q * float64(len(sorted)-1)
	lo := math.Floor(pos)
	hi := math.Ceil(pos)
	if lo == hi {
		return sorted[int(lo)]
	}
	return sorted[int(lo)] + (pos-lo)*(sorted[int(hi)]-sorted[int(lo)])
}

func contains(labels, filter map[string]string) bool {
	for k, v := range filter {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func canon(m map[string]string) string {
	b, _ := json.Marshal(m) // encoding/json sorts map keys
	return string(b)
}

func approxEqual(a, b float64) bool {
	return math.Abs(a-b) <= 1e-9*math.Max(1, math.Max(math.Abs(a), math.Abs(b)))
}

// TestQueryMatchesIndependentComputation compares 450 combinations of agg,
// step, label filter and group_by with an independent computation from the
// raw points, four times: all points raw; after compaction (whole chunk
// windows with rollups, a window being filled: part chunk, part raw, late
// raw points overriding compacted ones, bucket edges on tier boundaries);
// after the late points were merged; and after the filled window's last raw
// points were merged into its chunk (whole-hour steps reading hourly rollups
// where a window lies inside the range, then a window without them).
func TestQueryMatchesIndependentComputation(t *testing.T) {
	t.Parallel()
	s := servertest.Start(t, servertest.Options{})
	rng := rand.New(rand.NewSource(7))
	base := time.Date(2026, 2, 14, 10, 0, 0, 0, time.UTC) // chunk windows 10–12, 12–14, 14–16
	if base.Truncate(store.ChunkWindow) != base || 2*store.ChunkWindow != 4*time.Hour {
		t.Fatal("the test's timeline assumes 2-hour chunk windows")
	}
	var pts []point
	series := []map[string]string{
		{"model_uid": "qwen-72b", "replica_id": "0", "node_id": "node-1"},
		{"model_uid": "qwen-72b", "replica_id": "1", "node_id": "node-2"},
		{"model_uid": "llama-8b", "replica_id": "0", "node_id": "node-1"},
		{"model_uid": "llama-8b", "replica_id": "1"}, // no node_id: its own group under group_by=node_id
	}
	used := map[int64]bool{}
	uniqueTime := func(within time.Duration, offset time.Duration) time.Time {
		// Unique microsecond timestamps, so `last` has one answer even across merged series.
		for {
			ts := base.Add(offset + time.Duration(rng.Int63n(int64(within)))/time.Microsecond*time.Microsecond)
			if !used[ts.UnixMicro()] {
				used[ts.UnixMicro()] = true
				return ts
			}
		}
	}
	for i := 0; i < 5000; i++ {
		pts = append(pts, point{"pending_requests", series[rng.Intn(len(series))], math.Round(rng.Float64()*1000) / 10, uniqueTime(300*time.Minute, 0)})
	}
	// Exact bucket edges, tier edges and the interval's ends.
	// The ends are not on 5-minute boundaries: the rollup buckets holding
	// them are read from the samples, the others from the rollups.
	from, to := base.Add(5*time.Minute+17*time.Second+3*time.Millisecond), base.Add(295*time.Minute-13*time.Second)
	frontier := base.Add(270 * time.Minute) // the first compaction's: 14:30
	pts = append(pts,
		point{"pending_requests", series[0], 111, from},                                     // included (closed interval)
		point{"pending_requests", series[0], 222, to},                                       // included
		point{"pending_requests", series[0], 333, from.Add(-time.Microsecond)},              // excluded
		point{"pending_requests", series[0], 444, to.Add(time.Microsecond)},                 // excluded
		point{"pending_requests", series[1], 555, base.Add(20 * time.Minute)},               // exactly a bucket start
		point{"pending_requests", series[2], 666, base.Add(2 * time.Hour)},                  // exactly a chunk window's start
		point{"pending_requests", series[3], 777, base.Add(4*time.Hour - time.Microsecond)}, // a chunk window's last microsecond
		point{"pending_requests", series[1], 888, frontier},                                 // the first raw point after compaction
		point{"pending_requests", series[1], 889, frontier.Add(-time.Microsecond)},          // the last compacted one
		point{"other_metric", series[0], 999, base.Add(10 * time.Minute)},                   // another name
	)
	// Push in shuffled order: results must not depend on arrival order.
	rng.Shuffle(len(pts), func(i, j int) { pts[i], pts[j] = pts[j], pts[i] })
	push(t, s, pts)
	checkQueryCombinations(t, s, pts, from, to)

	// Compact everything before 14:30: windows 10–12 and 12–14 whole (12–14
	// lies inside the range: its rollups answer multiples of 5 m), 14–16 being
	// filled (14:00–14:30 in its chunk, the rest raw).
	st, err := store.Open(context.Background(), store.Options{URL: s.DatabaseURL, MaxConns: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	compactAt := frontier.Add(store.CompactionGrace)
	if res, err := st.Compact(context.Background(), compactAt, time.Minute); err != nil || res.Points == 0 {
		t.Fatalf("compaction: %+v %v", res, err)
	}
	checkQueryCombinations(t, s, pts, from, to)
	// From the first point on: the first window starts before the range but
	// every sample of it lies inside, so its rollups answer too.
	first := firstPointOf(pts, "pending_requests")
	if !first.After(base) {
		t.Fatal("the test's data must start after its first chunk window's start")
	}
	checkQueryCombinations(t, s, pts, first, to)

	// Late points for compacted time: new ones, and new values for stored
	// times, in each window (10:30–11:00, 12:30–13:00, 14:05–14:25).
	var late []point
	lateRanges := []struct{ offset, within time.Duration }{{30 * time.Minute, 30 * time.Minute}, {150 * time.Minute, 30 * time.Minute}, {245 * time.Minute, 20 * time.Minute}}
	for _, r := range lateRanges {
		for i := 0; i < 15; i++ {
			late = append(late, point{"pending_requests", series[rng.Intn(len(series))], float64(1000 + len(late)), uniqueTime(r.within, r.offset)})
		}
	}
	for i := range pts {
		w := pts[i].ts.Sub(base)
		for _, r := range lateRanges {
			if w >= r.offset && w < r.offset+r.within && rng.Intn(20) == 0 && pts[i].name == "pending_requests" {
				pts[i].value = -pts[i].value - 1 // the stored time gets a new value: the last write wins
				late = append(late, pts[i])
			}
		}
	}
	push(t, s, late)
	for _, p := range late {
		if p.value >= 1000 {
			pts = append(pts, p)
		}
	}
	checkQueryCombinations(t, s, pts, from, to)

	// The late points merged into their chunks: the same answers again.
	if res, err := st.Compact(context.Background(), compactAt, time.Minute); err != nil || res.Merged == 0 {
		t.Fatalf("merging late points: %+v %v", res, err)
	}
	checkQueryCombinations(t, s, pts, from, to)

	// A new value for the last compacted sample of the window being filled
	// (889, just before 14:30): a raw point at exactly its chunk's last time
	// replaces that sample rather than adding to it.
	repushed := 0
	for i := range pts {
		if pts[i].value == 889 {
			pts[i].value = 890
			push(t, s, []point{pts[i]})
			repushed++
		}
	}
	if repushed != 1 {
		t.Fatalf("re-pushed %d points, want the one of value 889", repushed)
	}
	checkQueryCombinations(t, s, pts, from, to)

	// The filled window's remaining raw points appended to its chunk.
	if res, err := st.Compact(context.Background(), base.Add(5*time.Hour+store.CompactionGrace), time.Minute); err != nil || res.Merged == 0 {
		t.Fatalf("appending to the window being filled: %+v %v", res, err)
	}
	checkQueryCombinations(t, s, pts, from, to)
	checkQueryCombinations(t, s, pts, firstPointOf(pts, "pending_requests"), to)

	// Rows compacted before hourly rollups existed have none: whole-hour
	// steps read their 5-minute rollups, with the same answers.
	cleared := pgtest.Connect(t, s.DatabaseURL).Int(
		"WITH cleared AS (UPDATE metric_chunks SET rollup_hour = NULL WHERE start_ts = $1 RETURNING 1) SELECT count(*) FROM cleared",
		base.Add(2*time.Hour))
	if cleared == 0 {
		t.Fatal("no chunk row of the 12–14 window to clear the hourly rollups of")
	}
	checkQueryCombinations(t, s, pts, from, to)
}

// firstPointOf is the time of the oldest point of the metric.
func firstPointOf(pts []point, name string) time.Time {
	var first time.Time
	for _, p := range pts {
		if p.name == name && (first.IsZero() || p.ts.Before(first)) {
			first = p.ts
		}
	}
	return first
}

func checkQueryCombinations(t *testing.T, s *servertest.Server, pts []point, from, to time.Time) {
	t.Helper()
	steps := map[string]time.Duration{"1m": time.Minute, "30s": 30 * time.Second, "19s": 19 * time.Second, "1h": time.Hour, "5m": 5 * time.Minute}
	filters := []map[string]string{nil, {"model_uid": "qwen-72b"}, {"node_id": "node-1", "replica_id": "0"}}
	groupBys := [][]string{nil, {"node_id"}, {"model_uid", "replica_id"}}
	checked := 0
	for _, agg := range []string{"avg", "min", "max", "sum", "count", "last", "p50", "p90", "p95", "p99"} {
		for stepName, step := range steps {
			for fi, filter := range filters {
				for _, gb := range groupBys {
					params := url.Values{"name": {"pending_requests"}, "from": {from.Format(time.RFC3339Nano)},
						"to": {to.Format(time.RFC3339Nano)}, "step": {stepName}, "agg": {agg}}
					if filter != nil {
						params.Set("labels", canon(filter))
					}
					if gb != nil {
						params.Set("group_by", strings.Join(gb, ","))
					}
					got := query(t, s, params)
					want, seriesLatest, latest := expected(pts, "pending_requests", filter, from, to, step, agg, gb)
					label := fmt.Sprintf("agg=%s step=%s filter#%d group_by=%v", agg, stepName, fi, gb)
					compare(t, label, got, want, latest)
					for _, d := range got.Data {
						if key := canon(d.Labels); !d.LatestTS.Equal(seriesLatest[key]) {
							t.Fatalf("%s: series %s latest_ts %s, want %s (its own newest point)", label, key, d.LatestTS, seriesLatest[key])
						}
					}
					checked++
				}
			}
		}
	}
	t.Logf("checked %d query combinations", checked)
}

func compare(t *testing.T, label string, got queryResult, want map[string]map[int64]float64, latest time.Time) {
	t.Helper()
	if got.Meta.SeriesCount != len(want) || len(got.Data) != len(want) {
		t.Fatalf("%s: %d series (meta %d), want %d", label, len(got.Data), got.Meta.SeriesCount, len(want))
	}
	if got.Meta.Truncated {
		t.Fatalf("%s: truncated", label)
	}
	if len(want) > 0 && (got.Meta.LatestTS == nil || !got.Meta.LatestTS.Equal(latest)) {
		t.Fatalf("%s: latest_ts %v, want %v", label, got.Meta.LatestTS, latest)
	}
	prev := ""
	for _, s := range got.Data {
		key := canon(s.Labels)
		if key <= prev {
			t.Fatalf("%s: series not ordered by labels: %s after %s", label, key, prev)
		}
		prev = key
		wantBuckets, ok := want[key]
		if !ok {
			t.Fatalf("%s: unexpected series %s", label, key)
		}
		if len(s.Values) != len(wantBuckets) {
			t.Fatalf("%s: series %s has %d buckets, want %d", label, key, len(s.Values), len(wantBuckets))
		}
		var prevTS time.Time
		for _, v := range s.Values {
			if !v.Timestamp.After(prevTS) {
				t.Fatalf("%s: buckets not ascending", label)
			}
			prevTS = v.Timestamp
			w, ok := wantBuckets[v.Timestamp.Unix()]
			if !ok {
				t.Fatalf("%s: series %s: unexpected bucket %s", label, key, v.Timestamp)
			}
			if !approxEqual(v.Value, w) {
				t.Fatalf("%s: series %s bucket %s = %v, want %v", label, key, v.Timestamp, v.Value, w)
			}
		}
	}
}

func TestQueryDefaultsAndEmptyShape(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 1, 12, 0, 30, 0, time.UTC)
	s := servertest.Start(t, servertest.Options{Now: func() time.Time { return now }})
	push(t, s, []point{
		{"kv_cache_usage", map[string]string{"model_uid": "m"}, 1, now.Add(-61 * time.Minute)}, // outside the default hour
		{"kv_cache_usage", map[string]string{"model_uid": "m"}, 2, now.Add(-30 * time.Minute)},
		{"kv_cache_usage", map[string]string{"model_uid": "m"}, 4, now.Add(-30*time.Minute + 10*time.Second)},
	})
	// Defaults: to=now, from=to-1h, step=1m, agg=avg.
	got := query(t, s, url.Values{"name": {"kv_cache_usage"}})
	if len(got.Data) != 1 || len(got.Data[0].Values) != 1 || got.Data[0].Values[0].Value != 3 {
		t.Fatalf("defaults: %+v", got)
	}
	if ts := got.Data[0].Values[0].Timestamp; !ts.Equal(time.Date(2026, 3, 1, 11, 30, 0, 0, time.UTC)) {
		t.Fatalf("bucket start %s", ts)
	}
	// No data: the exact empty shape, never 404.
	resp := s.Do(t, "GET", "/api/public/metrics/query?name=does_not_exist", nil)
	if resp.Status != 200 || strings.TrimSpace(string(resp.Body)) != `{"data":[],"meta":{"series_count":0,"truncated":false}}` {
		t.Fatalf("empty result: %d %s", resp.Status, resp.Body)
	}
	// A matching series with no points in range is not returned either.
	resp = s.Do(t, "GET", "/api/public/metrics/query?name=kv_cache_usage&from=2026-01-01T00:00:00Z&to=2026-01-02T00:00:00Z", nil)
	if strings.TrimSpace(string(resp.Body)) != `{"data":[],"meta":{"series_count":0,"truncated":false}}` {
		t.Fatalf("out of range: %s", resp.Body)
	}
}

func TestLastWithOutOfOrderArrivalAndIdempotentRepush(t *testing.T) {
	t.Parallel()
	s := servertest.Start(t, servertest.Options{})
	base := time.Date(2026, 2, 14, 10, 0, 0, 0, time.UTC)
	labels := map[string]string{"model_uid": "model-7", "replica_id": "0"}
	// The newest point arrives first, older ones later.
	push(t, s, []point{{"pending_requests", labels, 9, base.Add(50 * time.Second)}})
	push(t, s, []point{{"pending_requests", labels, 1, base.Add(10 * time.Second)}, {"pending_requests", labels, 5, base.Add(30 * time.Second)}})
	q := url.Values{"name": {"pending_requests"}, "from": {base.Format(time.RFC3339)}, "to": {base.Add(time.Minute).Format(time.RFC3339)}, "step": {"1m"}, "agg": {"last"}}
	if got := query(t, s, q); len(got.Data) != 1 || got.Data[0].Values[0].Value != 9 || !got.Meta.LatestTS.Equal(base.Add(50*time.Second)) {
		t.Fatalf("last: %+v", got)
	}
	// Re-pushing the same (series, ts) replaces values; no duplicates. Also within one batch the later point wins.
	push(t, s, []point{
		{"pending_requests", labels, 7, base.Add(50 * time.Second)},
		{"pending_requests", labels, 2, base.Add(10 * time.Second)},
		{"pending_requests", labels, 3, base.Add(10 * time.Second)},
	})
	push(t, s, []point{{"pending_requests", labels, 7, base.Add(50 * time.Second)}}) // the same retry again
	q.Set("agg", "count")
	if got := query(t, s, q); got.Data[0].Values[0].Value != 3 {
		t.Fatalf("count after re-push = %v, want 3", got.Data[0].Values[0].Value)
	}
	q.Set("agg", "sum")
	if got := query(t, s, q); got.Data[0].Values[0].Value != 3+5+7 {
		t.Fatalf("sum after re-push = %v, want 15", got.Data[0].Values[0].Value)
	}
}

func TestTruncation(t *testing.T) {
	t.Parallel()
	s := servertest.Start(t, servertest.Options{})
	base := time.Date(2026, 2, 14, 0, 0, 0, 0, time.UTC)
	var pts []point
	for i := 0; i < 55; i++ {
		pts = append(pts, point{"gpu_utilization", map[string]string{"node_id": fmt.Sprintf("node-%02d", i)}, float64(i), base})
	}
	for i := 0; i < 1005; i++ {
		pts = append(pts, point{"queue_depth", map[string]string{"node_id": "n"}, float64(i), base.Add(time.Duration(i) * time.Second)})
	}
	push(t, s, pts)
	got := query(t, s, url.Values{"name": {"gpu_utilization"}, "from": {base.Format(time.RFC3339)}, "to": {base.Add(time.Hour).Format(time.RFC3339)}})
	if len(got.Data) != 50 || got.Meta.SeriesCount != 50 || !got.Meta.Truncated {
		t.Fatalf("series limit: %d series, meta %+v", len(got.Data), got.Meta)
	}
	if got.Data[0].Labels["node_id"] != "node-00" || got.Data[49].Labels["node_id"] != "node-49" {
		t.Fatalf("kept series are not the first 50 by labels: %v … %v", got.Data[0].Labels, got.Data[49].Labels)
	}
	got = query(t, s, url.Values{"name": {"queue_depth"}, "from": {base.Format(time.RFC3339)}, "to": {base.Add(time.Hour).Format(time.RFC3339)}, "step": {"1s"}})
	vals := got.Data[0].Values
	if len(vals) != 1000 || !got.Meta.Truncated {
		t.Fatalf("points limit: %d values, truncated=%v", len(vals), got.Meta.Truncated)
	}
	if vals[0].Value != 5 || vals[999].Value != 1004 {
		t.Fatalf("kept buckets are not the most recent: first %v last %v", vals[0].Value, vals[999].Value)
	}
	// Exactly at the limit: not truncated.
	got = query(t, s, url.Values{"name": {"queue_depth"}, "from": {base.Add(5 * time.Second).Format(time.RFC3339)}, "to": {base.Add(time.Hour).Format(time.RFC3339)}, "step": {"1s"}})
	if len(got.Data[0].Values) != 1000 || got.Meta.Truncated {
		t.Fatalf("at the limit: %d values, truncated=%v", len(got.Data[0].Values), got.Meta.Truncated)
	}
}

// TestSeriesWithoutPointsInWindowDoNotCrowdOutLiveOnes: the 50 kept series
// are chosen among those with points in the window, so series that stopped
// pushing long ago (and sort first) neither hide live ones nor mark the
// answer truncated.
func TestSeriesWithoutPointsInWindowDoNotCrowdOutLiveOnes(t *testing.T) {
	t.Parallel()
	s := servertest.Start(t, servertest.Options{})
	base := time.Date(2026, 2, 14, 0, 0, 0, 0, time.UTC)
	var pts []point
	for i := 0; i < 60; i++ { // sort before the live ones, last pushed a day earlier
		pts = append(pts, point{"kv_cache_usage", map[string]string{"replica_id": fmt.Sprintf("a-%02d", i)}, 1, base.Add(-24 * time.Hour)})
	}
	for i := 0; i < 3; i++ {
		pts = append(pts, point{"kv_cache_usage", map[string]string{"replica_id": fmt.Sprintf("z-%d", i)}, float64(i), base.Add(time.Duration(i) * time.Minute)})
	}
	push(t, s, pts)
	window := url.Values{"name": {"kv_cache_usage"}, "from": {base.Format(time.RFC3339)}, "to": {base.Add(time.Hour).Format(time.RFC3339)}}
	got := query(t, s, window)
	if len(got.Data) != 3 || got.Meta.Truncated {
		t.Fatalf("live series: %d (truncated=%v), want the 3 live ones untruncated", len(got.Data), got.Meta.Truncated)
	}
	for i, d := range got.Data {
		if d.Labels["replica_id"] != fmt.Sprintf("z-%d", i) {
			t.Fatalf("series %d: %v", i, d.Labels)
		}
	}
	window.Set("group_by", "replica_id")
	if got := query(t, s, window); len(got.Data) != 3 || got.Meta.Truncated {
		t.Fatalf("grouped: %d groups (truncated=%v), want 3 untruncated", len(got.Data), got.Meta.Truncated)
	}
}

func TestLabelContainmentAndHostileStrings(t *testing.T) {
	t.Parallel()
	s := servertest.Start(t, servertest.Options{})
	ts := time.Now().Add(-time.Minute)
	hostile := `x'); DROP TABLE metric_points; --`
	push(t, s, []point{
		{"gpu_temperature", map[string]string{"node_id": "node-1", "gpu_index": "0"}, 60, ts},
		{"gpu_temperature", map[string]string{"node_id": "node-1", "gpu_index": "1"}, 70, ts},
		{"gpu_temperature", map[string]string{"node_id": "node-2", "gpu_index": "0"}, 80, ts},
		{"gpu_temperature", map[string]string{"node_id": hostile, "gpu_index": "0"}, 90, ts},
	})
	cases := []struct {
		labels string
		want   int
	}{
		{`{"node_id":"node-1"}`, 2},
		{`{"node_id":"node-1","gpu_index":"1"}`, 1},
		{`{}`, 4},
		{`{"node_id":"node-3"}`, 0},
		{`{"rack":"a"}`, 0},
		{canon(map[string]string{"node_id": hostile}), 1},
		{`{"node_id":"' OR 1=1 --"}`, 0},
	}
	for _, c := range cases {
		got := query(t, s, url.Values{"name": {"gpu_temperature"}, "labels": {c.labels}})
		if len(got.Data) != c.want {
			t.Errorf("labels=%s: %d series, want %d", c.labels, len(got.Data), c.want)
		}
	}
	for _, gb := range []string{"node_id", "gpu_index", "node_id,gpu_index"} {
		got := query(t, s, url.Values{"name": {"gpu_temperature"}, "group_by": {gb}, "agg": {"max"}})
		if len(got.Data) == 0 {
			t.Errorf("group_by=%s: no data", gb)
		}
	}
	if got := query(t, s, url.Values{"name": {"gpu_temperature"}, "group_by": {"no_such_key"}, "agg": {"count"}}); len(got.Data) != 1 || got.Data[0].Values[0].Value != 4 || len(got.Data[0].Labels) != 0 {
		t.Errorf("group_by on an absent key must merge everything into one group: %+v", got)
	}
	// Names and labels endpoints.
	resp := s.Do(t, "GET", "/api/public/metrics/labels?name=gpu_temperature", nil)
	var labels struct{ Data map[string][]string }
	resp.JSON(t, &labels)
	if strings.Join(labels.Data["gpu_index"], ",") != "0,1" || len(labels.Data["node_id"]) != 3 {
		t.Errorf("labels endpoint: %s", resp.Body)
	}
	resp = s.Do(t, "GET", "/api/public/metrics/labels?name=nothing", nil)
	if strings.TrimSpace(string(resp.Body)) != `{"data":{}}` {
		t.Errorf("labels of an unknown metric: %s", resp.Body)
	}
	push(t, s, []point{{"a_metric", nil, 1, ts}})
	resp = s.Do(t, "GET", "/api/public/metrics/names", nil)
	if strings.TrimSpace(string(resp.Body)) != `{"data":["a_metric","gpu_temperature"]}` {
		t.Errorf("names: %s", resp.Body)
	}
}

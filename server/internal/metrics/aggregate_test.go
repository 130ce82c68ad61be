package metrics

import (
	"math/rand"
	"testing"
)

// The buckets answer the same whether they live in the slice, in the map
// (outside the slice's range, or a range too long for a slice) or both, and
// after holding another group's (or query's) buckets: in time order, the most recent
// MaxPointsPerSeries+1 kept, the newest point's time over all of them.
func TestGroupBucketsSliceAndMapAgree(t *testing.T) {
	const step = int64(10)
	bk := bucketer{step: step}
	rng := rand.New(rand.NewSource(3))
	type add struct{ t, v int64 }
	var adds []add
	for i := 0; i < 20000; i++ {
		adds = append(adds, add{rng.Int63n(3000 * step), rng.Int63n(100)})
	}
	want := map[int64]float64{} // bucket start → sum
	var latest int64
	for _, a := range adds {
		want[bk.start(a.t)] += float64(a.v)
		latest = max(latest, a.t)
	}
	for name, r := range map[string][2]int64{
		"slice only":     {0, 3000*step - 1},
		"slice and map":  {1000 * step, 2000*step + 5}, // points before and after the range go to the map
		"too long: map":  {0, (maxDenseBuckets + 10) * step * 2},
		"one bucket":     {55, 55},
		"shifted origin": {-7, 2999 * step},
	} {
		g := newGroupBuckets(bk, r[0], r[1])
		// The buckets of a page's previous group, reset: nothing of them stays.
		for _, a := range adds[:500] {
			g.at(bk.start(a.t)-5*step).add(a.t, 1e6, 2, false)
		}
		if g.reset(); !g.empty() {
			t.Fatalf("%s: not empty after reset", name)
		}
		for _, a := range adds {
			g.at(bk.start(a.t)).add(a.t, float64(a.v), 1, false)
		}
		if g.empty() {
			t.Fatalf("%s: empty", name)
		}
		got := g.finish(AggSum)
		if len(got.Values) != MaxPointsPerSeries+1 {
			t.Fatalf("%s: %d buckets, want the most recent %d", name, len(got.Values), MaxPointsPerSeries+1)
		}
		prev := int64(-1 << 62)
		for _, s := range got.Values {
			start := s.Start
			if start <= prev {
				t.Fatalf("%s: bucket %d after %d", name, start, prev)
			}
			prev = start
			if s.Value != want[start] {
				t.Fatalf("%s: bucket %d sums %v, want %v", name, start, s.Value, want[start])
			}
		}
		if prev != bk.start(latest) || got.Latest.UnixMicro() != latest {
			t.Fatalf("%s: last bucket %d (latest %v), want %d (%d)", name, prev, got.Latest.UnixMicro(), bk.start(latest), latest)
		}
		g.release() // the next range may get this one's slice
	}
	if !newGroupBuckets(bk, 0, 100).empty() {
		t.Fatal("new buckets are not empty")
	}
}

package metrics

import (
	"cmp"
	"math"
	"math/big"
	"slices"
	"sort"
	"sync"

	"github.com/xtrace-dev/xtrace-operator/server/internal/chunks"
)

// accumulator aggregates the points of one group in one bucket, with the
// semantics the query API has always had (PostgreSQL's): NaN orders above
// every number, sums that overflow float64 are computed exactly and are ±Inf
// only when the true value is out of range, last is the value of the newest
// point (on equal times, of the series with the greater id), percentiles are
// continuous (percentile_cont).
type accumulator struct {
	n        int64
	sum      float64
	exact    *big.Float // the sum, once float64 overflowed
	infinite bool       // an input was ±Inf
	nan      bool       // an input was NaN
	min, max float64
	hasLast  bool
	lastT    int64
	lastID   int64
	last     float64
	values   []float64 // every value, for percentiles only
	latest   int64     // the newest point's time
}

func (a *accumulator) add(t int64, v float64, series int64, keepValues bool) {
	if a.n == 0 || chunks.Greater(a.min, v) {
		a.min = v
	}
	if a.n == 0 || chunks.Greater(v, a.max) {
		a.max = v
	}
	a.n++
	a.addSum(v)
	a.newest(t, v, series)
	if keepValues {
		a.values = append(a.values, v)
	}
}

// addBucket folds in a rollup bucket of one series.
func (a *accumulator) addBucket(b chunks.Bucket, series int64) {
	if a.n == 0 || chunks.Greater(a.min, b.Min) {
		a.min = b.Min
	}
	if a.n == 0 || chunks.Greater(b.Max, a.max) {
		a.max = b.Max
	}
	a.n += int64(b.Count)
	a.addSum(b.Sum)
	a.newest(b.LastT, b.Last, series)
}

func (a *accumulator) addSum(v float64) {
	switch {
	case math.IsNaN(v):
		a.nan = true
	case math.IsInf(v, 0):
		a.infinite = true
	}
	if a.exact != nil {
		if !math.IsNaN(v) && !math.IsInf(v, 0) {
			a.exact.Add(a.exact, big.NewFloat(v))
		}
		a.sum += v
		return
	}
	s := a.sum + v
	if math.IsInf(s, 0) && !math.IsInf(v, 0) && !math.IsInf(a.sum, 0) {
		// float64 overflowed on finite inputs: go on exactly.
		a.exact = new(big.Float).SetPrec(2048).SetFloat64(a.sum)
		a.exact.Add(a.exact, big.NewFloat(v))
	}
	a.sum = s
}

func (a *accumulator) newest(t int64, v float64, series int64) {
	if !a.hasLast || t > a.lastT || (t == a.lastT && series > a.lastID) {
		a.hasLast, a.lastT, a.lastID, a.last = true, t, series, v
	}
	if t > a.latest {
		a.latest = t
	}
}

// total is the sum: float64 while it fits, the exact sum rounded otherwise.
func (a *accumulator) total() float64 {
	if a.nan || a.exact == nil || a.infinite {
		return a.sum
	}
	f, _ := a.exact.Float64()
	return f
}

func (a *accumulator) result(agg Agg) float64 {
	switch agg {
	case AggAvg:
		if a.nan || a.exact == nil || a.infinite {
			return a.sum / float64(a.n)
		}
		f, _ := new(big.Float).Quo(a.exact, new(big.Float).SetInt64(a.n)).Float64()
		return f
	case AggSum:
		return a.total()
	case AggMin:
		return a.min
	case AggMax:
		return a.max
	case AggCount:
		return float64(a.n)
	case AggLast:
		return a.last
	}
	return percentileCont(a.values, percentileOf(agg))
}

func percentileOf(agg Agg) float64 {
	switch agg {
	case AggP50:
		return 0.5
	case AggP90:
		return 0.9
	case AggP95:
		return 0.95
	}
	return 0.99
}

// percentileCont is PostgreSQL's percentile_cont: the linear interpolation
// between the two closest ranks. values is reordered.
func percentileCont(values []float64, q float64) float64 {
	sort.Slice(values, func(i, j int) bool { return chunks.Greater(values[j], values[i]) })
	pos := q * float64(len(values)-1)
	lo, hi := math.Floor(pos), math.Ceil(pos)
	a, b := values[int(lo)], values[int(hi)]
	if lo == hi {
		return a
	}
	// On halves, whose difference cannot overflow; scaling by two is exact.
	return 2 * (a/2 + (b/2-a/2)*(pos-lo))
}

// bucketer maps point times to the start of their query bucket (microseconds).
type bucketer struct{ step int64 }

func (b bucketer) start(t int64) int64 {
	q := t / b.step
	if t%b.step != 0 && t < 0 {
		q--
	}
	return q * b.step
}

// groupBuckets is the accumulators of one group, by bucket start: a slice
// over the query's buckets when they are few enough (every answer keeps at
// most MaxPointsPerSeries+1), else a map. A map cost a day's dashboard query
// a quarter of its CPU (an allocation and a hash per bucket, a sort at the end).
type groupBuckets struct {
	first, step int64 // the start of dense[0], and the buckets' width
	dense       []accumulator
	sparse      map[int64]*accumulator // buckets outside dense
	count       int                    // buckets with points
	pooled      *[]accumulator         // dense's array, from denseBuckets
	rollups     []chunks.Bucket        // decoded rollups, one window at a time
}

// maxDenseBuckets bounds the slice (about 120 bytes a bucket, one group at a time).
const maxDenseBuckets = 4096

// denseBuckets passes the slices on from query to query: a day's dashboard
// query needs 288 buckets (some 35 KB), and allocating them afresh was an
// eighth of what it allocated.
var denseBuckets = sync.Pool{New: func() any { return new([]accumulator) }}

// newGroupBuckets prepares the buckets of [from, to] (microseconds); release
// them when done.
func newGroupBuckets(bk bucketer, from, to int64) *groupBuckets {
	g := &groupBuckets{first: bk.start(from), step: bk.step}
	if n := (bk.start(to)-g.first)/bk.step + 1; n > 0 && n <= maxDenseBuckets {
		g.pooled = denseBuckets.Get().(*[]accumulator)
		if int64(cap(*g.pooled)) < n {
			*g.pooled = make([]accumulator, n)
		}
		g.dense = (*g.pooled)[:n]
	}
	return g
}

// release hands the dense slice back, emptied (a percentile's values are
// not kept alive), for other queries; g is not used again.
func (g *groupBuckets) release() {
	if g.pooled != nil {
		clear(g.dense)
		denseBuckets.Put(g.pooled)
	}
	*g = groupBuckets{}
}

// reset empties the buckets for the next group of the same query: the
// groups of a page share one slice (allocating it per group was a third of
// the bytes a day's dashboard query allocated).
func (g *groupBuckets) reset() {
	clear(g.dense)
	g.sparse, g.count = nil, 0
}

// at is the accumulator of the bucket starting at start; the caller adds a
// point or a partial to it at once (an accumulator without one is no bucket).
func (g *groupBuckets) at(start int64) *accumulator {
	if off := start - g.first; off >= 0 && off%g.step == 0 && off/g.step < int64(len(g.dense)) {
		a := &g.dense[off/g.step]
		if a.n == 0 {
			g.count++
		}
		return a
	}
	if g.sparse == nil {
		g.sparse = map[int64]*accumulator{}
	}
	a := g.sparse[start]
	if a == nil {
		a = &accumulator{}
		g.sparse[start] = a
		g.count++
	}
	return a
}

// empty says that no point fell into any bucket.
func (g *groupBuckets) empty() bool { return g.count == 0 }

// finish orders the buckets and keeps the most recent MaxPointsPerSeries+1.
func (g *groupBuckets) finish(agg Agg) Buckets {
	if len(g.sparse) == 0 { // the usual case: straight from the dense buckets, in order
		skip := max(g.count-MaxPointsPerSeries-1, 0)
		out := Buckets{Values: make([]Sample, 0, g.count-skip)}
		var latest int64
		for i := range g.dense {
			a := &g.dense[i]
			if a.n == 0 {
				continue
			}
			latest = max(latest, a.latest)
			if skip > 0 {
				skip--
				continue
			}
			out.Values = append(out.Values, Sample{Start: g.first + int64(i)*g.step, Value: a.result(agg)})
		}
		out.Latest = microsToTime(latest)
		return out
	}
	type bucket struct {
		start int64
		acc   *accumulator
	}
	all := make([]bucket, 0, g.count)
	for i := range g.dense {
		if g.dense[i].n > 0 {
			all = append(all, bucket{g.first + int64(i)*g.step, &g.dense[i]})
		}
	}
	for s, a := range g.sparse {
		all = append(all, bucket{s, a})
	}
	slices.SortFunc(all, func(a, b bucket) int { return cmp.Compare(a.start, b.start) })
	var latest int64
	for _, b := range all {
		latest = max(latest, b.acc.latest)
	}
	if len(all) > MaxPointsPerSeries+1 {
		all = all[len(all)-MaxPointsPerSeries-1:]
	}
	out := Buckets{Values: make([]Sample, len(all)), Latest: microsToTime(latest)}
	for i, b := range all {
		out.Values[i] = Sample{Start: b.start, Value: b.acc.result(agg)}
	}
	return out
}

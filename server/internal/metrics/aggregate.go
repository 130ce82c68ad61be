package metrics

import (
	"math"
	"math/big"
	"slices"
	"sort"

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

// groupBuckets is the accumulators of one group, by bucket start.
type groupBuckets map[int64]*accumulator

func (g groupBuckets) at(start int64) *accumulator {
	a := g[start]
	if a == nil {
		a = &accumulator{}
		g[start] = a
	}
	return a
}

// finish orders the buckets and keeps the most recent MaxPointsPerSeries+1.
func (g groupBuckets) finish(agg Agg) Buckets {
	starts := make([]int64, 0, len(g))
	for s := range g {
		starts = append(starts, s)
	}
	slices.Sort(starts)
	if len(starts) > MaxPointsPerSeries+1 {
		starts = starts[len(starts)-MaxPointsPerSeries-1:]
	}
	var out Buckets
	for _, s := range starts {
		a := g[s]
		out.Values = append(out.Values, Sample{Timestamp: microsToTime(s), Value: a.result(agg)})
	}
	var latest int64
	for _, a := range g {
		latest = max(latest, a.latest)
	}
	out.Latest = microsToTime(latest)
	return out
}

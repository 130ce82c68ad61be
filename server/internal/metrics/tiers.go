package metrics

import (
	"math"
	"time"

	"github.com/xtrace-dev/xtrace-operator/server/internal/chunks"
)

// The store keeps a series' points in tiers: raw rows for recent (and late)
// points, and for closed time one row per window holding the samples (XOR
// chunks) and 5-minute and hourly rollups. A query reads whichever tier
// answers it exactly: rollups where whole rollup buckets fall into whole
// query buckets and nothing raw overrides the window (the store sends the
// hourly ones when they fit, each saying its width), the samples elsewhere.

// SeriesData is what the store holds of one series in a time range.
type SeriesData struct {
	ID int64
	// Raw are raw points in the range, by time: all of them when the query
	// needs every value (percentiles), else those in compacted windows (late
	// points). A raw point replaces a compacted one at the same time (it was
	// written later).
	Raw []chunks.Sample
	// Partials aggregate the other raw points per query bucket (Start is the
	// bucket's start), computed where they are stored.
	Partials []chunks.Bucket
	// Windows are the compacted windows that overlap the range, by start.
	Windows []WindowData
}

// WindowData is one compacted window of a series.
type WindowData struct {
	Start      int64 // microseconds
	MinT, MaxT int64
	Count      int
	Rollup     []byte
	// Data is nil when the reader was told that rollups suffice for it.
	Data []byte
}

// WindowKey names a compacted window of a series.
type WindowKey struct {
	Series int64
	Start  int64 // microseconds
}

// ReadRequest says what of the series a query needs.
type ReadRequest struct {
	IDs      []int64
	From, To time.Time
	// Step is the query's bucket width: raw points may come aggregated per bucket.
	Step time.Duration
	// Values: the query needs every value (percentiles), not aggregates.
	Values bool
	// Agg is the aggregation; raw partials need only what it uses.
	Agg Agg
	// Rollups: the query can use rollups; windows wholly inside [From, To]
	// without raw points in them may come without Data.
	Rollups bool
	// Arena keeps the windows' bytes (nil: a zero Arena, for data that
	// outlives the query).
	Arena *Arena
}

// usesRollups says whether rollup buckets answer q exactly: the aggregation
// composes from per-bucket aggregates, and every 5-minute bucket lies in one
// query bucket.
func usesRollups(q *Query) bool {
	switch q.Agg {
	case AggAvg, AggMin, AggMax, AggSum, AggCount, AggLast:
		return q.Step%(time.Duration(chunks.RollupWidth)*time.Microsecond) == 0
	}
	return false
}

func microsToTime(us int64) time.Time { return time.UnixMicro(us).UTC() }

// aggregateGroup folds every point of the group's series in [from, to] into
// its query buckets (emptied first; made by newGroupBuckets for q). It
// returns the windows whose samples it needed but did not get (their rollups
// could not be used); the caller reads them and calls again.
func aggregateGroup(q *Query, g Group, data map[int64]*SeriesData, buckets *groupBuckets) []WindowKey {
	from, to := q.From.UnixMicro(), q.To.UnixMicro()
	bk := bucketer{step: q.Step.Microseconds()}
	keep := isPercentile(q.Agg)
	useRollups := usesRollups(q)
	buckets.reset()
	var missing []WindowKey
	for _, id := range g.SeriesIDs {
		d := data[id]
		if d == nil {
			continue
		}
		for _, b := range d.Partials {
			buckets.at(b.Start).addBucket(b, id)
		}
		var overridden map[int64]bool // nil (empty) unless late raw points
		if len(d.Raw) > 0 {
			overridden = make(map[int64]bool, len(d.Raw))
		}
		for _, p := range d.Raw {
			overridden[p.T] = true
			if chunks.IsStaleMarker(p.V) {
				continue
			}
			buckets.at(bk.start(p.T)).add(p.T, p.V, id, keep)
		}
		for _, w := range d.Windows {
			if !addWindow(buckets, bk, w, id, from, to, keep, useRollups && !overrides(d.Raw, w), overridden) {
				missing = append(missing, WindowKey{id, w.Start})
			}
		}
	}
	return missing
}

func isPercentile(agg Agg) bool {
	switch agg {
	case AggP50, AggP90, AggP95, AggP99:
		return true
	}
	return false
}

// addWindow folds a compacted window in: through its rollup buckets where
// they stand for their samples (rollups: the query composes from them; a
// bucket whose samples all lie in [from, to] and whose sum did not
// overflow), the other buckets through the samples, decoding only from the
// first of them to the end of the last. false: it needs the window's
// samples, which did not come.
func addWindow(buckets *groupBuckets, bk bucketer, w WindowData, id, from, to int64, keep, rollups bool, overridden map[int64]bool) bool {
	var rolled []chunks.Bucket
	width := chunks.RollupWidth
	if rollups && len(w.Rollup) > 0 {
		var err error
		if rolled, width, err = chunks.DecodeRollups(buckets.rollups, w.Start, w.Rollup); err != nil {
			rolled = nil // corrupt rollups: read the samples
		} else {
			buckets.rollups = rolled // the next window decodes into the same slice
		}
	}
	var fromSamples map[int64]bool // buckets (starts) read from the samples
	end := to                      // the samples are read up to here
	if rolled != nil {
		first, last := to, from
		for _, b := range rolled {
			switch {
			case b.LastT < from || b.Start > to:
			// A bucket's samples lie in [its start, LastT], and none is older than the window's first.
			case !b.Overflow && (b.Start >= from || w.MinT >= from) && b.LastT <= to:
				buckets.at(bk.start(b.Start)).addBucket(b, id)
			default:
				if fromSamples == nil {
					fromSamples = map[int64]bool{}
				}
				fromSamples[b.Start] = true
				first, last = min(first, b.Start), max(last, b.Start)
			}
		}
		if fromSamples == nil {
			return true
		}
		from, end = max(from, first), min(to, last+width-1)
	}
	if w.Data == nil {
		return false
	}
	it := chunks.NewIterator(w.Data)
	it.SkipBefore(from)
	var cur *accumulator // the bucket of the previous sample: most samples share it
	curStart := int64(math.MinInt64)
	for it.Next() {
		p := it.At()
		if p.T > end {
			break
		}
		if p.T < from || overridden[p.T] || chunks.IsStaleMarker(p.V) {
			continue
		}
		if fromSamples != nil && !fromSamples[p.T-floorMod(p.T, width)] {
			continue // its bucket came from the rollups
		}
		if start := bk.start(p.T); cur == nil || start != curStart {
			cur, curStart = buckets.at(start), start
		}
		cur.add(p.T, p.V, id, keep)
	}
	return true
}

// overrides says whether raw points fall in a window's compacted time (late
// points): they replace samples, so its rollups do not stand for it.
func overrides(raw []chunks.Sample, w WindowData) bool {
	for _, p := range raw {
		if p.T >= w.MinT && p.T <= w.MaxT {
			return true
		}
	}
	return false
}

func floorMod(a, b int64) int64 {
	m := a % b
	if m < 0 {
		m += b
	}
	return m
}

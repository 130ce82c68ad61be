// Package promstorage is Prometheus' storage.Queryable over the xtrace store,
// for the PromQL engine and the Prometheus HTTP API. One Queryable serves one
// project: every series it chooses belongs to that project.
//
// A Select asks the store for the series its matchers choose in the time
// range (pushed down to SQL), then for their samples in that range; it never
// scans the points of unchosen series. Series come back sorted by labels, as
// the engine requires. The store hands samples over as per-series batches
// (store.SampleBatch), so how points are kept (raw rows today) stays behind
// store.ReadSamples.
package promstorage

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/util/annotations"

	"github.com/xtrace-dev/xtrace-operator/server/internal/metrics"
	"github.com/xtrace-dev/xtrace-operator/server/internal/store"
)

// Reader is the storage the adapter reads; *store.Store implements it.
type Reader interface {
	SelectSeries(ctx context.Context, q store.SeriesQuery) ([]store.PromSeries, error)
	ReadSamples(ctx context.Context, ids []int64, mint, maxt int64, maxSamples int, fn func(store.SampleBatch) error) error
	ReadNewest(ctx context.Context, ids []int64, mint, maxt int64) (newest []store.SampleBatch, after []int64, err error)
	PromLabelNames(ctx context.Context, q store.SeriesQuery) ([]string, error)
	PromLabelValues(ctx context.Context, q store.SeriesQuery, name string) ([]string, error)
}

// Limits bound what one query may load.
type Limits struct {
	// MaxSeries is the most series one selector may choose.
	MaxSeries int
	// MaxSamples is the most samples one query may read from the store, over all its selectors.
	MaxSamples int
	// MaxLabelValues is the most label names or values one listing returns without an explicit limit.
	MaxLabelValues int
}

// DefaultMaxSeries and DefaultMaxLabelValues are the limits that are not configurable.
const (
	DefaultMaxSeries      = 100_000
	DefaultMaxLabelValues = 100_000
)

// Queryable is a storage.Queryable over one project's series.
type Queryable struct {
	reader  Reader
	project string
	limits  Limits
	now     func() time.Time
}

// New returns the Queryable of project. now is the clock (nil: time.Now); it
// tells an unbounded time range from a bounded one.
func New(r Reader, project string, limits Limits, now func() time.Time) *Queryable {
	if limits.MaxSeries <= 0 {
		limits.MaxSeries = DefaultMaxSeries
	}
	if limits.MaxLabelValues <= 0 {
		limits.MaxLabelValues = DefaultMaxLabelValues
	}
	if now == nil {
		now = time.Now
	}
	return &Queryable{reader: r, project: project, limits: limits, now: now}
}

// Querier implements storage.Queryable.
func (q *Queryable) Querier(mint, maxt int64) (storage.Querier, error) {
	return &querier{Queryable: q, mint: mint, maxt: maxt}, nil
}

type querier struct {
	*Queryable
	mint, maxt int64

	mu   sync.Mutex
	read int // samples read so far by this querier's selects
}

func (q *querier) Close() error { return nil }

// seriesQuery bounds [mint, maxt] to the times points can have; a range
// covering all of them needs no time filter.
func (q *querier) seriesQuery(mint, maxt int64, matchers []*labels.Matcher, limit int) store.SeriesQuery {
	oldest := metrics.MinTimestamp.UnixMilli()
	newest := q.now().Add(metrics.MaxFutureSkew).UnixMilli()
	return store.SeriesQuery{Project: q.project, Matchers: matchers, MinT: max(mint, oldest), MaxT: min(maxt, newest),
		AnyTime: mint <= oldest && maxt >= newest, Limit: limit}
}

// Select implements storage.Querier.
func (q *querier) Select(ctx context.Context, _ bool, hints *storage.SelectHints, matchers ...*labels.Matcher) storage.SeriesSet {
	mint, maxt := q.mint, q.maxt
	if hints != nil {
		mint, maxt = hints.Start, hints.End
	}
	sq := q.seriesQuery(mint, maxt, matchers, q.limits.MaxSeries)
	if sq.MinT > sq.MaxT {
		return storage.EmptySeriesSet()
	}
	found, err := q.reader.SelectSeries(ctx, sq)
	if err != nil {
		return storage.ErrSeriesSet(err)
	}
	if hints != nil && hints.Func == "series" { // labels only (the series API)
		out := make([]*series, len(found))
		for i, s := range found {
			out[i] = &series{ls: s.Labels}
		}
		return newSeriesSet(out)
	}
	ids := make([]int64, len(found))
	byID := make(map[int64]*series, len(found))
	for i, s := range found {
		ids[i] = s.ID
		byID[s.ID] = &series{ls: s.Labels}
	}
	add := func(b store.SampleBatch) {
		s := byID[b.SeriesID]
		s.samples = slices.Grow(s.samples, len(b.T))
		for i := range b.T {
			s.samples = append(s.samples, sample{b.T[i], b.V[i]})
		}
	}
	toRead := ids
	if instantSelector(hints) {
		// Only the newest sample at or before the evaluation time counts, and
		// each series' newest point is kept apart: no point storage is read
		// unless a series has a point after the evaluation time.
		newest, after, err := q.reader.ReadNewest(ctx, ids, sq.MinT, sq.MaxT)
		if err != nil {
			return storage.ErrSeriesSet(err)
		}
		for _, b := range newest {
			add(b)
		}
		toRead = after
	}
	q.mu.Lock()
	budget := q.limits.MaxSamples - q.read
	q.mu.Unlock()
	read := 0
	err = q.reader.ReadSamples(ctx, toRead, sq.MinT, sq.MaxT, budget, func(b store.SampleBatch) error {
		add(b)
		read += len(b.T)
		return nil
	})
	q.mu.Lock()
	q.read += read
	q.mu.Unlock()
	if err != nil {
		return storage.ErrSeriesSet(err)
	}
	out := make([]*series, 0, len(found))
	for _, id := range ids {
		if s := byID[id]; len(s.samples) > 0 {
			out = append(out, s)
		}
	}
	return newSeriesSet(out)
}

// instantSelector says whether a select is a plain vector selector of an
// instant query: the engine then uses only the newest sample at or before
// the evaluation time (within the lookback).
func instantSelector(hints *storage.SelectHints) bool {
	return hints != nil && hints.Step == 0 && hints.Range == 0 && hints.Func == ""
}

// LabelValues implements storage.LabelQuerier.
func (q *querier) LabelValues(ctx context.Context, name string, hints *storage.LabelHints, matchers ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	limit, serverCap := q.listingLimit(hints)
	vals, err := q.reader.PromLabelValues(ctx, q.seriesQuery(q.mint, q.maxt, matchers, limit), name)
	vals, ws := cut(vals, limit, serverCap)
	return vals, ws, err
}

// LabelNames implements storage.LabelQuerier.
func (q *querier) LabelNames(ctx context.Context, hints *storage.LabelHints, matchers ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	limit, serverCap := q.listingLimit(hints)
	names, err := q.reader.PromLabelNames(ctx, q.seriesQuery(q.mint, q.maxt, matchers, limit))
	names, ws := cut(names, limit, serverCap)
	return names, ws, err
}

// listingLimit is the caller's limit (the caller cuts and warns), or the
// server's own when the caller set none or a larger one.
func (q *querier) listingLimit(hints *storage.LabelHints) (limit int, serverCap bool) {
	if hints != nil && hints.Limit > 0 && hints.Limit <= q.limits.MaxLabelValues {
		return hints.Limit, false
	}
	return q.limits.MaxLabelValues, true
}

// cut drops what lies beyond the server's cap (the store returns one more
// value than the limit to show there are more) and says so.
func cut(vals []string, limit int, serverCap bool) ([]string, annotations.Annotations) {
	if vals == nil {
		vals = []string{}
	}
	if serverCap && len(vals) > limit {
		var ws annotations.Annotations
		ws.Add(fmt.Errorf("results truncated to the server's limit of %d", limit))
		return vals[:limit], ws
	}
	return vals, nil
}

// series is one series with its samples in time order.
type series struct {
	ls      labels.Labels
	samples samples
}

func (s *series) Labels() labels.Labels { return s.ls }

func (s *series) Iterator(chunkenc.Iterator) chunkenc.Iterator {
	return storage.NewListSeriesIterator(s.samples)
}

// samples are float samples; Get hands out pointers, so iterating allocates nothing.
type samples []sample

func (s samples) Get(i int) chunks.Sample { return &s[i] }
func (s samples) Len() int                { return len(s) }

type sample struct {
	t int64
	f float64
}

func (s *sample) T() int64                    { return s.t }
func (*sample) ST() int64                     { return 0 }
func (s *sample) F() float64                  { return s.f }
func (*sample) H() *histogram.Histogram       { return nil }
func (*sample) FH() *histogram.FloatHistogram { return nil }
func (*sample) Type() chunkenc.ValueType      { return chunkenc.ValFloat }
func (s *sample) Copy() chunks.Sample         { c := *s; return &c }

// newSeriesSet sorts series by labels and merges series whose labels are
// equal (a pushed series with an empty label and a remote-written one
// without it are the same series to PromQL).
func newSeriesSet(in []*series) storage.SeriesSet {
	slices.SortFunc(in, func(a, b *series) int { return labels.Compare(a.ls, b.ls) })
	out := in[:0]
	for _, s := range in {
		if n := len(out); n > 0 && labels.Equal(out[n-1].ls, s.ls) {
			out[n-1] = merge(out[n-1], s)
			continue
		}
		out = append(out, s)
	}
	return &seriesSet{series: out, i: -1}
}

// merge combines the samples of two series with equal labels in time order;
// at equal timestamps b's value is kept.
func merge(a, b *series) *series {
	all := append(slices.Clone(a.samples), b.samples...)
	slices.SortStableFunc(all, func(x, y sample) int { return cmp.Compare(x.t, y.t) })
	m := &series{ls: a.ls}
	for _, s := range all {
		if n := len(m.samples); n > 0 && m.samples[n-1].t == s.t {
			m.samples[n-1].f = s.f
			continue
		}
		m.samples = append(m.samples, s)
	}
	return m
}

type seriesSet struct {
	series []*series
	i      int
}

func (s *seriesSet) Next() bool {
	if s.i+1 >= len(s.series) {
		s.i = len(s.series)
		return false
	}
	s.i++
	return true
}
func (s *seriesSet) At() storage.Series              { return s.series[s.i] }
func (*seriesSet) Err() error                        { return nil }
func (*seriesSet) Warnings() annotations.Annotations { return nil }

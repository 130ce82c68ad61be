package metrics

import (
	"bytes"
	"context"
	"encoding/json"

	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/xtrace-dev/xtrace-operator/server/internal/chunks"

	"github.com/xtrace-dev/xtrace-operator/server/internal/errs"
)

// Limits of a query response (SPEC §3.5).
const (
	MaxSeries          = 50
	MaxPointsPerSeries = 1000
	// MaxSeriesScanned bounds how many series with points in the window one
	// query may consider (before grouping), so that a broad query cannot load
	// every series of a large metric into memory.
	MaxSeriesScanned = 10000
	DefaultRange     = time.Hour
	DefaultStep      = time.Minute
	MaxStep          = 366 * 24 * time.Hour
)

// Agg is an aggregation function over the points of a bucket.
type Agg string

// The aggregations a query may ask for.
const (
	AggAvg   Agg = "avg"
	AggMin   Agg = "min"
	AggMax   Agg = "max"
	AggSum   Agg = "sum"
	AggCount Agg = "count"
	AggLast  Agg = "last"
	AggP50   Agg = "p50"
	AggP90   Agg = "p90"
	AggP95   Agg = "p95"
	AggP99   Agg = "p99"
)

// Aggs lists every valid Agg, in documentation order.
var Aggs = []Agg{AggAvg, AggMin, AggMax, AggSum, AggCount, AggLast, AggP50, AggP90, AggP95, AggP99}

// QueryInput is a query as the API received it: typed, not yet validated.
// Zero values mean "not given" and take the defaults.
type QueryInput struct {
	Name     string
	From, To *time.Time
	Labels   map[string]string
	Step     time.Duration
	Agg      string
	GroupBy  []string
}

// Query is a validated metrics query.
type Query struct {
	Name    string
	From    time.Time // inclusive
	To      time.Time // inclusive
	Labels  map[string]string
	Step    time.Duration // whole seconds, ≥ 1s
	Agg     Agg
	GroupBy []string // sorted, unique; empty: one result per series
}

// NewQuery validates in and fills in the defaults (to = now, from = to − 1h,
// step 1m, agg avg).
func NewQuery(in QueryInput, now time.Time) (*Query, error) {
	q := &Query{Name: in.Name, Labels: in.Labels, Step: in.Step, Agg: Agg(strings.ToLower(in.Agg))}
	if err := CheckQueryName(q.Name); err != nil {
		return nil, err
	}
	q.To = now.UTC()
	if in.To != nil {
		q.To = in.To.UTC()
	}
	q.From = q.To.Add(-DefaultRange)
	if in.From != nil {
		q.From = in.From.UTC()
	}
	if q.From.After(q.To) {
		return nil, errs.InvalidField("from", "%s is after to (%s)", q.From.Format(time.RFC3339Nano), q.To.Format(time.RFC3339Nano))
	}
	if q.Labels == nil {
		q.Labels = map[string]string{}
	}
	switch {
	case q.Step == 0:
		q.Step = DefaultStep
	case q.Step < time.Second:
		return nil, errs.InvalidField("step", "%s is below the minimum of 1s", q.Step)
	case q.Step%time.Second != 0:
		return nil, errs.InvalidField("step", "%s is not a whole number of seconds", q.Step)
	case q.Step > MaxStep:
		return nil, errs.InvalidField("step", "%s is longer than a year", q.Step)
	}
	if q.Agg == "" {
		q.Agg = AggAvg
	}
	if !slices.Contains(Aggs, q.Agg) {
		names := make([]string, len(Aggs))
		for i, a := range Aggs {
			names[i] = string(a)
		}
		return nil, errs.InvalidField("agg", "%q is not one of %s", truncate(in.Agg, 32), strings.Join(names, ", "))
	}
	for _, k := range in.GroupBy {
		if k == "" {
			return nil, errs.InvalidField("group_by", "empty label key")
		}
		if !validLabelKey(k) {
			return nil, errs.InvalidField("group_by", "%q is not a valid label key", truncate(k, 64))
		}
		q.GroupBy = append(q.GroupBy, k)
	}
	slices.Sort(q.GroupBy)
	q.GroupBy = slices.Compact(q.GroupBy)
	return q, nil
}

// CheckQueryName validates the metric name of a query: required and well formed
// (a malformed name cannot match a series, so say so rather than answer nothing).
func CheckQueryName(name string) error {
	if name == "" {
		return errs.InvalidField("name", "required")
	}
	if len(name) > MaxNameLength || !validName(name) {
		return errs.InvalidField("name", "%q is not a valid metric name", truncate(name, 64))
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// Series is one result series: its labels (the group's labels with group_by),
// its buckets, oldest first, and the time of its newest raw point in the
// window (of a group: of its newest member) — the router's freshness signal.
type Series struct {
	Labels   map[string]string `json:"labels"`
	Values   []Sample          `json:"values"`
	LatestTS time.Time         `json:"latest_ts"`
}

// Sample is one bucket: its start time and the aggregated value. The time
// is in microseconds, not a time.Time (24 bytes, one a pointer for the
// collector to follow): a day's dashboard answer holds some 2,300 samples,
// and they were a quarter of what its query allocated.
type Sample struct {
	Start int64 // microseconds since 1970, UTC; written as "timestamp"
	Value float64
}

// MarshalJSON writes the value as a JSON number, or, where JSON has none
// (an aggregate that overflowed, or NaN/±Inf samples written by Prometheus),
// as the string "+Inf", "-Inf" or "NaN" — Prometheus' own spelling.
func (s Sample) MarshalJSON() ([]byte, error) {
	var w sampleWriter
	return w.append(make([]byte, 0, 64), s), nil
}

// sampleWriter appends samples as Sample.MarshalJSON writes them, faster:
// a day's dashboard answer is some 2,300 samples, and formatting their
// times and values was most of the answer's CPU. It formats a UTC day's
// date once for the samples of that day.
type sampleWriter struct {
	day  int64    // days since 1970 of date
	date [11]byte // "2006-01-02T"; zero until the first sample
}

func (w *sampleWriter) append(b []byte, s Sample) []byte {
	b = append(b, `{"timestamp":"`...)
	b = w.appendTime(b, s.Start)
	b = append(b, `","value":`...)
	switch v := s.Value; {
	case math.IsNaN(v):
		b = append(b, `"NaN"`...)
	case math.IsInf(v, 1):
		b = append(b, `"+Inf"`...)
	case math.IsInf(v, -1):
		b = append(b, `"-Inf"`...)
	case v == math.Trunc(v) && math.Abs(v) < 1e6 && (v != 0 || !math.Signbit(v)):
		// An integer below a million is its digits in the 'g' format (which
		// switches to an exponent at 1e+06); counts and queue depths are.
		b = strconv.AppendInt(b, int64(v), 10)
	default:
		b = strconv.AppendFloat(b, v, 'g', -1, 64)
	}
	return append(b, '}')
}

// fastTimeLimit is the first second of the year 10000: RFC 3339 has four year digits.
const fastTimeLimit = 253402300800

// appendTime writes the time us (microseconds) as
// time.UnixMicro(us).UTC().AppendFormat(b, time.RFC3339Nano) does.
func (w *sampleWriter) appendTime(b []byte, us int64) []byte {
	sec := us / 1e6
	if us%1e6 != 0 || us < 0 || sec >= fastTimeLimit {
		return microsToTime(us).AppendFormat(b, time.RFC3339Nano)
	}
	const secondsPerDay = 24 * 60 * 60
	day, clock := sec/secondsPerDay, sec%secondsPerDay
	if w.day != day || w.date[0] == 0 {
		w.day = day
		time.Unix(sec, 0).UTC().AppendFormat(w.date[:0], "2006-01-02T")
	}
	h, m, s := clock/3600, clock/60%60, clock%60
	b = append(b, w.date[:]...)
	return append(b, byte('0'+h/10), byte('0'+h%10), ':', byte('0'+m/10), byte('0'+m%10), ':',
		byte('0'+s/10), byte('0'+s%10), 'Z')
}

// AppendJSON appends the series as encoding/json (HTML escaping off) writes
// it, without its reflection and per-sample validation: a router query's
// answer is mostly samples, and encoding them was a fifth of its CPU.
func (s Series) AppendJSON(b []byte) ([]byte, error) {
	b = append(b, `{"labels":`...)
	if s.Labels == nil {
		b = append(b, "null"...)
	} else {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(s.Labels); err != nil {
			return b, err
		}
		b = append(b, bytes.TrimSuffix(buf.Bytes(), []byte("\n"))...)
	}
	b = append(b, `,"values":`...)
	if s.Values == nil {
		b = append(b, "null"...)
	} else {
		var w sampleWriter
		b = append(b, '[')
		for i, v := range s.Values {
			if i > 0 {
				b = append(b, ',')
			}
			b = w.append(b, v)
		}
		b = append(b, ']')
	}
	latest, err := s.LatestTS.MarshalJSON()
	if err != nil {
		return b, err
	}
	b = append(b, `,"latest_ts":`...)
	return append(append(b, latest...), '}'), nil
}

// Result is the answer to a Query.
type Result struct {
	Series    []Series
	LatestTS  time.Time // zero when Series is empty
	Truncated bool
}

// SeriesRef is a stored series: its id and labels.
type SeriesRef struct {
	ID     int64
	Labels map[string]string
}

// Selector picks the series of one metric whose labels contain Labels and
// that have at least one point in [From, To].
type Selector struct {
	Name     string
	Labels   map[string]string
	From, To time.Time
	// Limit: return at most this many series (the caller asks for one more than it accepts).
	Limit int
}

// Buckets is one group's aggregated buckets, oldest first (at most
// MaxPointsPerSeries+1 of the most recent), and its newest point's time.
type Buckets struct {
	Values []Sample
	Latest time.Time
}

// Source is the storage a query runs on.
type Source interface {
	// FindSeries returns the series that Selector picks.
	FindSeries(ctx context.Context, project string, sel Selector) ([]SeriesRef, error)
	// ReadSeries returns the points of the series in the range, by tier.
	ReadSeries(ctx context.Context, project string, req ReadRequest) ([]SeriesData, error)
	// ReadWindows returns the samples of compacted windows.
	ReadWindows(ctx context.Context, project string, keys []WindowKey) (map[WindowKey][]byte, error)
	// LatestPoints returns the newest point of each series.
	LatestPoints(ctx context.Context, project string, ids []int64) (map[int64]chunks.Sample, error)
}

// FindReader is a Source that can find a query's series and read them in
// one round trip.
type FindReader interface {
	// FindAndReadSeries is FindSeries(sel) followed, when at most maxRead
	// series were found, by ReadSeries(req) of them (req.IDs unused). read is
	// false when the series were not read: the caller reads them itself.
	FindAndReadSeries(ctx context.Context, project string, sel Selector, req ReadRequest, maxRead int) (
		found []SeriesRef, data []SeriesData, read bool, err error)
}

// Run answers q from src (SPEC §3.5): series with points in the window are
// grouped, the first MaxSeries groups (by their labels' canonical JSON) with
// points are aggregated, and each keeps its MaxPointsPerSeries most recent
// buckets.
func Run(ctx context.Context, src Source, project string, q *Query) (*Result, error) {
	arena := NewArena() // the reads' bytes, needed until the groups are aggregated
	defer arena.Release()
	found, read, err := findSeries(ctx, src, project, q, arena)
	if err != nil {
		return nil, err
	}
	if len(found) > MaxSeriesScanned {
		return nil, errs.InvalidField("labels", "more than %d series of %s have points in the window; narrow the query with labels or a shorter window",
			MaxSeriesScanned, q.Name)
	}
	groups, _ := GroupSeries(found, q.GroupBy, len(found))
	res := &Result{}
	for len(groups) > 0 && len(res.Series) < MaxSeries {
		page := groups[:min(len(groups), MaxSeries-len(res.Series))]
		groups = groups[len(page):]
		answered, err := runGroups(ctx, src, project, q, page, read, arena)
		if err != nil {
			return nil, err
		}
		res.Series = append(res.Series, answered...)
	}
	res.Truncated = len(groups) > 0 // more groups with points in the window than an answer holds
	for i := range res.Series {
		if n := len(res.Series[i].Values); n > MaxPointsPerSeries {
			res.Series[i].Values = res.Series[i].Values[n-MaxPointsPerSeries:]
			res.Truncated = true
		}
		if res.Series[i].LatestTS.After(res.LatestTS) {
			res.LatestTS = res.Series[i].LatestTS
		}
	}
	return res, nil
}

// findSeries finds q's series. With a FindReader, when the answer holds
// every series found (at most MaxSeries, so at most MaxSeries groups), their
// points are read in the same round trip: read holds them by id (nil when
// not read).
func findSeries(ctx context.Context, src Source, project string, q *Query, arena *Arena) (found []SeriesRef, read map[int64]*SeriesData, err error) {
	sel := Selector{Name: q.Name, Labels: q.Labels, From: q.From, To: q.To, Limit: MaxSeriesScanned + 1}
	fr, ok := src.(FindReader)
	if !ok || singleLastBucket(q) { // a single last bucket is answered from the latest values
		found, err = src.FindSeries(ctx, project, sel)
		return found, nil, err
	}
	found, data, ok, err := fr.FindAndReadSeries(ctx, project, sel, readRequest(q, nil, arena), MaxSeries)
	if err != nil || !ok {
		return found, nil, err
	}
	return found, indexByID(data), nil
}

func readRequest(q *Query, ids []int64, arena *Arena) ReadRequest {
	return ReadRequest{IDs: ids, From: q.From, To: q.To, Step: q.Step, Agg: q.Agg, Values: isPercentile(q.Agg), Rollups: usesRollups(q), Arena: arena}
}

func indexByID(data []SeriesData) map[int64]*SeriesData {
	out := make(map[int64]*SeriesData, len(data))
	for i := range data {
		out[data[i].ID] = &data[i]
	}
	return out
}

// runGroups aggregates a page of groups; groups without points in the
// window (possible when a compacted window only overlaps it) are left out.
// read holds the groups' points when findSeries read them already.
func runGroups(ctx context.Context, src Source, project string, q *Query, groups []Group, read map[int64]*SeriesData, arena *Arena) ([]Series, error) {
	byID := read
	if byID == nil {
		var ids []int64
		for _, g := range groups {
			ids = append(ids, g.SeriesIDs...)
		}
		if singleLastBucket(q) {
			if out, ok, err := fromLatest(ctx, src, project, q, groups, ids); err != nil || ok {
				return out, err
			}
		}
		data, err := src.ReadSeries(ctx, project, readRequest(q, ids, arena))
		if err != nil {
			return nil, err
		}
		byID = indexByID(data)
	}
	out := make([]Series, 0, len(groups))
	buckets := newGroupBuckets(bucketer{step: q.Step.Microseconds()}, q.From.UnixMicro(), q.To.UnixMicro())
	defer buckets.release()
	for _, g := range groups {
		if missing := aggregateGroup(q, g, byID, buckets); len(missing) > 0 {
			// rollups could not stand for these windows: read their samples
			samples, err := src.ReadWindows(ctx, project, missing)
			if err != nil {
				return nil, err
			}
			fillWindows(byID, samples)
			aggregateGroup(q, g, byID, buckets)
		}
		if buckets.empty() {
			continue
		}
		b := buckets.finish(q.Agg)
		out = append(out, Series{Labels: g.Labels, Values: b.Values, LatestTS: b.Latest})
	}
	return out, nil
}

func fillWindows(byID map[int64]*SeriesData, samples map[WindowKey][]byte) {
	for key, data := range samples {
		d := byID[key.Series]
		for i := range d.Windows {
			if d.Windows[i].Start == key.Start {
				d.Windows[i].Data = data
			}
		}
	}
}

// singleLastBucket: the query asks for the newest value in one bucket.
func singleLastBucket(q *Query) bool {
	bk := bucketer{step: q.Step.Microseconds()}
	return q.Agg == AggLast && bk.start(q.From.UnixMicro()) == bk.start(q.To.UnixMicro())
}

// fromLatest answers a single-bucket "last" query from the latest value of
// each series, without reading point storage. ok is false when some series
// has a point newer than the window (the latest value is not the answer).
func fromLatest(ctx context.Context, src Source, project string, q *Query, groups []Group, ids []int64) ([]Series, bool, error) {
	latest, err := src.LatestPoints(ctx, project, ids)
	if err != nil {
		return nil, false, err
	}
	from, to := q.From.UnixMicro(), q.To.UnixMicro()
	bk := bucketer{step: q.Step.Microseconds()}
	var out []Series
	for _, g := range groups {
		var acc accumulator
		for _, id := range g.SeriesIDs {
			p, ok := latest[id]
			switch {
			case !ok || p.T < from:
				continue // no point in the window
			case p.T > to || chunks.IsStaleMarker(p.V):
				return nil, false, nil // the answer is an older point
			}
			acc.add(p.T, p.V, id, false)
		}
		if acc.n > 0 {
			out = append(out, Series{Labels: g.Labels, LatestTS: microsToTime(acc.latest),
				Values: []Sample{{Start: bk.start(acc.lastT), Value: acc.last}}})
		}
	}
	return out, true, nil
}

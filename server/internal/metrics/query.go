package metrics

import (
	"context"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

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

// Sample is one bucket: its start time and the aggregated value.
type Sample struct {
	Timestamp time.Time `json:"timestamp"`
	Value     float64   `json:"value"`
}

// MarshalJSON writes the value as a JSON number, or, where JSON has none
// (an aggregate that overflowed, or NaN/±Inf samples written by Prometheus),
// as the string "+Inf", "-Inf" or "NaN" — Prometheus' own spelling.
func (s Sample) MarshalJSON() ([]byte, error) {
	b := make([]byte, 0, 64)
	b = append(b, `{"timestamp":"`...)
	b = s.Timestamp.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","value":`...)
	switch {
	case math.IsNaN(s.Value):
		b = append(b, `"NaN"`...)
	case math.IsInf(s.Value, 1):
		b = append(b, `"+Inf"`...)
	case math.IsInf(s.Value, -1):
		b = append(b, `"-Inf"`...)
	default:
		b = strconv.AppendFloat(b, s.Value, 'g', -1, 64)
	}
	return append(b, '}'), nil
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
// MaxPointsPerSeries+1 of the most recent), and its newest raw point time.
type Buckets struct {
	Values []Sample
	Latest time.Time
}

// Source is the storage a query runs on.
type Source interface {
	// FindSeries returns the series that Selector picks.
	FindSeries(ctx context.Context, project string, sel Selector) ([]SeriesRef, error)
	// AggregateGroups aggregates each group's points per bucket of q.Step
	// with q.Agg; the result has one element per group.
	AggregateGroups(ctx context.Context, project string, groups []Group, q *Query) ([]Buckets, error)
}

// Run answers q from src (SPEC §3.5): series with points in the window are
// grouped, the first MaxSeries groups by their labels' canonical JSON are
// aggregated, and each keeps its MaxPointsPerSeries most recent buckets.
func Run(ctx context.Context, src Source, project string, q *Query) (*Result, error) {
	found, err := src.FindSeries(ctx, project, Selector{Name: q.Name, Labels: q.Labels, From: q.From, To: q.To, Limit: MaxSeriesScanned + 1})
	if err != nil {
		return nil, err
	}
	if len(found) > MaxSeriesScanned {
		return nil, errs.InvalidField("labels", "more than %d series of %s have points in the window; narrow the query with labels or a shorter window",
			MaxSeriesScanned, q.Name)
	}
	groups, truncated := GroupSeries(found, q.GroupBy, MaxSeries)
	res := &Result{Truncated: truncated}
	if len(groups) == 0 {
		return res, nil
	}
	buckets, err := src.AggregateGroups(ctx, project, groups, q)
	if err != nil {
		return nil, err
	}
	for i, g := range groups {
		vals := buckets[i].Values
		if len(vals) == 0 {
			continue // its points were deleted since FindSeries looked
		}
		if len(vals) > MaxPointsPerSeries {
			vals = vals[len(vals)-MaxPointsPerSeries:]
			res.Truncated = true
		}
		res.Series = append(res.Series, Series{Labels: g.Labels, Values: vals, LatestTS: buckets[i].Latest.UTC()})
		if buckets[i].Latest.After(res.LatestTS) {
			res.LatestTS = buckets[i].Latest.UTC()
		}
	}
	return res, nil
}

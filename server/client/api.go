package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Healthz checks that the server process is alive.
func (c *Client) Healthz(ctx context.Context) error {
	return c.do(ctx, "GET", "/healthz", nil, nil, nil)
}

// Ready checks that the server is ready (database reachable, not shutting down).
func (c *Client) Ready(ctx context.Context) error { return c.do(ctx, "GET", "/readyz", nil, nil, nil) }

// MetricPoint is one sample to push. A zero Timestamp means "when the server receives it".
type MetricPoint struct {
	Name      string            `json:"name"`
	Labels    map[string]string `json:"labels,omitempty"`
	Value     float64           `json:"value"`
	Timestamp time.Time         `json:"-"`
}

type wirePoint struct {
	MetricPoint
	TS string `json:"timestamp,omitempty"`
}

// PushMetrics sends points, in batches of at most MaxPointsPerPush. Each batch
// is acknowledged only after the server committed it; on error, the batches
// before it were stored (re-sending them is harmless).
func (c *Client) PushMetrics(ctx context.Context, points []MetricPoint) error {
	for start := 0; start < len(points); start += MaxPointsPerPush {
		end := min(start+MaxPointsPerPush, len(points))
		batch := make([]wirePoint, 0, end-start)
		for _, p := range points[start:end] {
			w := wirePoint{MetricPoint: p}
			if !p.Timestamp.IsZero() {
				w.TS = p.Timestamp.UTC().Format(time.RFC3339Nano)
			}
			batch = append(batch, w)
		}
		var out struct{ Accepted int }
		if err := c.do(ctx, "POST", "/v1/metrics/batch", nil, map[string]any{"metrics": batch}, &out); err != nil {
			return err
		}
		if out.Accepted != len(batch) {
			return fmt.Errorf("xtrace: server accepted %d of %d points", out.Accepted, len(batch))
		}
	}
	return nil
}

// Agg is a bucket aggregation.
type Agg string

// Aggregations.
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

// MetricsQuery selects and aggregates one metric. Zero values take the server's defaults
// (To = now, From = To − 1 h, Step = 1 m, Agg = avg).
type MetricsQuery struct {
	Name    string
	Labels  map[string]string // a series matches when its labels contain all of these
	From    time.Time
	To      time.Time
	Step    time.Duration // whole seconds, ≥ 1 s
	Agg     Agg
	GroupBy []string
}

// Sample is one bucket.
type Sample struct {
	Timestamp time.Time `json:"timestamp"`
	Value     float64   `json:"value"`
}

// UnmarshalJSON reads the value as a number, or as "+Inf", "-Inf" or "NaN",
// which the server sends where JSON has no number (e.g. an overflowed sum).
func (s *Sample) UnmarshalJSON(b []byte) error {
	var wire struct {
		Timestamp time.Time       `json:"timestamp"`
		Value     json.RawMessage `json:"value"`
	}
	if err := json.Unmarshal(b, &wire); err != nil {
		return err
	}
	s.Timestamp = wire.Timestamp
	switch string(wire.Value) {
	case `"+Inf"`:
		s.Value = math.Inf(1)
	case `"-Inf"`:
		s.Value = math.Inf(-1)
	case `"NaN"`:
		s.Value = math.NaN()
	default:
		return json.Unmarshal(wire.Value, &s.Value)
	}
	return nil
}

// Series is one result series.
type Series struct {
	Labels map[string]string `json:"labels"`
	Values []Sample          `json:"values"`
	// LatestTS is the time of the series' newest raw point in the window (of
	// a group_by group: of its newest member): its freshness.
	LatestTS *time.Time `json:"latest_ts"`
}

// QueryMeta describes a query answer.
type QueryMeta struct {
	LatestTS    *time.Time `json:"latest_ts"` // newest raw point among the series; nil when there is no data
	SeriesCount int        `json:"series_count"`
	Truncated   bool       `json:"truncated"`
}

// MetricsQueryResult is the answer of QueryMetrics.
type MetricsQueryResult struct {
	Series []Series  `json:"data"`
	Meta   QueryMeta `json:"meta"`
}

func (q MetricsQuery) values() (url.Values, error) {
	if q.Name == "" {
		return nil, errors.New("client: MetricsQuery.Name is required")
	}
	v := url.Values{"name": {q.Name}}
	if len(q.Labels) > 0 {
		b, _ := json.Marshal(q.Labels)
		v.Set("labels", string(b))
	}
	if !q.From.IsZero() {
		v.Set("from", q.From.UTC().Format(time.RFC3339Nano))
	}
	if !q.To.IsZero() {
		v.Set("to", q.To.UTC().Format(time.RFC3339Nano))
	}
	if q.Step != 0 {
		if q.Step < time.Second || q.Step%time.Second != 0 {
			return nil, fmt.Errorf("client: step %s is not a whole number of seconds ≥ 1s", q.Step)
		}
		v.Set("step", strconv.FormatInt(int64(q.Step/time.Second), 10)+"s")
	}
	if q.Agg != "" {
		v.Set("agg", string(q.Agg))
	}
	if len(q.GroupBy) > 0 {
		v.Set("group_by", strings.Join(q.GroupBy, ","))
	}
	return v, nil
}

// QueryMetrics runs a query (GET /api/public/metrics/query).
func (c *Client) QueryMetrics(ctx context.Context, q MetricsQuery) (*MetricsQueryResult, error) {
	v, err := q.values()
	if err != nil {
		return nil, err
	}
	var out MetricsQueryResult
	if err := c.do(ctx, "GET", "/api/public/metrics/query", v, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListMetricNames lists the metric names, sorted.
func (c *Client) ListMetricNames(ctx context.Context) ([]string, error) {
	var out struct{ Data []string }
	err := c.do(ctx, "GET", "/api/public/metrics/names", nil, nil, &out)
	return out.Data, err
}

// MetricLabels lists, for one metric, each label key and its values.
func (c *Client) MetricLabels(ctx context.Context, name string) (map[string][]string, error) {
	var out struct{ Data map[string][]string }
	err := c.do(ctx, "GET", "/api/public/metrics/labels", url.Values{"name": {name}}, nil, &out)
	return out.Data, err
}

// Latest is the newest value of one series.
type Latest struct {
	Labels    map[string]string
	Value     float64
	Bucket    time.Time  // start of the minute bucket holding the value
	LatestTS  *time.Time // the raw point's time, for freshness checks
	Truncated bool
}

// ErrAmbiguousSeries: LatestValue's labels match more than one series.
var ErrAmbiguousSeries = errors.New("xtrace: labels match more than one series")

// latestWindow is how far back LatestValue(s) look for a value.
const latestWindow = 15 * time.Minute

// LatestValues returns the most recent value of every series of name whose
// labels contain labels (agg=last over the last 15 minutes), each with its own
// freshness: the Router's "which replicas of model X are fresh" in one call.
// Series without a point in the window are absent. At most 50 series come
// back (the API's limit); Truncated is set on every element when more exist.
func (c *Client) LatestValues(ctx context.Context, name string, labels map[string]string) ([]Latest, error) {
	res, err := c.QueryMetrics(ctx, MetricsQuery{Name: name, Labels: labels, Step: time.Minute, Agg: AggLast,
		From: time.Now().Add(-latestWindow)})
	if err != nil {
		return nil, err
	}
	out := make([]Latest, 0, len(res.Series))
	for _, s := range res.Series {
		if len(s.Values) == 0 {
			continue
		}
		last := s.Values[len(s.Values)-1]
		ts := s.LatestTS
		if ts == nil { // an older server: only the answer-wide time is known
			ts = res.Meta.LatestTS
		}
		out = append(out, Latest{Labels: s.Labels, Value: last.Value, Bucket: last.Timestamp, LatestTS: ts, Truncated: res.Meta.Truncated})
	}
	return out, nil
}

// LatestValue returns the most recent value of the one series of name whose
// labels contain labels (see LatestValues). It returns (nil, nil) when there
// is no recent data and ErrAmbiguousSeries when several series match.
func (c *Client) LatestValue(ctx context.Context, name string, labels map[string]string) (*Latest, error) {
	all, err := c.LatestValues(ctx, name, labels)
	switch {
	case err != nil:
		return nil, err
	case len(all) == 0:
		return nil, nil
	case len(all) > 1:
		return nil, fmt.Errorf("%w: %d series", ErrAmbiguousSeries, len(all))
	}
	return &all[0], nil
}

// IsStale reports whether this series' newest point is older than maxAge at
// now (Router: 15 s, Scheduler: 30 s).
func (l Latest) IsStale(maxAge time.Duration, now time.Time) bool {
	return l.LatestTS == nil || now.Sub(*l.LatestTS) > maxAge
}

// IsStale reports whether an answer is older than maxAge at now: the Router
// treats data older than 15 s as stale, the Scheduler 30 s. No data is stale.
// With several series, meta.latest_ts is the freshest of them: use
// Series.LatestTS (or LatestValues and Latest.IsStale) to judge each one.
func IsStale(meta QueryMeta, maxAge time.Duration, now time.Time) bool {
	return meta.LatestTS == nil || now.Sub(*meta.LatestTS) > maxAge
}

// cacheKey identifies a query for CachedQuerier.
func (q MetricsQuery) cacheKey() string {
	v, _ := q.values()
	keys := make([]string, 0, len(v))
	for k := range v {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(k + "=" + v.Get(k) + "&")
	}
	return b.String()
}

package metrics

import (
	"encoding/json"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/xtrace-dev/xtrace-operator/server/internal/apierror"
)

// Limits of a query response (SPEC §3.5).
const (
	MaxSeries          = 50
	MaxPointsPerSeries = 1000
	DefaultRange       = time.Hour
	DefaultStep        = time.Minute
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

// ParseQuery validates the query string of GET /api/public/metrics/query.
func ParseQuery(q url.Values, now time.Time) (*Query, error) {
	out := &Query{Agg: AggAvg, Step: DefaultStep, Labels: map[string]string{}}
	out.Name = q.Get("name")
	if out.Name == "" {
		return nil, apierror.BadRequest("name: required")
	}
	if len(out.Name) > MaxNameLength || !validName(out.Name) {
		// Not an error: such a series cannot exist, but say so clearly.
		return nil, apierror.BadRequest("name: %q is not a valid metric name", truncate(out.Name, 64))
	}
	var err error
	out.To = now.UTC()
	if v := q.Get("to"); v != "" {
		if out.To, err = time.Parse(time.RFC3339Nano, v); err != nil {
			return nil, apierror.BadRequest("to: %q is not RFC 3339", truncate(v, 64))
		}
	}
	out.From = out.To.Add(-DefaultRange)
	if v := q.Get("from"); v != "" {
		if out.From, err = time.Parse(time.RFC3339Nano, v); err != nil {
			return nil, apierror.BadRequest("from: %q is not RFC 3339", truncate(v, 64))
		}
	}
	out.From, out.To = out.From.UTC(), out.To.UTC()
	if out.From.After(out.To) {
		return nil, apierror.BadRequest("from: %s is after to (%s)", out.From.Format(time.RFC3339Nano), out.To.Format(time.RFC3339Nano))
	}
	if v := q.Get("labels"); v != "" {
		if err := json.Unmarshal([]byte(v), &out.Labels); err != nil || out.Labels == nil {
			return nil, apierror.BadRequest(`labels: must be a JSON object of string values, e.g. {"node_id":"node-1"}`)
		}
	}
	if v := q.Get("step"); v != "" {
		if out.Step, err = ParseStep(v); err != nil {
			return nil, err
		}
	}
	if v := q.Get("agg"); v != "" {
		out.Agg = Agg(strings.ToLower(v))
		if !validAgg(out.Agg) {
			names := make([]string, len(Aggs))
			for i, a := range Aggs {
				names[i] = string(a)
			}
			return nil, apierror.BadRequest("agg: %q is not one of %s", truncate(v, 32), strings.Join(names, ", "))
		}
	}
	if v := q.Get("group_by"); v != "" {
		seen := map[string]bool{}
		for _, k := range strings.Split(v, ",") {
			k = strings.TrimSpace(k)
			if k == "" {
				return nil, apierror.BadRequest("group_by: empty label key in %q", truncate(v, 64))
			}
			if !validLabelKey(k) {
				return nil, apierror.BadRequest("group_by: %q is not a valid label key", truncate(k, 64))
			}
			if !seen[k] {
				seen[k] = true
				out.GroupBy = append(out.GroupBy, k)
			}
		}
		sort.Strings(out.GroupBy)
	}
	return out, nil
}

// ParseStep accepts the original 1m/5m/1h/1d and any Go duration of whole seconds ≥ 1s (15s, 10m, 6h).
func ParseStep(v string) (time.Duration, error) {
	var d time.Duration
	var err error
	if strings.HasSuffix(v, "d") {
		var days time.Duration
		days, err = time.ParseDuration(strings.TrimSuffix(v, "d") + "h")
		d = days * 24
	} else {
		d, err = time.ParseDuration(v)
	}
	switch {
	case err != nil:
		return 0, apierror.BadRequest("step: %q is not a duration like 15s, 1m, 5m, 1h or 1d", truncate(v, 32))
	case d < time.Second:
		return 0, apierror.BadRequest("step: %q is below the minimum of 1s", truncate(v, 32))
	case d%time.Second != 0:
		return 0, apierror.BadRequest("step: %q is not a whole number of seconds", truncate(v, 32))
	case d > 366*24*time.Hour:
		return 0, apierror.BadRequest("step: %q is longer than a year", truncate(v, 32))
	}
	return d, nil
}

func validAgg(a Agg) bool {
	for _, x := range Aggs {
		if a == x {
			return true
		}
	}
	return false
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// Series is one result series: its labels (the group's labels with group_by)
// and its buckets, oldest first.
type Series struct {
	Labels map[string]string `json:"labels"`
	Values []Sample          `json:"values"`
}

// Sample is one bucket: its start time and the aggregated value.
type Sample struct {
	Timestamp time.Time `json:"timestamp"`
	Value     float64   `json:"value"`
}

// Result is the answer to a Query.
type Result struct {
	Series    []Series
	LatestTS  time.Time // zero when Series is empty
	Truncated bool
}

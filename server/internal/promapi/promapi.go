// Package promapi is the read side of the Prometheus HTTP API v1 (query,
// query_range, series, labels, label values, metadata, query_exemplars,
// status/buildinfo) over the xtrace store, in Prometheus' JSON shapes,
// evaluated by Prometheus' own PromQL engine over promstorage.
//
// Handlers return errors of the kinds in package errs (or Prometheus'
// engine errors translated to them); httpapi writes them in Prometheus'
// error shape. Authentication, the per-token rate limit and timeouts come
// from httpapi's middleware, as for every other route.
package promapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime"
	"slices"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/timestamp"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/annotations"
	"golang.org/x/sync/semaphore"

	"github.com/xtrace-dev/xtrace-operator/server/internal/errs"
	"github.com/xtrace-dev/xtrace-operator/server/internal/promstorage"
)

// EngineVersion is the Prometheus release whose PromQL engine (module
// github.com/prometheus/prometheus v0.316.0) evaluates queries; buildinfo
// reports it so that clients such as Grafana enable the matching features.
const EngineVersion = "3.16.0"

// NoStepSubqueryInterval is the step of a subquery written without one
// (`[30m:]`): Prometheus' default global evaluation interval.
const NoStepSubqueryInterval = time.Minute

// maxPointsPerSeries is Prometheus' limit on range-query resolution.
const maxPointsPerSeries = 11000

// Options configure the API.
type Options struct {
	Reader promstorage.Reader
	// Project says which project a request reads (from its credentials).
	Project       func(*http.Request) string
	LookbackDelta time.Duration
	MaxSamples    int
	Timeout       time.Duration
	MaxConcurrent int
	Log           *slog.Logger
	// Now is the clock (nil: time.Now).
	Now func() time.Time
	// Version is xtrace's version, reported in buildinfo's revision.
	Version string
}

// API serves the Prometheus endpoints.
type API struct {
	o      Options
	engine *promql.Engine
	parser parser.Parser
	slots  *semaphore.Weighted
}

// New builds the engine with the settings Prometheus itself runs it with
// (@ modifier and negative offsets on, experimental functions off).
func New(o Options) *API {
	if o.Now == nil {
		o.Now = time.Now
	}
	p := parser.NewParser(parser.Options{})
	engine := promql.NewEngine(promql.EngineOpts{
		Logger:                   o.Log,
		MaxSamples:               o.MaxSamples,
		Timeout:                  o.Timeout,
		LookbackDelta:            o.LookbackDelta,
		NoStepSubqueryIntervalFn: func(int64) int64 { return NoStepSubqueryInterval.Milliseconds() },
		EnableAtModifier:         true,
		EnableNegativeOffset:     true,
		Parser:                   p,
	})
	return &API{o: o, engine: engine, parser: p, slots: semaphore.NewWeighted(int64(o.MaxConcurrent))}
}

func (a *API) queryable(r *http.Request) *promstorage.Queryable {
	return promstorage.New(a.o.Reader, a.o.Project(r), promstorage.Limits{MaxSamples: a.o.MaxSamples}, a.o.Now)
}

// response is Prometheus' success envelope.
type response struct {
	Status   string   `json:"status"`
	Data     any      `json:"data"`
	Warnings []string `json:"warnings,omitempty"`
	Infos    []string `json:"infos,omitempty"`
}

func writeSuccess(w http.ResponseWriter, data any, ws annotations.Annotations, query string) error {
	warnings, infos := ws.AsStrings(query, 10, 10)
	return writeJSON(w, response{Status: "success", Data: data, Warnings: warnings, Infos: infos})
}

// queryData is the data of query and query_range.
type queryData struct {
	ResultType parser.ValueType `json:"resultType"`
	Result     resultJSON       `json:"result"`
}

// Query: GET|POST /api/v1/query.
func (a *API) Query(w http.ResponseWriter, r *http.Request) error {
	return a.evaluate(w, r, func(ctx context.Context, q storage.Queryable, opts promql.QueryOpts, qs string) (promql.Query, error) {
		ts, err := timeParam(r, "time", a.o.Now())
		if err != nil {
			return nil, err
		}
		return a.engine.NewInstantQuery(ctx, q, opts, qs, ts)
	})
}

// QueryRange: GET|POST /api/v1/query_range.
func (a *API) QueryRange(w http.ResponseWriter, r *http.Request) error {
	return a.evaluate(w, r, func(ctx context.Context, q storage.Queryable, opts promql.QueryOpts, qs string) (promql.Query, error) {
		start, err := requiredTimeParam(r, "start")
		if err != nil {
			return nil, err
		}
		end, err := requiredTimeParam(r, "end")
		if err != nil {
			return nil, err
		}
		if end.Before(start) {
			return nil, invalidParam("end", errors.New("end timestamp must not be before start time"))
		}
		step, err := parseDuration(r.FormValue("step"))
		if err != nil {
			return nil, invalidParam("step", err)
		}
		if step <= 0 {
			return nil, invalidParam("step", errors.New("zero or negative query resolution step widths are not accepted. Try a positive integer"))
		}
		if end.Sub(start)/step > maxPointsPerSeries {
			return nil, badData("exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)")
		}
		return a.engine.NewRangeQuery(ctx, q, opts, qs, start, end, step)
	})
}

// buildQuery reads a query's own parameters and builds it; its errors are
// already error kinds, except the engine's, which constructionError words.
type buildQuery func(ctx context.Context, q storage.Queryable, opts promql.QueryOpts, qs string) (promql.Query, error)

// evaluate reads the parameters query and range queries share (limit,
// timeout, lookback_delta), builds the query and runs it.
func (a *API) evaluate(w http.ResponseWriter, r *http.Request, build buildQuery) error {
	if err := parseForm(r); err != nil {
		return err
	}
	limit, err := limitParam(r)
	if err != nil {
		return err
	}
	ctx, cancel, err := a.queryContext(r)
	if err != nil {
		return err
	}
	defer cancel()
	opts, err := queryOpts(r)
	if err != nil {
		return err
	}
	qs := r.FormValue("query")
	q, err := build(ctx, a.queryable(r), opts, qs)
	if err != nil {
		if errs.KindOf(err) != 0 {
			return err
		}
		return constructionError(err)
	}
	return a.run(ctx, w, q, qs, limit)
}

// queryContext applies the request's timeout parameter (never beyond the
// engine's own timeout, which the engine applies).
func (a *API) queryContext(r *http.Request) (context.Context, context.CancelFunc, error) {
	ctx := r.Context()
	v := r.FormValue("timeout")
	if v == "" {
		ctx, cancel := context.WithCancel(ctx)
		return ctx, cancel, nil
	}
	d, err := parseDuration(v)
	if err != nil {
		return nil, nil, invalidParam("timeout", err)
	}
	if d <= 0 {
		return nil, nil, invalidParam("timeout", errors.New("must be positive"))
	}
	ctx, cancel := context.WithTimeout(ctx, d)
	return ctx, cancel, nil
}

// run executes q in one of the MaxConcurrent slots (waiting for a free one
// within the query's time) and writes its result.
func (a *API) run(ctx context.Context, w http.ResponseWriter, q promql.Query, qs string, limit int) error {
	defer q.Close()
	if err := a.slots.Acquire(ctx, 1); err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return &errs.Error{Kind: errs.Unavailable, Msg: "query timed out waiting for one of the server's concurrent query slots", Err: err}
		}
		return err
	}
	res := q.Exec(ctx)
	a.slots.Release(1)
	if res.Err != nil {
		return engineError(res.Err)
	}
	ws := res.Warnings
	if limit > 0 {
		truncated := false
		switch v := res.Value.(type) {
		case promql.Matrix:
			if len(v) > limit {
				res.Value, truncated = v[:limit], true
			}
		case promql.Vector:
			if len(v) > limit {
				res.Value, truncated = v[:limit], true
			}
		}
		if truncated {
			ws = ws.Add(errors.New("results truncated due to limit"))
		}
	}
	return writeSuccess(w, queryData{ResultType: res.Value.Type(), Result: resultJSON{res.Value}}, ws, qs)
}

// Series: GET|POST /api/v1/series.
func (a *API) Series(w http.ResponseWriter, r *http.Request) error {
	if err := parseForm(r); err != nil {
		return err
	}
	if len(r.Form["match[]"]) == 0 {
		return badData("no match[] parameter provided")
	}
	limit, start, end, err := listingParams(r)
	if err != nil {
		return err
	}
	sets, err := a.matcherSets(r)
	if err != nil {
		return invalidParam("match[]", err)
	}
	q, _ := a.queryable(r).Querier(timestamp.FromTime(start), timestamp.FromTime(end))
	defer q.Close()
	hints := &storage.SelectHints{Start: timestamp.FromTime(start), End: timestamp.FromTime(end), Func: "series", Limit: hintLimit(limit)}
	var set storage.SeriesSet
	if len(sets) > 1 {
		all := make([]storage.SeriesSet, 0, len(sets))
		for _, ms := range sets {
			all = append(all, q.Select(r.Context(), true, hints, ms...))
		}
		set = storage.NewMergeSeriesSet(all, 0, storage.ChainedSeriesMerge)
	} else {
		set = q.Select(r.Context(), false, hints, sets[0]...)
	}
	out := []labels.Labels{}
	var ws annotations.Annotations
	for set.Next() {
		out = append(out, set.At().Labels())
		if limit > 0 && len(out) > limit {
			out = out[:limit]
			ws = ws.Add(errors.New("results truncated due to limit"))
			break
		}
	}
	if err := set.Err(); err != nil {
		return engineError(err)
	}
	ws.Merge(set.Warnings())
	return writeSuccess(w, out, ws, "")
}

// LabelNames: GET|POST /api/v1/labels.
func (a *API) LabelNames(w http.ResponseWriter, r *http.Request) error {
	return a.labelListing(w, r, "")
}

// LabelValues: GET /api/v1/label/{name}/values.
func (a *API) LabelValues(w http.ResponseWriter, r *http.Request) error {
	name, ok := labelNameParam(r.PathValue("name"))
	if !ok {
		return badData(fmt.Sprintf("invalid label name: %q", name))
	}
	return a.labelListing(w, r, name)
}

// labelListing answers labels (name == "") and label/{name}/values.
func (a *API) labelListing(w http.ResponseWriter, r *http.Request, name string) error {
	if err := parseForm(r); err != nil {
		return err
	}
	limit, start, end, err := listingParams(r)
	if err != nil {
		return err
	}
	sets, err := a.matcherSets(r)
	if err != nil {
		return badData(err.Error())
	}
	if len(sets) == 0 {
		sets = [][]*labels.Matcher{nil}
	}
	q, _ := a.queryable(r).Querier(timestamp.FromTime(start), timestamp.FromTime(end))
	defer q.Close()
	hints := &storage.LabelHints{Limit: hintLimit(limit)}
	seen := map[string]struct{}{}
	var ws annotations.Annotations
	for _, ms := range sets {
		var vals []string
		var callWs annotations.Annotations
		var err error
		if name == "" {
			vals, callWs, err = q.LabelNames(r.Context(), hints, ms...)
		} else {
			vals, callWs, err = q.LabelValues(r.Context(), name, hints, ms...)
		}
		if err != nil {
			return engineError(err)
		}
		ws.Merge(callWs)
		for _, v := range vals {
			seen[v] = struct{}{}
		}
	}
	out := make([]string, 0, len(seen))
	for v := range seen {
		out = append(out, v)
	}
	slices.Sort(out)
	if limit > 0 && len(out) > limit {
		out = out[:limit]
		ws = ws.Add(errors.New("results truncated due to limit"))
	}
	return writeSuccess(w, out, ws, "")
}

// matcherSets parses match[]; each set needs a matcher that does not match
// the empty string (as Prometheus requires), so no selector means "all".
func (a *API) matcherSets(r *http.Request) ([][]*labels.Matcher, error) {
	sets, err := a.parser.ParseMetricSelectors(r.Form["match[]"])
	if err != nil {
		return nil, err
	}
	for _, ms := range sets {
		if !slices.ContainsFunc(ms, func(m *labels.Matcher) bool { return !m.Matches("") }) {
			return nil, errors.New("match[] must contain at least one non-empty matcher")
		}
	}
	return sets, nil
}

// Metadata: GET /api/v1/metadata. xtrace keeps no metric metadata (type,
// help, unit): the answer is an empty object, which clients treat as
// "unknown".
func (a *API) Metadata(w http.ResponseWriter, r *http.Request) error {
	if err := parseForm(r); err != nil {
		return err
	}
	if _, err := limitParam(r); err != nil {
		return err
	}
	return writeSuccess(w, map[string]any{}, nil, "")
}

// QueryExemplars: GET|POST /api/v1/query_exemplars. xtrace stores no
// exemplars: the query is validated and the answer is an empty list.
func (a *API) QueryExemplars(w http.ResponseWriter, r *http.Request) error {
	if err := parseForm(r); err != nil {
		return err
	}
	start, err := timeParam(r, "start", minTime)
	if err != nil {
		return err
	}
	end, err := timeParam(r, "end", maxTime)
	if err != nil {
		return err
	}
	if end.Before(start) {
		return invalidParam("end", errors.New("end timestamp must not be before start timestamp"))
	}
	if _, err := a.parser.ParseExpr(r.FormValue("query")); err != nil {
		return invalidParam("query", err)
	}
	return writeSuccess(w, []any{}, nil, "")
}

// BuildInfo: GET /api/v1/status/buildinfo.
func (a *API) BuildInfo(w http.ResponseWriter, _ *http.Request) error {
	return writeSuccess(w, map[string]string{
		"version":   EngineVersion,
		"revision":  "xtrace-" + a.o.Version,
		"branch":    "",
		"buildUser": "",
		"buildDate": "",
		"goVersion": runtime.Version(),
	}, nil, "")
}

// NotFound answers paths under /api/v1 that xtrace does not serve.
func NotFound(_ http.ResponseWriter, r *http.Request) error {
	return errs.NotFoundf("%s is not part of the Prometheus API that xtrace serves (see the README)", clip(r.URL.Path))
}

func clip(s string) string {
	if len(s) > 200 {
		return s[:200] + "…"
	}
	return s
}

// engineError turns an error of the engine or the storage into an error
// kind: timeouts → Unavailable (Prometheus' 503 "timeout"), cancellation →
// context.Canceled, storage failures keep their kind, everything else is an
// execution error (422).
func engineError(err error) error {
	var timeout promql.ErrQueryTimeout
	var canceled promql.ErrQueryCanceled
	var tooMany promql.ErrTooManySamples
	var storageErr promql.ErrStorage
	switch {
	case errs.KindOf(err) != 0:
		return err
	case errors.As(err, &timeout), errors.Is(err, context.DeadlineExceeded):
		return &errs.Error{Kind: errs.Unavailable, Msg: err.Error(), Err: context.DeadlineExceeded}
	case errors.As(err, &canceled), errors.Is(err, context.Canceled):
		return fmt.Errorf("%w: %w", context.Canceled, err)
	case errors.As(err, &tooMany):
		return &errs.Error{Kind: errs.Unprocessable, Msg: err.Error()}
	case errors.As(err, &storageErr):
		return err // internal
	}
	return &errs.Error{Kind: errs.Unprocessable, Msg: err.Error()}
}

// constructionError: a query that cannot be built is a bad parameter.
func constructionError(err error) error {
	var timeout promql.ErrQueryTimeout
	var canceled promql.ErrQueryCanceled
	if errors.As(err, &timeout) || errors.As(err, &canceled) {
		return engineError(err)
	}
	return invalidParam("query", err)
}

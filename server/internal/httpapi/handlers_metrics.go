package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/xtrace-dev/xtrace-operator/server/internal/errs"
	"github.com/xtrace-dev/xtrace-operator/server/internal/metrics"
	"github.com/xtrace-dev/xtrace-operator/server/internal/store"
)

// pushMetrics: POST /v1/metrics/batch. Answers 200 only after the points are committed.
func (a *API) pushMetrics(w http.ResponseWriter, r *http.Request) error {
	body, err := a.readBody(r)
	if err != nil {
		return err
	}
	points, err := metrics.ParseBatch(body, a.pointWindow())
	if err != nil {
		return err
	}
	if err := a.submitPoints(r.Context(), points); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]int{"accepted": len(points)})
	return nil
}

type queryMeta struct {
	LatestTS    *time.Time `json:"latest_ts,omitempty"`
	SeriesCount int        `json:"series_count"`
	Truncated   bool       `json:"truncated"`
}

type queryResponse struct {
	Data []metrics.Series `json:"data"`
	Meta queryMeta        `json:"meta"`
}

// queryMetrics: GET /api/public/metrics/query (SPEC §3.5).
func (a *API) queryMetrics(w http.ResponseWriter, r *http.Request) error {
	in, err := metricsQuery(r.URL.Query())
	if err != nil {
		return err
	}
	q, err := metrics.NewQuery(in, a.now())
	if err != nil {
		return err
	}
	res, err := a.runMetricsQuery(r.Context(), q)
	if err != nil {
		return err
	}
	resp := queryResponse{Data: res.Series, Meta: queryMeta{SeriesCount: len(res.Series), Truncated: res.Truncated}}
	if resp.Data == nil {
		resp.Data = []metrics.Series{}
	}
	if len(res.Series) > 0 {
		latest := res.LatestTS
		resp.Meta.LatestTS = &latest
	}
	size := 256 // the answer's size, estimated: the buffer grows once at most
	for _, s := range res.Series {
		size += 256 + 64*len(s.Values)
	}
	buf := answerBuffers.Get().(*[]byte)
	body, err := resp.appendJSON(slices.Grow((*buf)[:0], size))
	if err == nil {
		writeJSONBytes(w, http.StatusOK, body) // the body is copied out before Write returns
	}
	if cap(body) <= maxPooledAnswer {
		*buf = body[:0]
		answerBuffers.Put(buf)
	}
	return err
}

// answerBuffers hold query answers while they are written, reused: a day's
// dashboard answer is about 150 KB, the largest allocation of its query.
var answerBuffers = sync.Pool{New: func() any { return new([]byte) }}

// maxPooledAnswer bounds the buffers kept: a rare huge answer is not held on to.
const maxPooledAnswer = 4 << 20

// appendJSON appends what writeJSON would write for r.
func (r queryResponse) appendJSON(b []byte) ([]byte, error) {
	b = append(b, `{"data":[`...)
	for i, s := range r.Data {
		if i > 0 {
			b = append(b, ',')
		}
		var err error
		if b, err = s.AppendJSON(b); err != nil {
			return b, err
		}
	}
	meta, err := json.Marshal(r.Meta) // times and numbers: nothing to escape
	if err != nil {
		return b, err
	}
	b = append(b, `],"meta":`...)
	return append(append(b, meta...), "}\n"...), nil
}

// FreshnessWindow is the router's freshness contract (SPEC §1): a series
// whose newest point is older than this is stale.
const FreshnessWindow = 15 * time.Second

// runMetricsQuery runs q where the store routes it. A read replica lags by up
// to XTRACE_READ_MAX_LAG, and must never make a live node look stale: when a
// replica answered a query whose window ends inside the freshness window and
// a series in it looks stale (or none came back), the primary, which may hold
// the newer points, answers instead. If the primary cannot, the replica's
// answer stands (it is the freshest available).
func (a *API) runMetricsQuery(ctx context.Context, q *metrics.Query) (*metrics.Result, error) {
	res, err := metrics.Run(ctx, a.store, a.cfg.DefaultProjectID, q)
	route := store.ReadRouteFrom(ctx)
	if err != nil || route == nil || !route.FromReplica() || !looksStale(q, res, a.now()) {
		return res, err
	}
	a.tel.FreshnessRechecks.Inc()
	route.RequirePrimary()
	fromPrimary, err := metrics.Run(ctx, a.store, a.cfg.DefaultProjectID, q)
	if err != nil {
		if errs.KindOf(err) == errs.Unavailable && ctx.Err() == nil {
			return res, nil
		}
		return nil, err
	}
	return fromPrimary, nil
}

// looksStale: q's window ends inside the freshness window and some series of
// res (or the absence of any) would read as stale to the router.
func looksStale(q *metrics.Query, res *metrics.Result, now time.Time) bool {
	horizon := now.Add(-FreshnessWindow)
	if q.To.Before(horizon) {
		return false
	}
	if len(res.Series) == 0 {
		return true
	}
	for _, s := range res.Series {
		if s.LatestTS.Before(horizon) {
			return true
		}
	}
	return false
}

// metricNames: GET /api/public/metrics/names.
func (a *API) metricNames(w http.ResponseWriter, r *http.Request) error {
	names, err := a.store.MetricNames(r.Context(), a.cfg.DefaultProjectID)
	if err != nil {
		return err
	}
	if names == nil {
		names = []string{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": names})
	return nil
}

// metricLabels: GET /api/public/metrics/labels?name=X.
func (a *API) metricLabels(w http.ResponseWriter, r *http.Request) error {
	name := r.URL.Query().Get("name")
	if err := metrics.CheckQueryName(name); err != nil {
		return err
	}
	labels, err := a.store.MetricLabels(r.Context(), a.cfg.DefaultProjectID, name)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": labels})
	return nil
}

// pointWindow is the window of point times a push may carry now.
func (a *API) pointWindow() metrics.Window {
	return metrics.Window{Now: a.now(), RetentionDays: a.cfg.MetricsRetentionDays}
}

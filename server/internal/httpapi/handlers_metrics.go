package httpapi

import (
	"net/http"
	"time"

	"github.com/xtrace-dev/xtrace-operator/server/internal/metrics"
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
	res, err := metrics.Run(r.Context(), a.store, a.cfg.DefaultProjectID, q)
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
	writeJSON(w, http.StatusOK, resp)
	return nil
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

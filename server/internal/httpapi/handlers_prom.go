package httpapi

import (
	"context"
	"net/http"
	"strconv"

	"github.com/xtrace-dev/xtrace-operator/server/internal/errs"
	"github.com/xtrace-dev/xtrace-operator/server/internal/metrics"
	"github.com/xtrace-dev/xtrace-operator/server/internal/otlpmetrics"
	"github.com/xtrace-dev/xtrace-operator/server/internal/remotewrite"
)

// remoteWrite: POST /api/v1/write (Prometheus remote-write 1.0 and 2.0,
// protobuf + snappy). 204 after commit; 400 for what the sender must drop,
// 429/503 for what it must retry.
func (a *API) remoteWrite(w http.ResponseWriter, r *http.Request) error {
	version, err := remotewrite.VersionOf(r.Header.Get("Content-Type"))
	if err != nil {
		return err
	}
	encoding := r.Header.Get("Content-Encoding")
	if encoding == "" {
		encoding = "snappy" // the protocol's bodies are always snappy-compressed
	}
	body, err := a.readEncodedBody(r, encoding)
	if err != nil {
		return err
	}
	req, err := remotewrite.Decode(body, version, a.pointWindow())
	if err != nil {
		return err
	}
	if err := a.submitPoints(r.Context(), req.Points); err != nil {
		return err
	}
	if version == remotewrite.V2 {
		w.Header().Set("X-Prometheus-Remote-Write-Samples-Written", strconv.Itoa(len(req.Points)))
		w.Header().Set("X-Prometheus-Remote-Write-Histograms-Written", "0")
		w.Header().Set("X-Prometheus-Remote-Write-Exemplars-Written", "0")
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// otlpMetrics: POST /v1/metrics and /api/public/otel/v1/metrics (OTLP/HTTP,
// protobuf or JSON, optionally gzip), translated by Prometheus' rules. The
// answer comes after commit; samples that cannot be stored are reported in
// partialSuccess, and a request with none that can is a 400.
func (a *API) otlpMetrics(w http.ResponseWriter, r *http.Request) error {
	protobuf, err := otlpProtobuf(r)
	if err != nil {
		return err
	}
	body, err := a.readBody(r)
	if err != nil {
		return err
	}
	md, err := otlpmetrics.Decode(body, protobuf)
	if err != nil {
		return err
	}
	res, err := otlpmetrics.Translate(r.Context(), md, a.pointWindow(), a.cfg.PromQL.LookbackDelta)
	if err != nil {
		return err
	}
	if len(res.Points) == 0 && res.Rejected > 0 {
		return errs.InvalidField("resourceMetrics", "no data point can be stored: %s", res.Problem)
	}
	if err := a.submitPoints(r.Context(), res.Points); err != nil {
		return err
	}
	writeExportResponse(w, protobuf, "rejectedDataPoints", res.Rejected, res.Problem)
	return nil
}

// submitPoints refuses a request that would create more than
// XTRACE_MAX_SERIES_PER_REQUEST new series, makes the partitions its points
// need, then commits its points through the ingest queue and returns after
// the commit.
func (a *API) submitPoints(ctx context.Context, points []metrics.Point) error {
	if len(points) == 0 {
		return nil
	}
	limit := a.cfg.MaxSeriesPerRequest
	n, err := a.store.CountNewSeries(ctx, a.cfg.DefaultProjectID, points, limit)
	if err != nil {
		return err
	}
	if n > limit {
		return errs.InvalidField("series", "the request would create more than %d new series (XTRACE_MAX_SERIES_PER_REQUEST); send new series in smaller requests", limit)
	}
	if err := a.store.PreparePartitions(ctx, points); err != nil {
		return err
	}
	if err := a.points.Submit(ctx, points, len(points)); err != nil {
		return err
	}
	a.tel.PointsWritten.Add(float64(len(points)))
	return nil
}

package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/prometheus/prometheus/prompb"

	"github.com/xtrace-dev/xtrace-operator/server/internal/remotewrite"
)

// remoteWriteIngest loads the same fleet profile as Prometheus would send it
// (remote-write 1.0, snappy protobuf, o.batch samples per request, o.clients
// writers) into a second server on a database of its own, so the figure is
// comparable with the native push and with raw COPY of the same run.
func (b *bench) remoteWriteIngest(ctx context.Context) error {
	server, base, err := b.startXtrace(b.cluster.URL(rwDB))
	if err != nil {
		return err
	}
	defer stopServer(server)

	// Bodies are encoded before the clock starts, as in the native ingest.
	var bodies [][]byte
	var req prompb.WriteRequest
	n := 0
	model := newValueModel(b.fleet)
	emit := func() error {
		body, err := remotewrite.Encode(&req)
		if err != nil {
			return err
		}
		bodies = append(bodies, body)
		req.Timeseries, n = req.Timeseries[:0], 0
		return nil
	}
	for step := 0; step < b.o.steps; step++ {
		ms := b.start.Add(time.Duration(step) * b.o.interval).UnixMilli()
		for si, s := range b.fleet {
			ts := prompb.TimeSeries{Labels: []prompb.Label{{Name: "__name__", Value: s.name}},
				Samples: []prompb.Sample{{Timestamp: ms, Value: model.value(si)}}}
			for k, v := range s.labels {
				ts.Labels = append(ts.Labels, prompb.Label{Name: k, Value: v})
			}
			req.Timeseries = append(req.Timeseries, ts)
			if n++; n == b.o.batch {
				if err := emit(); err != nil {
					return err
				}
			}
		}
	}
	if n > 0 {
		if err := emit(); err != nil {
			return err
		}
	}

	p, err := postAll(base+"/api/v1/write", bodies, b.o.clients, http.StatusNoContent, "Authorization", "Bearer "+benchToken,
		"Content-Type", remotewrite.ContentTypeV1, "Content-Encoding", "snappy", "X-Prometheus-Remote-Write-Version", "0.1.0")
	if err != nil {
		return err
	}
	if _, err := storedPoints(ctx, b.cluster.URL(rwDB), b.points()); err != nil {
		return err
	}
	rate := float64(b.points()) / p.took.Seconds()
	fmt.Printf("remote-write: %d samples in %s (%d writers, %d samples per request, %d retries after 429)\n",
		b.points(), p.took.Round(time.Millisecond), b.o.clients, b.o.batch, p.retries)
	b.result["remote_write_samples_per_s"] = round(rate, 0)
	b.result["remote_write_ratio"] = round(rate/b.result["copy_points_per_s"], 3)
	return nil
}

// promqlQueries measures the query mix of SPEC §7.1 expressed in PromQL
// through the Prometheus API: the router's latest pending_requests of one
// model's replicas, the dashboard's per-node average over an hour at 1 m, and
// the fleet's per-node average of 1 m averages over the whole loaded range at
// a step that gives at most 1000 points.
func (b *bench) promqlQueries(_ context.Context) error {
	for _, q := range b.promqlMix() {
		ms, runs, err := measure(b.base, benchToken, q.path, b.o.reps)
		if err != nil {
			return fmt.Errorf("PromQL %s query: %w", q.name, err)
		}
		recordLatency(b.result, "promql_"+q.name, ms, runs)
	}
	return nil
}

// promqlMix is the query mix of SPEC §7.1 in PromQL, as paths of the Prometheus API.
func (b *bench) promqlMix() []struct{ name, path string } {
	unix := func(t time.Time) string { return strconv.FormatInt(t.Unix(), 10) }
	whole := b.end.Sub(b.start)
	fleetStep := max(time.Second, ((whole / 999) + time.Second - 1).Truncate(time.Second))
	return []struct{ name, path string }{
		{"router", "/api/v1/query?" + url.Values{"query": {`pending_requests{model_uid="model-7"}`}, "time": {unix(b.end)}}.Encode()},
		{"dashboard", "/api/v1/query_range?" + url.Values{"query": {"avg by (node_id) (gpu_utilization)"},
			"start": {unix(b.end.Add(-time.Hour))}, "end": {unix(b.end)}, "step": {"60"}}.Encode()},
		{"fleet", "/api/v1/query_range?" + url.Values{"query": {"avg by (node_id) (avg_over_time(gpu_utilization[1m]))"},
			"start": {unix(b.start)}, "end": {unix(b.end)}, "step": {strconv.Itoa(int(fleetStep.Seconds()))}}.Encode()},
	}
}

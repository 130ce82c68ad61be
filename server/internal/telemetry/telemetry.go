// Package telemetry holds the server's own Prometheus metrics (GET /metrics).
package telemetry

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics are the server's instruments, registered on their own registry so
// that tests can create as many servers as they like.
type Metrics struct {
	Registry *prometheus.Registry

	Requests          *prometheus.CounterVec
	RequestDuration   *prometheus.HistogramVec
	RateLimited       *prometheus.CounterVec
	QueueDepthGauge   *prometheus.GaugeVec
	CommitDuration    *prometheus.HistogramVec
	CommitGroupSize   *prometheus.HistogramVec
	CommitErrors      *prometheus.CounterVec
	PointsWritten     prometheus.Counter
	TracesWritten     prometheus.Counter
	ObservationsWrote prometheus.Counter
	RetentionDeleted  *prometheus.CounterVec
	PartitionsDropped prometheus.Counter
	RetentionLastRun  prometheus.Gauge

	CompactedPoints    prometheus.Counter
	CompactedChunks    prometheus.Counter
	CompactionDuration prometheus.Histogram
	CompactionLastRun  prometheus.Gauge
	// ReadRequests counts requests that read from the database, by route and
	// the pool that answered their reads (primary or a replica).
	ReadRequests *prometheus.CounterVec
	// FreshnessRechecks counts metric queries a replica answered with a series
	// looking stale inside the router's freshness window, asked again of the primary.
	FreshnessRechecks prometheus.Counter
}

// New creates and registers the instruments.
func New() *Metrics {
	r := prometheus.NewRegistry()
	m := &Metrics{
		Registry: r,
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "xtrace_http_requests_total", Help: "HTTP requests by route pattern and status code.",
		}, []string{"route", "code"}),
		RequestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "xtrace_http_request_duration_seconds", Help: "HTTP request latency by route pattern.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route"}),
		RateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "xtrace_rate_limited_requests_total", Help: "Requests answered 429 by the per-key rate limiter.",
		}, []string{"route"}),
		QueueDepthGauge: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "xtrace_ingest_queue_items", Help: "Items waiting in the ingest queue or being committed.",
		}, []string{"queue"}),
		CommitDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "xtrace_ingest_commit_duration_seconds", Help: "Latency of one group-commit transaction.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"queue"}),
		CommitGroupSize: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "xtrace_ingest_commit_items", Help: "Items committed per transaction.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 9),
		}, []string{"queue"}),
		CommitErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "xtrace_ingest_commit_errors_total", Help: "Failed group-commit transactions.",
		}, []string{"queue"}),
		PointsWritten: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "xtrace_metric_points_written_total", Help: "Metric points committed.",
		}),
		TracesWritten: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "xtrace_traces_written_total", Help: "Trace upserts committed.",
		}),
		ObservationsWrote: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "xtrace_observations_written_total", Help: "Observation upserts committed.",
		}),
		RetentionDeleted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "xtrace_retention_deleted_rows_total", Help: "Rows deleted by retention, by table.",
		}, []string{"table"}),
		PartitionsDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "xtrace_retention_dropped_partitions_total", Help: "Daily metric partitions dropped by retention.",
		}),
		RetentionLastRun: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "xtrace_retention_last_success_timestamp_seconds", Help: "Unix time of the last successful retention pass.",
		}),
		ReadRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "xtrace_http_read_requests_total", Help: "Requests that read from the database, by route and the pool that answered (primary or replica:<host>:<port>).",
		}, []string{"route", "pool"}),
		FreshnessRechecks: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "xtrace_read_freshness_rechecks_total", Help: "Metric queries a replica answered with a series looking stale inside the 15 s freshness window, asked again of the primary.",
		}),
	}
	m.CompactedPoints = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "xtrace_compaction_points_total", Help: "Raw metric points compacted into chunks.",
	})
	m.CompactedChunks = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "xtrace_compaction_chunks_total", Help: "Chunk rows written by compaction (one per series and window).",
	})
	m.CompactionDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "xtrace_compaction_pass_duration_seconds", Help: "Duration of compaction passes that ran.",
		Buckets: prometheus.ExponentialBuckets(0.01, 4, 8),
	})
	m.CompactionLastRun = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "xtrace_compaction_last_success_timestamp_seconds", Help: "Unix time of the last successful compaction pass on this replica.",
	})
	for _, table := range []string{"metric_points", "metric_series", "traces", "observations", "scores"} {
		m.RetentionDeleted.WithLabelValues(table) // exposed as 0 before the first pass
	}
	r.MustRegister(m.Requests, m.RequestDuration, m.RateLimited, m.QueueDepthGauge, m.CommitDuration,
		m.CommitGroupSize, m.CommitErrors, m.PointsWritten, m.TracesWritten, m.ObservationsWrote,
		m.RetentionDeleted, m.PartitionsDropped, m.RetentionLastRun, m.ReadRequests, m.FreshnessRechecks,
		m.CompactedPoints, m.CompactedChunks, m.CompactionDuration, m.CompactionLastRun,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// QueueDepth implements ingest.Observer.
func (m *Metrics) QueueDepth(name string, items int) {
	m.QueueDepthGauge.WithLabelValues(name).Set(float64(items))
}

// Committed implements ingest.Observer.
func (m *Metrics) Committed(name string, _ int, items int, took time.Duration, err error) {
	if err != nil {
		m.CommitErrors.WithLabelValues(name).Inc()
		return
	}
	m.CommitDuration.WithLabelValues(name).Observe(took.Seconds())
	m.CommitGroupSize.WithLabelValues(name).Observe(float64(items))
}

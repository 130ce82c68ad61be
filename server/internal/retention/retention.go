// Package retention removes data older than the configured retention: whole
// daily metric partitions, the partial edge day, unused series, and expired
// traces with their observations and scores. One pass runs at a time across
// all replicas and CronJobs (a PostgreSQL advisory lock).
package retention

import (
	"context"
	"log/slog"
	"time"

	"github.com/xtrace-dev/xtrace-operator/server/internal/store"
	"github.com/xtrace-dev/xtrace-operator/server/internal/telemetry"
)

// DefaultBudget bounds the trace deletion of one pass; the next pass continues.
const DefaultBudget = 10 * time.Minute

// Pruner runs retention passes.
type Pruner struct {
	Store        *store.Store
	Log          *slog.Logger
	Telemetry    *telemetry.Metrics // optional
	MetricsDays  int
	TracesDays   int
	Budget       time.Duration    // zero: DefaultBudget
	Now          func() time.Time // zero: time.Now
	FirstPassDue time.Duration    // Loop: delay of the first pass after start
}

// Result is what one pass did.
type Result struct {
	Skipped           bool // another pass held the lock
	DroppedPartitions []string
	DeletedPoints     int64
	DeletedSeries     int64
	Traces            store.TracesPruneResult
	Duration          time.Duration
}

// RunOnce runs one pass unless another one is running.
func (p *Pruner) RunOnce(ctx context.Context) (Result, error) {
	now := time.Now
	if p.Now != nil {
		now = p.Now
	}
	budget := p.Budget
	if budget == 0 {
		budget = DefaultBudget
	}
	start := time.Now()
	var res Result
	ran, err := p.Store.RunExclusive(ctx, store.JobRetention, func(ctx context.Context) error {
		return p.pass(ctx, now().UTC(), budget, start, &res)
	})
	if err == nil && !ran {
		res.Skipped = true
		p.Log.Info("retention pass skipped: another pass is running")
	}
	return res, err
}

// pass prunes metrics, then traces, and logs what it did.
func (p *Pruner) pass(ctx context.Context, t time.Time, budget time.Duration, start time.Time, res *Result) error {
	metricsCutoff := t.AddDate(0, 0, -p.MetricsDays)
	tracesCutoff := t.AddDate(0, 0, -p.TracesDays)
	m, err := p.Store.PruneMetrics(ctx, metricsCutoff)
	res.DroppedPartitions, res.DeletedPoints, res.DeletedSeries = m.DroppedPartitions, m.DeletedPoints, m.DeletedSeries
	if err == nil {
		res.Traces, err = p.Store.PruneTraces(ctx, tracesCutoff, budget)
	}
	res.Duration = time.Since(start)
	p.observe(*res, err == nil)
	attrs := []any{"dropped_partitions", len(res.DroppedPartitions), "partitions", res.DroppedPartitions,
		"deleted_points", res.DeletedPoints, "deleted_series", res.DeletedSeries, "deleted_traces", res.Traces.Traces,
		"deleted_observations", res.Traces.Observations, "deleted_scores", res.Traces.Scores, "complete", res.Traces.Complete,
		"metrics_cutoff", metricsCutoff.Format(time.RFC3339), "traces_cutoff", tracesCutoff.Format(time.RFC3339),
		"duration_ms", res.Duration.Milliseconds()}
	if err != nil {
		p.Log.Error("retention pass failed", append(attrs, "error", err)...)
		return err
	}
	p.Log.Info("retention pass", attrs...)
	return nil
}

func (p *Pruner) observe(r Result, ok bool) {
	tel := p.Telemetry
	if tel == nil {
		return
	}
	tel.PartitionsDropped.Add(float64(len(r.DroppedPartitions)))
	tel.RetentionDeleted.WithLabelValues("metric_points").Add(float64(r.DeletedPoints))
	tel.RetentionDeleted.WithLabelValues("metric_series").Add(float64(r.DeletedSeries))
	tel.RetentionDeleted.WithLabelValues("traces").Add(float64(r.Traces.Traces))
	tel.RetentionDeleted.WithLabelValues("observations").Add(float64(r.Traces.Observations))
	tel.RetentionDeleted.WithLabelValues("scores").Add(float64(r.Traces.Scores))
	if ok {
		tel.RetentionLastRun.SetToCurrentTime()
	}
}

// Loop runs a pass shortly after start and then every interval until ctx
// ends. Failures are logged and retried at the next interval.
func (p *Pruner) Loop(ctx context.Context, interval time.Duration) {
	wait := p.FirstPassDue
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		_, _ = p.RunOnce(ctx) // logged inside
		wait = interval
	}
}

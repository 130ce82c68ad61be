// Package compaction runs the background compactor: closed windows of raw
// metric points become compressed chunks with rollups (see store.Compact).
// One pass runs at a time across all replicas (an advisory lock); the others
// skip their turn.
package compaction

import (
	"context"
	"log/slog"
	"time"

	"github.com/xtrace-dev/xtrace-operator/server/internal/store"
	"github.com/xtrace-dev/xtrace-operator/server/internal/telemetry"
)

// DefaultBudget bounds one pass; the next pass continues where it stopped.
const DefaultBudget = 5 * time.Minute

// Compactor runs compaction passes.
type Compactor struct {
	Store     *store.Store
	Log       *slog.Logger
	Telemetry *telemetry.Metrics // optional
	Budget    time.Duration      // zero: DefaultBudget
	Now       func() time.Time   // zero: time.Now
}

// Result is what one pass did.
type Result struct {
	store.CompactionResult
	Skipped  bool // another replica held the lock
	Duration time.Duration
}

// RunOnce runs one pass unless another replica is running one.
func (c *Compactor) RunOnce(ctx context.Context) (Result, error) {
	now, budget := time.Now, c.Budget
	if c.Now != nil {
		now = c.Now
	}
	if budget == 0 {
		budget = DefaultBudget
	}
	start := time.Now()
	var res Result
	ran, err := c.Store.RunExclusive(ctx, store.JobCompaction, func(ctx context.Context) error {
		var err error
		res.CompactionResult, err = c.Store.Compact(ctx, now(), budget)
		return err
	})
	res.Skipped, res.Duration = !ran, time.Since(start)
	c.observe(res, err)
	return res, err
}

func (c *Compactor) observe(r Result, err error) {
	attrs := []any{"points", r.Points, "chunks", r.Chunks, "merged", r.Merged, "dropped_partitions", r.DroppedPartitions,
		"complete", r.Complete, "duration_ms", r.Duration.Milliseconds()}
	switch {
	case err != nil:
		c.Log.Error("compaction pass failed", append(attrs, "error", err)...)
	case r.Skipped:
		c.Log.Debug("compaction pass skipped: another replica is compacting")
	case r.Points > 0:
		c.Log.Info("compaction pass", attrs...)
	}
	if tel := c.Telemetry; tel != nil && err == nil && !r.Skipped {
		tel.CompactedPoints.Add(float64(r.Points))
		tel.CompactedChunks.Add(float64(r.Chunks))
		tel.CompactionDuration.Observe(r.Duration.Seconds())
		tel.CompactionLastRun.SetToCurrentTime()
	}
}

// Loop runs a pass every interval until ctx ends; failures are logged and
// retried at the next interval.
func (c *Compactor) Loop(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		_, _ = c.RunOnce(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

package store

import (
	"context"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// flushGauge follows how much of a trace group's commit is the flush to
// disk, for /metrics: near 1, a slow disk is the limit of trace ingest.
//
// A group's answers all arrive at once (PostgreSQL sends them at the
// pipeline's end), so the flush cannot be read off a group. Every
// probeEvery groups the writer times a transaction that does nothing but
// commit (an xid, a commit record, its flush): the flush and a round trip.
type flushGauge struct {
	mu             sync.Mutex
	probe, commit  float64 // moving averages, seconds
	groups, probes int
}

const (
	// probeEvery is how many groups commit between two probes.
	probeEvery = 32
	// flushWeight is the weight of each new measurement in the moving averages.
	flushWeight = 0.1
)

// observe records one committed group and says whether a probe is due.
func (g *flushGauge) observe(commit time.Duration) (probe bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.commit = average(g.commit, commit.Seconds(), g.groups)
	g.groups++
	return g.groups%probeEvery == 1
}

// observeProbe records one probe's time.
func (g *flushGauge) observeProbe(took time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.probe = average(g.probe, took.Seconds(), g.probes)
	g.probes++
}

func average(avg, x float64, n int) float64 {
	if n == 0 {
		return x
	}
	return avg + flushWeight*(x-avg)
}

// share is the probe's share of a group's commit (0 before the first probe).
func (g *flushGauge) share() float64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.commit <= 0 {
		return 0
	}
	return g.probe / g.commit
}

// observeTraceCommit records a group's commit of rows entities: for the
// overlap trials and, when one is due, to probe the flush on the same
// connection (a transaction that only commits: txid_current gives it an
// xid, so its commit writes a record and waits for the flush). A failed
// probe is left out.
func (s *Store) observeTraceCommit(ctx context.Context, conn *pgxpool.Conn, took time.Duration, rows int) {
	if v := s.traceOverlap.observe(time.Now(), rows); v != nil {
		way := "one group at a time"
		if v.overlap {
			way = "two groups at a time"
		}
		s.log.InfoContext(ctx, "trace writer now commits "+way+": it committed more rows per second that way in a trial",
			"trial_rows_per_s", int(v.trial), "other_rows_per_s", int(v.around))
	}
	if !s.traceFlush.observe(took) {
		return
	}
	began := time.Now()
	if _, err := conn.Exec(ctx, "SELECT txid_current()"); err == nil {
		s.traceFlush.observeProbe(time.Since(began))
	}
}

// TraceCommitsMayOverlap says whether a second trace group may commit while
// one is committing (see overlapTrials).
func (s *Store) TraceCommitsMayOverlap() bool { return s.traceOverlap.overlap.Load() }

// TraceFlushShare is the share of a trace group's commit that a commit of
// nothing takes: near 1 when the flush to disk is the limit.
func (s *Store) TraceFlushShare() float64 { return s.traceFlush.share() }

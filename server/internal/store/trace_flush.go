package store

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// flushGauge follows how much of a trace group's commit is the flush to
// disk, and says from it whether two groups should commit at once.
//
// Two groups in flight keep the cores busy (one group is parsed while the
// other is written): 5-20% more traces per second when the cores are the
// limit. But PostgreSQL flushes one commit after another, so when the flush
// is most of a commit, two smaller groups pay two flushes where one larger
// group paid one: 20-40% fewer traces per second on a slow disk.
//
// A group's answers all arrive at once (PostgreSQL sends them at the
// pipeline's end), so the flush cannot be read off a group. Every
// probeEvery groups the writer times a transaction that does nothing but
// commit (an xid, a commit record, its flush): the flush and a round trip.
// Its share of a group's commit says which bound holds. The gauge starts
// with one group at a time, allows two once the share is under overlapOn,
// and goes back above overlapOff (two groups' flushes queue behind each
// other and commits get shorter, so the share moves when they overlap: the
// gap keeps it from flapping).
type flushGauge struct {
	mu             sync.Mutex
	probe, commit  float64 // moving averages, seconds
	groups, probes int
	overlap        atomic.Bool
}

const (
	overlapOn  = 0.25
	overlapOff = 0.5
	// probeEvery is how many groups commit between two probes.
	probeEvery = 32
	// flushWeight is the weight of each new measurement in the moving averages.
	flushWeight = 0.1
	// flushWarmup groups are measured before the first decision.
	flushWarmup = 2 * probeEvery
)

// observe records one committed group and says whether a probe is due.
func (g *flushGauge) observe(commit time.Duration) (probe bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.commit = average(g.commit, commit.Seconds(), g.groups)
	g.groups++
	return g.groups%probeEvery == 1
}

// observeProbe records one probe's time and decides.
func (g *flushGauge) observeProbe(took time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.probe = average(g.probe, took.Seconds(), g.probes)
	g.probes++
	if g.groups < flushWarmup || g.commit <= 0 {
		return
	}
	share := g.probe / g.commit
	switch {
	case !g.overlap.Load() && share < overlapOn:
		g.overlap.Store(true)
	case g.overlap.Load() && share > overlapOff:
		g.overlap.Store(false)
	}
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

// observeTraceCommit records a group's commit and, when one is due, probes
// the flush on the same connection: a transaction that only commits
// (txid_current gives it an xid, so its commit writes a record and waits
// for the flush). A failed probe is left out.
func (s *Store) observeTraceCommit(ctx context.Context, conn *pgxpool.Conn, took time.Duration) {
	if !s.traceFlush.observe(took) {
		return
	}
	began := time.Now()
	if _, err := conn.Exec(ctx, "SELECT txid_current()"); err == nil {
		s.traceFlush.observeProbe(time.Since(began))
	}
}

// TraceCommitsMayOverlap says whether a second trace group may commit while
// one is committing (see flushGauge).
func (s *Store) TraceCommitsMayOverlap() bool { return s.traceFlush.overlap.Load() }

// TraceFlushShare is the share of a trace group's commit that a commit of
// nothing takes: near 1 when the flush to disk is the limit.
func (s *Store) TraceFlushShare() float64 { return s.traceFlush.share() }

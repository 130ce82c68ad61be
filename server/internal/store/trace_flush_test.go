package store

import (
	"testing"
	"time"
)

// TestFlushGaugeAllowsOverlapOnlyWhileTheFlushIsSmall: one group at a time
// until flushWarmup groups were measured, two once a commit of nothing is a
// small share of a group's commit, one again when it grows past overlapOff,
// and no flapping in between.
func TestFlushGaugeAllowsOverlapOnlyWhileTheFlushIsSmall(t *testing.T) {
	var g flushGauge
	const commit = 10 * time.Millisecond
	groups := func(probeShare float64, n int) {
		for i := 0; i < n; i++ {
			if g.observe(commit) {
				g.observeProbe(time.Duration(probeShare * float64(commit)))
			}
		}
	}
	groups(0.1, flushWarmup-1)
	if g.overlap.Load() {
		t.Fatal("overlap allowed before the warm-up")
	}
	groups(0.1, probeEvery+1)
	if !g.overlap.Load() {
		t.Fatalf("probe share %.2f: overlap not allowed", g.share())
	}
	between := (overlapOn + overlapOff) / 2
	groups(between, 50*probeEvery)
	if !g.overlap.Load() {
		t.Fatalf("probe share %.2f, between the thresholds: overlap withdrawn", g.share())
	}
	groups(0.9, 50*probeEvery)
	if g.overlap.Load() {
		t.Fatalf("probe share %.2f: overlap still allowed", g.share())
	}
	groups(between, 50*probeEvery)
	if g.overlap.Load() {
		t.Fatalf("probe share %.2f, between the thresholds: overlap allowed again", g.share())
	}
}

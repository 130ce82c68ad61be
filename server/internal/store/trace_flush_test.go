package store

import (
	"math"
	"testing"
	"time"
)

// TestFlushGaugeSharesAMovingAverage: the probe's share of a group's commit
// follows both moving averages, and a probe is due every probeEvery groups.
func TestFlushGaugeSharesAMovingAverage(t *testing.T) {
	var g flushGauge
	if g.share() != 0 {
		t.Fatalf("share before any commit = %v, want 0", g.share())
	}
	probes := 0
	for i := 0; i < 10*probeEvery; i++ {
		if g.observe(10 * time.Millisecond) {
			probes++
			g.observeProbe(2 * time.Millisecond)
		}
	}
	if probes != 10 {
		t.Fatalf("%d probes in %d groups, want 10", probes, 10*probeEvery)
	}
	if got := g.share(); math.Abs(got-0.2) > 1e-9 {
		t.Fatalf("share = %v, want 0.2", got)
	}
}

package store

import (
	"sync"
	"sync/atomic"
	"time"
)

// overlapTrials decides whether two trace groups may commit at once, by
// trying both ways and keeping the one that commits more.
//
// Two groups in flight can keep more cores busy (one is written while the
// other is flushed, or parsed), but each is smaller and pays its own flush,
// and where the cores are busy already the two only take turns on them.
// Which way commits more depends on the cores, the disk and the load, and a
// proxy for it misled: it allowed two at a time whenever a commit of nothing
// took under a quarter of a group's commit, and on a 2-core host whose cores
// PostgreSQL shares with the server that committed a fifth fewer rows per
// second than one at a time.
//
// So the writer measures rows committed per second. It starts one group at
// a time; every trialEvery of traffic it switches for one trialWindow and
// then back for one more. The other way is kept when its window committed
// more than trialMargin above the mean of the windows before and after it
// (which cancels a load that rises or falls steadily). A window with fewer
// than trialRows rows, or cut by a pause in the traffic, decides nothing:
// at such a load either way keeps up.
type overlapTrials struct {
	overlap atomic.Bool // what the writer does now

	mu      sync.Mutex
	mode    bool // the way kept, which overlap returns to after a trial
	phase   trialPhase
	start   time.Time     // of the current window; zero before the first commit
	rows    int           // committed in the current window
	before  float64       // rows per second in the window before the trial; 0 if inconclusive
	trial   float64       // rows per second in the trial window; 0 if inconclusive
	traffic time.Duration // in conclusive windows since the last trial
}

type trialPhase int

const (
	steady    trialPhase = iota // the kept way
	trying                      // the other way, for one window
	returning                   // the kept way again, for one window
)

const (
	trialWindow = 500 * time.Millisecond
	trialEvery  = 15 * time.Second
	trialMargin = 0.1
	trialRows   = 500
)

// trialVerdict is the end of a trial that changed the way kept: overlap is
// the new way, with the rows per second of the trial and of the windows
// around it.
type trialVerdict struct {
	overlap       bool
	trial, around float64
}

// observe records rows committed by a group that ended at now, and returns
// the verdict of a trial that this ended and that changed the way kept.
func (o *overlapTrials) observe(now time.Time, rows int) *trialVerdict {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.start.IsZero() {
		o.start = now
	}
	o.rows += rows
	elapsed := now.Sub(o.start)
	if elapsed < trialWindow {
		return nil
	}
	rate := 0.0
	if o.rows >= trialRows && elapsed < 2*trialWindow {
		rate = float64(o.rows) / elapsed.Seconds()
	}
	o.start, o.rows = now, 0
	switch o.phase {
	case steady:
		o.before = rate
		if rate == 0 {
			break
		}
		if o.traffic += elapsed; o.traffic >= trialEvery {
			o.phase = trying
			o.overlap.Store(!o.mode)
		}
	case trying:
		o.trial = rate
		o.phase = returning
		o.overlap.Store(o.mode)
	case returning:
		o.phase, o.traffic = steady, 0
		around := (o.before + rate) / 2
		if o.before > 0 && o.trial > 0 && rate > 0 && o.trial > (1+trialMargin)*around {
			o.mode = !o.mode
			o.overlap.Store(o.mode)
			return &trialVerdict{overlap: o.mode, trial: o.trial, around: around}
		}
	}
	return nil
}

package store

import (
	"math"
	"testing"
	"time"
)

// commitLoad drives overlapTrials like a trace writer: a group ends every
// millisecond with the rows that rowsPerSecond gives for the way it
// commits then (0: no traffic). It returns the time reached and how long
// two groups at a time were allowed, and fails t when observe's report of
// a switch disagrees with what the writer does next.
func commitLoad(t *testing.T, o *overlapTrials, from time.Time, d time.Duration, rowsPerSecond func(at time.Time, overlap bool) float64) (time.Time, time.Duration) {
	t.Helper()
	const step = time.Millisecond
	var owed float64
	var overlapped time.Duration
	now := from
	for ; now.Before(from.Add(d)); now = now.Add(step) {
		overlap := o.overlap.Load()
		if overlap {
			overlapped += step
		}
		rate := rowsPerSecond(now, overlap)
		if rate == 0 {
			continue
		}
		owed += rate * step.Seconds()
		rows := int(owed)
		owed -= float64(rows)
		kept := o.mode
		v := o.observe(now, rows)
		if (v != nil) != (o.mode != kept) || (v != nil && (v.overlap != o.mode || v.trial <= v.around)) {
			t.Fatalf("at %v: observe returned %+v, but the way kept went from %v to %v", now, v, kept, o.mode)
		}
	}
	return now, overlapped
}

// rates is a load whose rows per second depend only on the way of committing.
func rates(oneAtATime, twoAtATime float64) func(time.Time, bool) float64 {
	return func(_ time.Time, overlap bool) float64 {
		if overlap {
			return twoAtATime
		}
		return oneAtATime
	}
}

func TestOverlapTrialsKeepTwoAtATimeWhenItCommitsMore(t *testing.T) {
	var o overlapTrials
	now, overlapped := commitLoad(t, &o, time.Unix(0, 0), trialEvery-time.Second, rates(12000, 16000))
	if overlapped != 0 {
		t.Fatalf("two at a time for %v before the first trial", overlapped)
	}
	now, _ = commitLoad(t, &o, now, 3*time.Second, rates(12000, 16000))
	if !o.overlap.Load() {
		t.Fatal("two at a time committed a third more in its trial, and was not kept")
	}
	// Later trials of one at a time do not bring it back.
	_, overlapped = commitLoad(t, &o, now, 5*trialEvery, rates(12000, 16000))
	if !o.overlap.Load() || overlapped < 5*trialEvery-5*trialWindow {
		t.Fatalf("two at a time for %v of %v after it was kept", overlapped, 5*trialEvery)
	}
}

func TestOverlapTrialsStayOneAtATimeWhenTwoCommitLessOrAsMuch(t *testing.T) {
	for name, twoAtATime := range map[string]float64{"less": 9800, "within the margin": 12600} {
		t.Run(name, func(t *testing.T) {
			var o overlapTrials
			_, overlapped := commitLoad(t, &o, time.Unix(0, 0), 10*trialEvery, rates(12000, twoAtATime))
			if o.overlap.Load() {
				t.Fatal("two at a time kept")
			}
			// Tried about once every trialEvery, for one window each time.
			if overlapped < 8*trialWindow || overlapped > 12*trialWindow {
				t.Fatalf("two at a time for %v in %v, want about 10 trial windows of %v", overlapped, 10*trialEvery, trialWindow)
			}
		})
	}
}

func TestOverlapTrialsNeedTraffic(t *testing.T) {
	var o overlapTrials
	// Under trialRows per window: no trial at all, even were two better.
	light := float64(trialRows-100) / trialWindow.Seconds()
	_, overlapped := commitLoad(t, &o, time.Unix(0, 0), 4*trialEvery, rates(light, 10*light))
	if overlapped != 0 {
		t.Fatalf("two at a time for %v under a light load", overlapped)
	}
}

func TestOverlapTrialsCountTrafficAcrossPauses(t *testing.T) {
	var o overlapTrials
	// Bursts of 5 s of traffic with 5 s pauses: a trial comes after
	// trialEvery of traffic, not of clock, and the pauses decide nothing.
	bursts := func(at time.Time, overlap bool) float64 {
		if at.Unix()%10 >= 5 {
			return 0
		}
		return rates(12000, 16000)(at, overlap)
	}
	now, overlapped := commitLoad(t, &o, time.Unix(0, 0), 30*time.Second, bursts)
	if overlapped != 0 {
		t.Fatalf("two at a time for %v after 15 s of traffic in 30 s", overlapped)
	}
	commitLoad(t, &o, now, 20*time.Second, bursts)
	if !o.overlap.Load() {
		t.Fatal("no trial after 25 s of traffic in 50 s")
	}
}

func TestOverlapTrialsAreNotFooledByARisingLoad(t *testing.T) {
	var o overlapTrials
	// The load rises by a fifth in each window and either way commits all
	// of it: the trial window sees more than the window before it, but not
	// more than the mean of the windows either side of it.
	start := time.Unix(0, 0)
	rising := func(at time.Time, _ bool) float64 {
		return 2000 * math.Pow(1.2, at.Sub(start).Seconds()/trialWindow.Seconds())
	}
	_, overlapped := commitLoad(t, &o, start, trialEvery+2*time.Second, rising)
	if overlapped == 0 {
		t.Fatal("no trial")
	}
	if o.overlap.Load() {
		t.Fatal("two at a time kept under a rising load that it did not commit more of")
	}
}

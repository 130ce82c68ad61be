package servertest

import (
	"maps"
	"sync"
	"testing"
	"time"
)

// WaitFor polls cond every 20 ms until it holds, failing the test after timeout.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Outcomes tallies what concurrent writers were answered: each status (-1
// for no answer) and the ids acknowledged with a 200. Safe for concurrent use.
type Outcomes struct {
	mu       sync.Mutex
	statuses map[int]int
	acked    map[string]bool
}

// Record counts one write's answer; id is acknowledged when it was a 200.
func (o *Outcomes) Record(id string, resp *Response, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.statuses == nil {
		o.statuses, o.acked = map[int]int{}, map[string]bool{}
	}
	switch {
	case err != nil:
		o.statuses[-1]++
	case resp.Status == 200:
		o.acked[id] = true
		fallthrough
	default:
		o.statuses[resp.Status]++
	}
}

// Count is how many writes were answered with status.
func (o *Outcomes) Count(status int) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.statuses[status]
}

// Statuses is a copy of the counts by status.
func (o *Outcomes) Statuses() map[int]int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return maps.Clone(o.statuses)
}

// Acked is a copy of the acknowledged ids.
func (o *Outcomes) Acked() map[string]bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return maps.Clone(o.acked)
}

package ingest

import (
	"context"
	"reflect"
	"sync"
	"testing"
	"time"
)

// TestGroupIsCommittedOnceEveryRecentClientWaits: with named clients a group
// does not wait out MaxDelay (a minute here) once every client that was
// recently answered has submitted again.
func TestGroupIsCommittedOnceEveryRecentClientWaits(t *testing.T) {
	var mu sync.Mutex
	var groups [][]string
	b := New(Options{Workers: 1, MaxDelay: time.Minute}, func(_ context.Context, items []string) error {
		mu.Lock()
		groups = append(groups, append([]string(nil), items...))
		mu.Unlock()
		return nil
	})
	defer b.Close(context.Background())
	submit := func(client string) <-chan error {
		done := make(chan error, 1)
		go func() { done <- b.Submit(WithClient(context.Background(), client), []string{client}, 1) }()
		return done
	}
	wait := func(what string, done <-chan error) {
		t.Helper()
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("%s: still waiting for the group's delay although no other client was expected", what)
		}
	}
	// Nobody else is known: the first submission is committed at once.
	wait("a alone", submit("a"))
	// a was answered moments ago: b's group waits for it, and goes when a is in.
	first := submit("b")
	for b.Queued() < 1 {
		time.Sleep(time.Millisecond)
	}
	select {
	case <-first:
		t.Fatal("b's group did not wait for a, a client answered moments ago")
	case <-time.After(50 * time.Millisecond):
	}
	wait("a joining b", submit("a"))
	wait("b with a", first)
	mu.Lock()
	defer mu.Unlock()
	if want := [][]string{{"a"}, {"b", "a"}}; !reflect.DeepEqual(groups, want) {
		t.Fatalf("groups %v, want %v", groups, want)
	}
}

// TestClientsAreForgottenAfterRecent: a client answered longer ago than
// recent is no longer waited for, and no longer kept.
func TestClientsAreForgottenAfterRecent(t *testing.T) {
	c := newClients(10 * time.Millisecond)
	now := time.Now()
	c.submitted("a")
	if c.expected(now) {
		t.Fatal("a client with a submission queued is expected")
	}
	c.answered("a", now)
	if !c.expected(now.Add(5 * time.Millisecond)) {
		t.Fatal("a client answered 5 ms ago is not expected")
	}
	if c.expected(now.Add(20*time.Millisecond)) || len(c.byKey) != 0 {
		t.Fatalf("a client answered 20 ms ago is still expected or kept (%d kept)", len(c.byKey))
	}
	c.answered("", now) // unnamed submissions are not tracked
	c.answered("never-submitted", now)
	if c.expected(now) {
		t.Fatal("answers without submissions made a client expected")
	}
}

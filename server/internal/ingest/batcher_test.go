package ingest

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xtrace-dev/xtrace-operator/server/internal/errs"
)

func TestConcurrentSubmissionsShareATransaction(t *testing.T) {
	var mu sync.Mutex
	var groups [][]int
	b := New(Options{Workers: 1, MaxDelay: 50 * time.Millisecond}, func(_ context.Context, items []int) error {
		mu.Lock()
		groups = append(groups, append([]int(nil), items...))
		mu.Unlock()
		return nil
	})
	defer b.Close(context.Background())
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			if err := b.Submit(context.Background(), []int{i}, 1); err != nil {
				t.Error(err)
			}
		}(i)
	}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	total := 0
	for _, g := range groups {
		total += len(g)
	}
	if total != 20 {
		t.Fatalf("committed %d items, want 20", total)
	}
	if len(groups) >= 20 {
		t.Fatalf("%d transactions for 20 concurrent submissions: no grouping", len(groups))
	}
}

func TestSubmitReturnsOnlyAfterCommit(t *testing.T) {
	release := make(chan struct{})
	var committed atomic.Bool
	b := New(Options{Workers: 1, MaxDelay: time.Millisecond}, func(_ context.Context, items []int) error {
		<-release
		committed.Store(true)
		return nil
	})
	defer b.Close(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Submit(context.Background(), []int{1}, 1) }()
	select {
	case <-done:
		t.Fatal("Submit returned before the commit finished")
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	if err := <-done; err != nil || !committed.Load() {
		t.Fatalf("err=%v committed=%v", err, committed.Load())
	}
}

func TestFullQueueFailsFast(t *testing.T) {
	release := make(chan struct{})
	b := New(Options{Workers: 1, MaxDelay: time.Millisecond, MaxQueuedItems: 10}, func(_ context.Context, items []int) error {
		<-release
		return nil
	})
	defer b.Close(context.Background())
	first := make(chan error, 1)
	go func() { first <- b.Submit(context.Background(), make([]int, 8), 8) }()
	for b.Queued() < 8 {
		time.Sleep(time.Millisecond)
	}
	start := time.Now()
	err := b.Submit(context.Background(), make([]int, 5), 5)
	if !errors.Is(err, errs.ErrOverloaded) {
		t.Fatalf("submit over the bound: %v, want ErrOverloaded", err)
	}
	if time.Since(start) > 100*time.Millisecond {
		t.Fatalf("a full queue must answer at once, took %s", time.Since(start))
	}
	close(release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if err := b.Submit(context.Background(), make([]int, 5), 5); err != nil {
		t.Fatalf("after the queue drained: %v", err)
	}
}

func TestOneBadSubmissionDoesNotFailOthers(t *testing.T) {
	b := New(Options{Workers: 1, MaxDelay: 30 * time.Millisecond}, func(_ context.Context, items []int) error {
		for _, it := range items {
			if it < 0 {
				return errors.New("constraint violated")
			}
		}
		return nil
	})
	defer b.Close(context.Background())
	var wg sync.WaitGroup
	errs := make([]error, 6)
	for i := 0; i < 6; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			v := i
			if i == 3 {
				v = -1
			}
			errs[i] = b.Submit(context.Background(), []int{v}, 1)
		}(i)
	}
	wg.Wait()
	for i, err := range errs {
		if (i == 3) != (err != nil) {
			t.Errorf("submission %d: err=%v", i, err)
		}
	}
}

func TestCloseDrainsQueuedWork(t *testing.T) {
	var committed atomic.Int64
	gate := make(chan struct{})
	b := New(Options{Workers: 1, MaxDelay: time.Millisecond, MaxGroupItems: 1}, func(_ context.Context, items []int) error {
		<-gate
		committed.Add(int64(len(items)))
		return nil
	})
	var wg sync.WaitGroup
	for i := 0; i < 5; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); _ = b.Submit(context.Background(), []int{1}, 1) }()
	}
	for b.Queued() < 5 {
		time.Sleep(time.Millisecond)
	}
	closed := make(chan error, 1)
	go func() { closed <- b.Close(context.Background()) }()
	<-b.stopped // Close has begun: Submit refuses from here on
	if err := b.Submit(context.Background(), []int{1}, 1); !errors.Is(err, ErrClosed) || !errors.Is(err, errs.ErrUnavailable) {
		t.Fatalf("submit after Close: %v", err)
	}
	close(gate)
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if committed.Load() != 5 {
		t.Fatalf("committed %d of 5 queued items on close", committed.Load())
	}
}

// TestOverlapDecidesWhetherASecondGroupCommits: while Options.Overlap says
// no, a group waits for the one committing; once it says yes, a second
// group commits while the first is committing.
func TestOverlapDecidesWhetherASecondGroupCommits(t *testing.T) {
	var overlap atomic.Bool
	started := make(chan struct{}, 2)
	release := make(chan struct{})
	b := New(Options{Workers: 2, MaxGroupItems: 1, MaxDelay: time.Millisecond, Overlap: overlap.Load},
		func(ctx context.Context, items []int) error {
			started <- struct{}{}
			select {
			case <-release:
			case <-ctx.Done():
			}
			return nil
		})
	defer b.Close(context.Background())
	var wg sync.WaitGroup
	submit := func(i int) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := b.Submit(context.Background(), []int{i}, 1); err != nil {
				t.Error(err)
			}
		}()
	}

	submit(1)
	<-started
	submit(2)
	select {
	case <-started:
		t.Fatal("with overlap off, a second group committed while the first was committing")
	case <-time.After(200 * time.Millisecond): // a negative: bounded by a wait
	}
	close(release) // the first commits, then the second
	wg.Wait()
	<-started

	overlap.Store(true)
	release = make(chan struct{})
	submit(3)
	<-started
	submit(4)
	<-started // the second group commits while the first still holds
	close(release)
	wg.Wait()
}

// TestAHeldBackWorkerAsksAgainOnlyWhenAGroupCommits: a worker that
// Options.Overlap holds back asks again when a group begins to commit, not
// on a timer, so an idle server wakes no one.
func TestAHeldBackWorkerAsksAgainOnlyWhenAGroupCommits(t *testing.T) {
	asked := make(chan struct{}, 100)
	b := New(Options{Workers: 2, MaxGroupItems: 1, MaxDelay: time.Millisecond,
		Overlap: func() bool { asked <- struct{}{}; return false }},
		func(ctx context.Context, items []int) error { return nil })
	defer b.Close(context.Background())
	<-asked // its first question
	select {
	case <-asked:
		t.Fatal("an idle batcher asked Overlap again")
	case <-time.After(100 * time.Millisecond): // a negative: bounded by a wait
	}
	if err := b.Submit(context.Background(), []int{1}, 1); err != nil {
		t.Fatal(err)
	}
	<-asked // the group's commit woke it
}

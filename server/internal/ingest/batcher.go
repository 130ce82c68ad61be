// Package ingest is the durable write path: handlers submit validated work and
// wait; workers group concurrent submissions into one transaction (group
// commit) and answer each submitter only after that transaction committed.
// The queue is bounded: when it is full, Submit fails at once with
// errs.Overloaded instead of buffering without bound.
package ingest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/xtrace-dev/xtrace-operator/server/internal/errs"
)

// CommitFunc writes a group of items in one transaction.
type CommitFunc[T any] func(ctx context.Context, items []T) error

// Options tune a Batcher.
type Options struct {
	// Name labels the batcher in metrics ("metrics", "traces").
	Name string
	// Workers commit groups in parallel (each uses one connection).
	Workers int
	// Overlap, when set, says whether workers beyond the first may take a
	// group now; while it says no, one group commits at a time.
	Overlap func() bool
	// MaxGroupItems flushes a group once it holds this many item units.
	MaxGroupItems int
	// MaxDelay is how long a group may wait for more submissions; less when
	// none is expected (see WithClient).
	MaxDelay time.Duration
	// MaxQueuedItems bounds the item units waiting to be committed.
	MaxQueuedItems int
	// CommitTimeout bounds one transaction, so a hung database turns into errors.
	CommitTimeout time.Duration
	// Observer receives measurements; nil ignores them.
	Observer Observer
}

// Observer is told about queue depth and commits (the server's /metrics).
type Observer interface {
	QueueDepth(name string, items int)
	Committed(name string, jobs, items int, took time.Duration, err error)
}

type job[T any] struct {
	items  []T
	size   int
	client string // see WithClient; "" when unnamed
	done   chan error
}

// Batcher groups submissions of []T into transactions.
type Batcher[T any] struct {
	opts     Options
	commit   CommitFunc[T]
	queue    chan *job[T]
	queued   atomic.Int64
	clients  *clients
	complete chan struct{} // a group has every submission it expects
	busy     chan struct{} // a group has begun to commit (see Options.Overlap)
	stopped  chan struct{} // closed by Close

	mu      sync.RWMutex // guards closed against Submit racing Close
	closed  bool
	workers sync.WaitGroup
}

// New starts the workers.
func New[T any](opts Options, commit CommitFunc[T]) *Batcher[T] {
	if opts.Workers <= 0 {
		opts.Workers = 2
	}
	if opts.MaxGroupItems <= 0 {
		opts.MaxGroupItems = 20000
	}
	if opts.MaxDelay <= 0 {
		opts.MaxDelay = 5 * time.Millisecond
	}
	if opts.MaxQueuedItems <= 0 {
		opts.MaxQueuedItems = 200000
	}
	if opts.CommitTimeout <= 0 {
		opts.CommitTimeout = 10 * time.Second
	}
	b := &Batcher[T]{opts: opts, commit: commit, queue: make(chan *job[T], 4096),
		clients: newClients(10 * opts.MaxDelay), complete: make(chan struct{}, 1),
		busy: make(chan struct{}, 1), stopped: make(chan struct{})}
	for i := 0; i < opts.Workers; i++ {
		b.workers.Add(1)
		go b.work(i)
	}
	return b
}

// ErrClosed is returned by Submit after Close (the server is shutting down).
var ErrClosed = errs.Unavailablef(nil, "server is shutting down; retry on another replica")

// Submit queues items (counted as size units, at least 1) and waits until they
// are committed or failed. It fails at once with errs.ErrOverloaded when
// the queue is full and with ErrClosed after Close. When ctx ends first the
// items may still be committed later; the caller must not report success.
func (b *Batcher[T]) Submit(ctx context.Context, items []T, size int) error {
	if size < 1 {
		size = 1
	}
	b.mu.RLock()
	if b.closed {
		b.mu.RUnlock()
		return ErrClosed
	}
	if n := b.queued.Add(int64(size)); n > int64(b.opts.MaxQueuedItems) && n != int64(size) {
		b.queued.Add(-int64(size))
		b.mu.RUnlock()
		return errs.ErrOverloaded
	}
	j := &job[T]{items: items, size: size, client: clientOf(ctx), done: make(chan error, 1)}
	b.clients.submitted(j.client) // before the job can be seen: no one waits for it once it is queued
	select {
	case b.queue <- j:
	default:
		b.clients.answered(j.client, time.Now())
		b.queued.Add(-int64(size))
		b.mu.RUnlock()
		return errs.ErrOverloaded
	}
	b.mu.RUnlock()
	if (j.client != "" && !b.clients.expected(time.Now())) || b.queued.Load() >= int64(b.opts.MaxGroupItems) {
		select {
		case b.complete <- struct{}{}:
		default:
		}
	}
	b.observeDepth()
	select {
	case err := <-j.done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("%w: %w", errs.ErrUnavailable, ctx.Err())
	}
}

// Close stops accepting work, commits everything already queued, and waits for
// the workers; ctx bounds the wait.
func (b *Batcher[T]) Close(ctx context.Context) error {
	b.mu.Lock()
	if !b.closed {
		b.closed = true
		close(b.queue)
		close(b.stopped)
	}
	b.mu.Unlock()
	done := make(chan struct{})
	go func() { b.workers.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return errors.New("ingest: queued work not committed before the shutdown deadline")
	}
}

// Queued returns the item units waiting or being committed.
func (b *Batcher[T]) Queued() int { return int(b.queued.Load()) }

func (b *Batcher[T]) observeDepth() {
	if b.opts.Observer != nil {
		b.opts.Observer.QueueDepth(b.opts.Name, b.Queued())
	}
}

func (b *Batcher[T]) work(worker int) {
	defer b.workers.Done()
	for {
		// Workers beyond the first take a group only while Options.Overlap
		// allows it; held back, they ask again when a group begins to commit
		// (overlap matters only then), so an idle server wakes no one.
		if worker > 0 && b.opts.Overlap != nil && !b.opts.Overlap() {
			select {
			case <-b.busy:
				continue
			case <-b.stopped: // Close: help commit what is queued
			}
		}
		first, ok := <-b.queue
		if !ok {
			return
		}
		group := []*job[T]{first}
		size := first.size
		named := first.client != ""
		select {
		case <-b.complete: // a signal for a group that has gone already
		default:
		}
		timer := time.NewTimer(b.opts.MaxDelay)
		waited := false
	collect:
		for size < b.opts.MaxGroupItems {
			select {
			case j, ok := <-b.queue:
				if !ok {
					break collect
				}
				group = append(group, j)
				size += j.size
				named = named && j.client != ""
				continue
			default:
			}
			// Waiting is for submissions on their way. When every job names
			// its client and no recent client is without one queued, none is.
			if waited || (named && !b.clients.expected(time.Now())) {
				break collect
			}
			// Submitters do not wake the worker one by one (waking a thread
			// per submission costs more CPU than the rest of the wait): the
			// one that completes the group does, or the delay ends.
			select {
			case <-b.complete:
			case <-timer.C:
				waited = true
			}
		}
		timer.Stop()
		b.flush(group, size)
	}
}

func (b *Batcher[T]) flush(group []*job[T], size int) {
	results := make([]error, len(group))
	err := b.commitJobs(group, size)
	if err != nil && len(group) > 1 && errs.KindOf(err) != errs.Unavailable {
		// One submission's bad data must not fail the others: commit them one by one.
		for i, j := range group {
			results[i] = b.commitJobs([]*job[T]{j}, j.size)
		}
	} else {
		for i := range results {
			results[i] = err
		}
	}
	// The queue has room before anyone hears back: a submitter answered
	// here may submit again at once and must not find it still full.
	b.queued.Add(-int64(size))
	b.observeDepth()
	now := time.Now()
	for i, j := range group {
		b.clients.answered(j.client, now)
		j.done <- results[i]
	}
}

func (b *Batcher[T]) commitJobs(group []*job[T], size int) error {
	items := group[0].items
	if len(group) > 1 {
		items = make([]T, 0, size)
		for _, j := range group {
			items = append(items, j.items...)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), b.opts.CommitTimeout)
	defer cancel()
	select {
	case b.busy <- struct{}{}:
	default:
	}
	start := time.Now()
	err := b.commit(ctx, items)
	if b.opts.Observer != nil {
		b.opts.Observer.Committed(b.opts.Name, len(group), size, time.Since(start), err)
	}
	return err
}

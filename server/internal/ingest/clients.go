package ingest

import (
	"container/list"
	"context"
	"sync"
	"time"
)

type clientKey struct{}

// WithClient names the client a submission comes from (for HTTP, its
// connection's remote address). A group stops waiting for more submissions
// once every client that submitted recently is waiting on one already: a
// gateway whose clients send one request at a time then gets its group
// committed as soon as the last of them has arrived, not after MaxDelay.
func WithClient(ctx context.Context, key string) context.Context {
	return context.WithValue(ctx, clientKey{}, key)
}

func clientOf(ctx context.Context) string {
	key, _ := ctx.Value(clientKey{}).(string)
	return key
}

// clients tracks which recent clients have nothing queued: those a group
// still expects to hear from.
type clients struct {
	recent time.Duration // how long an answered client stays expected

	mu    sync.Mutex
	byKey map[string]*client
	idle  list.List // of *client with nothing pending, least recently answered first
}

type client struct {
	key      string
	pending  int
	answered time.Time
	idleAt   *list.Element // in clients.idle while pending == 0
}

func newClients(recent time.Duration) *clients {
	return &clients{recent: recent, byKey: map[string]*client{}}
}

// submitted marks a submission of key as queued.
func (c *clients) submitted(key string) {
	if key == "" {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	cl := c.byKey[key]
	if cl == nil {
		cl = &client{key: key}
		c.byKey[key] = cl
	}
	if cl.idleAt != nil {
		c.idle.Remove(cl.idleAt)
		cl.idleAt = nil
	}
	cl.pending++
}

// answered marks a submission of key as answered (or never queued).
func (c *clients) answered(key string, now time.Time) {
	if key == "" {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	cl := c.byKey[key]
	if cl == nil || cl.pending == 0 {
		return
	}
	if cl.pending--; cl.pending == 0 {
		cl.answered = now
		cl.idleAt = c.idle.PushBack(cl)
	}
}

// expected reports whether a recently answered client has nothing queued,
// i.e. may be about to submit again. Clients answered longer ago than
// recent are forgotten.
func (c *clients) expected(now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for e := c.idle.Front(); e != nil; e = c.idle.Front() {
		cl := e.Value.(*client)
		if now.Sub(cl.answered) <= c.recent {
			return true
		}
		c.idle.Remove(e)
		delete(c.byKey, cl.key)
	}
	return false
}

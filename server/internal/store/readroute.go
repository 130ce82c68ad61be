package store

import (
	"context"
	"sync"
)

// PrimaryPool names the primary's pool in ReadRoute.Served, PoolStats and logs.
const PrimaryPool = "primary"

// PrimaryWritePool names the primary's pool for ingest writes in PoolStats.
const PrimaryWritePool = "primary-writes"

// ReadConsistency says which servers may answer a request's reads.
type ReadConsistency int

const (
	// ReadAnywhere: a replica within the lag bound, else the primary.
	ReadAnywhere ReadConsistency = iota
	// ReadPrimary: the primary only, so the reads see every committed write.
	ReadPrimary
)

// ReadRoute travels in a request's context from the HTTP layer to the store:
// it carries where the request's reads may go and brings back which pool
// answered them. Reads of one request stay on one replica while it is fit.
type ReadRoute struct {
	mu          sync.Mutex
	consistency ReadConsistency
	pinned      *replica
	served      string
}

// NewReadRoute returns a route for one request.
func NewReadRoute(c ReadConsistency) *ReadRoute { return &ReadRoute{consistency: c} }

type readRouteKey struct{}

// WithReadRoute returns ctx carrying r; the store's reads under ctx follow it.
func WithReadRoute(ctx context.Context, r *ReadRoute) context.Context {
	return context.WithValue(ctx, readRouteKey{}, r)
}

// ReadRouteFrom returns the route ctx carries, or nil.
func ReadRouteFrom(ctx context.Context) *ReadRoute {
	r, _ := ctx.Value(readRouteKey{}).(*ReadRoute)
	return r
}

// RequirePrimary sends the route's further reads to the primary.
func (r *ReadRoute) RequirePrimary() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.consistency, r.pinned = ReadPrimary, nil
}

// Served names the pool that answered the route's last read: PrimaryPool, a
// replica's name, or "" when the request read nothing.
func (r *ReadRoute) Served() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.served
}

// FromReplica reports whether a replica answered the route's last read.
func (r *ReadRoute) FromReplica() bool {
	s := r.Served()
	return s != "" && s != PrimaryPool
}

func (r *ReadRoute) record(pool string) {
	if r == nil {
		return
	}
	r.mu.Lock()
	r.served = pool
	r.mu.Unlock()
}

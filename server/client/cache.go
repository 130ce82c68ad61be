package client

import (
	"context"
	"sync"
	"time"
)

// DefaultCacheTTL is how long CachedQuerier serves a last good answer after failures.
const DefaultCacheTTL = 30 * time.Second

// CachedQuerier answers from the last good result of the same query when the
// server cannot answer (network error, 429, 5xx, timeout), for up to TTL —
// the fallback Nebula's Router and Scheduler use. Errors that a retry cannot
// fix (400, 401, 404) are returned, not masked.
type CachedQuerier struct {
	Client *Client
	TTL    time.Duration    // zero: DefaultCacheTTL
	Now    func() time.Time // zero: time.Now

	mu    sync.Mutex
	cache map[string]cachedResult
}

type cachedResult struct {
	res *MetricsQueryResult
	at  time.Time
}

// CachedResult is an answer and where it came from.
type CachedResult struct {
	*MetricsQueryResult
	FromCache bool      // true: the server failed and this is the last good answer
	FetchedAt time.Time // when the answer came from the server
	Err       error     // with FromCache, why the server's answer was not used
}

// Query runs q, or falls back to the cached answer of q.
func (cq *CachedQuerier) Query(ctx context.Context, q MetricsQuery) (*CachedResult, error) {
	now := time.Now
	if cq.Now != nil {
		now = cq.Now
	}
	ttl := cq.TTL
	if ttl == 0 {
		ttl = DefaultCacheTTL
	}
	key := q.cacheKey()
	res, err := cq.Client.QueryMetrics(ctx, q)
	cq.mu.Lock()
	defer cq.mu.Unlock()
	if cq.cache == nil {
		cq.cache = map[string]cachedResult{}
	}
	if err == nil {
		at := now()
		cq.cache[key] = cachedResult{res: res, at: at}
		return &CachedResult{MetricsQueryResult: res, FetchedAt: at}, nil
	}
	if !retryable(err) && ctx.Err() == nil {
		return nil, err
	}
	if c, ok := cq.cache[key]; ok && now().Sub(c.at) <= ttl {
		return &CachedResult{MetricsQueryResult: c.res, FromCache: true, FetchedAt: c.at, Err: err}, nil
	}
	return nil, err
}

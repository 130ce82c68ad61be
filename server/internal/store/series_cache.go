package store

import (
	"sync"
	"time"
)

// seriesCache maps a series identity to its id and the UTC day this replica
// last recorded it as seen. It is bounded: when full it is cleared (a miss
// only costs a lookup).
type seriesCache struct {
	mu      sync.RWMutex
	max     int
	entries map[seriesKey]cachedSeries
}

// seriesKey identifies a series; a struct key avoids building a string per point.
type seriesKey struct {
	project, name, labels string
}

type cachedSeries struct {
	id   int64
	seen time.Time // UTC day
}

func newSeriesCache(max int) *seriesCache {
	return &seriesCache{max: max, entries: make(map[seriesKey]cachedSeries)}
}

func (c *seriesCache) get(key seriesKey) (cachedSeries, bool) {
	c.mu.RLock()
	e, ok := c.entries[key]
	c.mu.RUnlock()
	return e, ok
}

func (c *seriesCache) put(key seriesKey, e cachedSeries) {
	c.mu.Lock()
	if len(c.entries) >= c.max {
		c.entries = make(map[seriesKey]cachedSeries)
	}
	c.entries[key] = e
	c.mu.Unlock()
}

func (c *seriesCache) remove(keys []seriesKey) {
	c.mu.Lock()
	for _, k := range keys {
		delete(c.entries, k)
	}
	c.mu.Unlock()
}

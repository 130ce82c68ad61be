package store

import "sync"

// seriesCache maps a series identity to its id. It is bounded: when full it
// is cleared (series ids never change, so a miss only costs a lookup).
type seriesCache struct {
	mu  sync.RWMutex
	max int
	ids map[string]int64
}

func newSeriesCache(max int) *seriesCache {
	return &seriesCache{max: max, ids: make(map[string]int64)}
}

func (c *seriesCache) get(key string) (int64, bool) {
	c.mu.RLock()
	id, ok := c.ids[key]
	c.mu.RUnlock()
	return id, ok
}

func (c *seriesCache) put(key string, id int64) {
	c.mu.Lock()
	if len(c.ids) >= c.max {
		c.ids = make(map[string]int64)
	}
	c.ids[key] = id
	c.mu.Unlock()
}

// forget drops every entry (after retention deleted series).
func (c *seriesCache) forget() {
	c.mu.Lock()
	c.ids = make(map[string]int64)
	c.mu.Unlock()
}

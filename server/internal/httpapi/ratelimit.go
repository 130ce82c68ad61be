package httpapi

import (
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/xtrace-dev/xtrace-operator/server/internal/errs"
)

// keyedLimiter is a token bucket per key (token or Basic public key). Buckets
// idle for longer than idleAfter are evicted so memory stays bounded.
type keyedLimiter struct {
	qps       rate.Limit
	burst     int
	idleAfter time.Duration

	mu        sync.Mutex
	buckets   map[string]*bucket
	lastSweep time.Time
}

type bucket struct {
	lim      *rate.Limiter
	lastSeen time.Time
}

func newKeyedLimiter(qps float64, burst int) *keyedLimiter {
	return &keyedLimiter{qps: rate.Limit(qps), burst: burst, idleAfter: 10 * time.Minute, buckets: map[string]*bucket{}}
}

// rateLimitMeta is the "meta" of a 429 (SPEC §3.6).
type rateLimitMeta struct {
	RateLimit struct {
		Remaining int    `json:"remaining"`
		ResetAt   string `json:"reset_at"`
	} `json:"rate_limit"`
}

// allow takes one token for key or returns the 429 error.
func (k *keyedLimiter) allow(key string, now time.Time) error {
	k.mu.Lock()
	if now.Sub(k.lastSweep) > time.Minute {
		for key, b := range k.buckets {
			if now.Sub(b.lastSeen) > k.idleAfter {
				delete(k.buckets, key)
			}
		}
		k.lastSweep = now
	}
	b := k.buckets[key]
	if b == nil {
		b = &bucket{lim: rate.NewLimiter(k.qps, k.burst)}
		k.buckets[key] = b
	}
	b.lastSeen = now
	k.mu.Unlock()

	res := b.lim.ReserveN(now, 1)
	delay := res.DelayFrom(now)
	if res.OK() && delay == 0 {
		return nil
	}
	res.CancelAt(now)
	if !res.OK() { // burst < 1 cannot happen with validated config; be safe
		delay = time.Second
	}
	var meta rateLimitMeta
	meta.RateLimit.ResetAt = now.Add(delay).UTC().Format(time.RFC3339)
	return &errs.Error{Kind: errs.Overloaded, Msg: "Too Many Requests",
		RetryAfter: time.Duration(math.Max(1, math.Ceil(delay.Seconds()))) * time.Second, Detail: meta}
}

func (k *keyedLimiter) size() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.buckets)
}

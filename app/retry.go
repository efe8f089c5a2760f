package app

import (
	"math/rand/v2"
	"time"
)

// backoff returns the wait before retry n (1 for the first retry): a
// random duration in [d/2, d] with d = min(max, base*2^(n-1)). The jitter
// spreads the retries of many callers that failed together.
func backoff(n int, base, max time.Duration) time.Duration {
	d := base
	for i := 1; i < n && d < max; i++ {
		d *= 2
	}
	if d > max {
		d = max
	}
	if d <= 1 {
		return d
	}
	half := d / 2
	return half + time.Duration(rand.Int64N(int64(d-half)+1))
}

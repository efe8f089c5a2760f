package retry

import (
	"math/rand/v2"
	"time"
)

// Backoff is a "full jitter" wait before retry n+1 (n from 0): uniform in
// [0, min(ceiling, base·2ⁿ)), so that callers that failed together do not
// come back together.
func Backoff(base, ceiling time.Duration, n int) time.Duration {
	limit := ceiling
	if n < 30 && base<<n < ceiling {
		limit = base << n
	}
	if limit <= 0 {
		return 0
	}
	return rand.N(limit)
}

package balancer

import (
	"context"
	"time"

	"github.com/threetier/threetier/tier"
)

// A request carries one deadline end to end (tier.HeaderTimeout): the
// proxy sets it from ResponseTimeout, shortened by the caller's header,
// and the pool sends each attempt with what is left of it, starts no
// attempt that cannot fit, and waits no back-off that would leave none.

// minAttemptTime is the least time left for which an attempt starts: the
// header's resolution. With less, the next tier would be told 0ms.
const minAttemptTime = time.Millisecond

// fits reports whether an attempt that starts after wait fits before
// deadline (zero: none).
func fits(deadline time.Time, wait time.Duration) bool {
	return deadline.IsZero() || time.Until(deadline)-wait >= minAttemptTime
}

// ownDeadline is when a request that arrived at start must have its
// answer's headers, by the proxy's ResponseTimeout and by ctx's deadline
// (a server that bounds its requests); zero for neither.
func (px *Proxy) ownDeadline(ctx context.Context, start time.Time) time.Time {
	var d time.Time
	if t := px.cfg.ResponseTimeout; t > 0 {
		d = start.Add(t)
	}
	if c, ok := ctx.Deadline(); ok && (d.IsZero() || c.Before(d)) {
		d = c
	}
	return d
}

// shorten is tier.ShortenDeadline for a value the caller sent; one that
// does not parse is ignored, and logged at debug.
func (px *Proxy) shorten(ctx context.Context, deadline, start time.Time, v string) time.Time {
	d, err := tier.ShortenDeadline(deadline, start, v)
	if err != nil {
		px.log.DebugContext(ctx, "ignoring the caller's deadline", "header", tier.HeaderTimeout, "err", err)
	}
	return d
}

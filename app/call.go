package app

import (
	"context"
	"errors"
	"net/http"

	"github.com/threetier/threetier/internal/httpx"
)

// Do calls fn through g and returns what fn returned. A rejected call
// returns a *GuardError without calling fn. Handlers return the error as
// is: the server turns it into the right problem+json (503 with
// Retry-After, 504, ...).
//
// Made while the server serves a safe method (GET, HEAD, OPTIONS), the
// call is idempotent, as such a request is: it is retried and waits out an
// open breaker within the guard's RideThrough, so that a database blip
// costs reads nothing. Otherwise it is made once and never waits (what it
// sends might be applied twice). A Call says otherwise where the method
// does not tell (Idempotent, NotIdempotent).
//
// The context fn gets carries the guard's call timeout and ends when the
// attempt does: fn must finish its work with the dependency (read the
// body, scan the rows) before it returns.
func Do[T any](ctx context.Context, g *Guard, fn func(context.Context) (T, error)) (T, error) {
	return Call[T]{Guard: g}.Do(ctx, fn)
}

// A Call describes one kind of guarded operation on a dependency: whether
// it may be retried and what to answer when the dependency cannot. Define
// it once, next to the code that calls the dependency:
//
//	var getUser = app.Call[User]{Guard: users, Idempotent: true}
//	u, err := getUser.Do(ctx, func(ctx context.Context) (User, error) { ... })
type Call[T any] struct {
	// Guard is the dependency's guard; it must not be nil.
	Guard *Guard
	// Idempotent allows retries (reads, and writes that are safe to
	// repeat): up to the guard's Attempts within its retry budget, and
	// waiting up to its RideThrough for an open breaker to let the call
	// through. A call made while serving a safe method (GET, HEAD,
	// OPTIONS) is idempotent without it.
	Idempotent bool
	// NotIdempotent makes the call once, without waiting for an open
	// breaker, whatever the request's method: a call that must not be
	// repeated although a GET made it (one that counts views). It wins
	// over Idempotent, and such a call is no read.
	NotIdempotent bool
	// ReadOnly says that the call only reads, whatever the request's
	// method (a search sent with POST): it takes a slot among the reads
	// (see GuardConfig.ReadReserve). A call made while serving a safe
	// method reads without it, unless it is NotIdempotent; any other
	// call is taken for a write.
	ReadOnly bool
	// Keys name what the call contends for, which only one call at a time
	// can have: the rows its transaction locks ("product:1"). At most the
	// guard's MaxPerKey calls naming a key are in flight at once; the
	// others wait for one of them, holding no slot of the bulkhead and no
	// connection, within the guard's Timeout, and are then refused with
	// ErrKeyBusy (503 with Retry-After). A row held elsewhere (a hot row)
	// then holds up the calls for it and a few slots of the guard, never
	// every slot.
	Keys []string
	// Fallback, when set, answers in place of the dependency when the call
	// was rejected, timed out or failed (never for the caller's own
	// cancellation, nor for errors IsFailure excuses). It gets the error,
	// and answers when it returns none.
	//
	// A call that would wait for its dependency asks its Fallback first
	// once the dependency is known to be unavailable: an idempotent call
	// the breaker refuses, or whose attempt failed with a 503 (the data
	// tier's ErrUnavailable: the database is down, unreachable, or out of
	// disk), is answered by the Fallback at once, instead of riding
	// through the outage and retrying, which keeps the caller waiting up
	// to RideThrough and more for an answer the Fallback has now (a stale
	// one beats none). A Fallback that cannot answer yet (nothing cached)
	// returns an error: the call then waits and retries as a call without
	// one does, and asks it again at the end. It may so be asked twice,
	// and should answer from memory. A dependency that is only slow
	// (timeouts) is retried first: its next answer may come in time.
	Fallback func(ctx context.Context, err error) (T, error)
}

// errAnsweredEarly ends a guarded call whose fallback answered before the
// guard waited or retried.
var errAnsweredEarly = errors.New("answered by the fallback")

// Do runs fn through the guard as the Call describes.
func (c Call[T]) Do(ctx context.Context, fn func(context.Context) (T, error)) (T, error) {
	var out T
	var early func(error) bool
	if c.Fallback != nil {
		early = func(err error) bool {
			v, ferr := c.Fallback(ctx, err)
			if ferr != nil {
				return false
			}
			out = v
			return true
		}
	}
	k := callKind{idempotent: c.idempotent(ctx), reads: c.reads(ctx), keys: c.Keys, early: early}
	err := c.Guard.run(ctx, k, func(ctx context.Context) error {
		v, err := fn(ctx)
		out = v
		return err
	})
	if err == errAnsweredEarly {
		c.Guard.m.fallbacks.Inc()
		return out, nil
	}
	if c.Fallback != nil && c.Guard.fallbackFor(ctx, err) {
		c.Guard.m.fallbacks.Inc()
		return c.Fallback(ctx, err)
	}
	return out, err
}

// idempotent reports whether the call may be repeated: as the Call says,
// or else as the method of the request served under ctx.
func (c Call[T]) idempotent(ctx context.Context) bool {
	if c.NotIdempotent {
		return false
	}
	return c.Idempotent || safeMethod(httpx.RequestMethod(ctx))
}

// reads reports whether the call only reads: as the Call says, or else as
// the method of the request served under ctx.
func (c Call[T]) reads(ctx context.Context) bool {
	return c.ReadOnly || (!c.NotIdempotent && safeMethod(httpx.RequestMethod(ctx)))
}

// safeMethod reports whether method is safe (RFC 9110, 9.2.1): a request
// with it changes nothing, so the calls that serve it read.
func safeMethod(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return true
	}
	return false
}

package httpx

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// RequestContext is the context a tier's edge gives a request: its ID and,
// when the tier bounds its requests, its deadline, in one allocation.
// context.WithTimeout would cost a context, a timer, the timer's closure
// and a place among the parent's children on every request; here the
// timer is armed only once something waits on Done (a call to another
// tier, a query), and until then Err reads the clock. A request answered
// from memory never arms it.
type RequestContext struct {
	context.Context
	ids [1]string // the ID, as a header value
	// method is the request's, once SetMethod recorded it: calls made
	// while serving a safe method may be repeated.
	method string

	deadline time.Time // zero: the parent's alone
	released atomic.Bool
	mu       sync.Mutex // arms once
	armed    atomic.Pointer[armedDeadline]
}

// armedDeadline is the context.WithDeadline a RequestContext defers to
// once armed, so that derived contexts join it as a parent's children do.
type armedDeadline struct {
	ctx    context.Context
	cancel context.CancelFunc
}

// NewRequestContext returns parent carrying the ID of the request with
// header h, the caller's or one made by generate (as AcceptRequestID
// chooses), and, unless deadline is zero, bounded by deadline. Call
// Release once the request is answered, as a CancelFunc.
func NewRequestContext(parent context.Context, h http.Header, generate func() string, deadline time.Time) *RequestContext {
	c := &RequestContext{Context: parent, deadline: deadline}
	if ids := h[HeaderRequestID]; len(ids) == 1 && ValidRequestID(ids[0]) {
		c.ids[0] = ids[0]
	} else {
		if generate == nil {
			generate = NewRequestID
		}
		c.ids[0] = generate()
	}
	return c
}

// SetMethod records the request's method, for RequestMethod. Call it
// before the context is shared.
func (c *RequestContext) SetMethod(method string) { c.method = method }

// ID returns the request's ID.
func (c *RequestContext) ID() string { return c.ids[0] }

// IDHeader returns the request's ID as a header value, to echo on the
// response without allocating.
func (c *RequestContext) IDHeader() []string { return c.ids[:] }

// Release ends the deadline's timer, if armed, and cancels the context,
// as the CancelFunc of context.WithTimeout does.
func (c *RequestContext) Release() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.released.Store(true)
	if a := c.armed.Load(); a != nil {
		a.cancel()
	}
}

// Deadline is the earlier of the context's deadline and its parent's.
func (c *RequestContext) Deadline() (time.Time, bool) {
	d, ok := c.Context.Deadline()
	if c.deadline.IsZero() || ok && d.Before(c.deadline) {
		return d, ok
	}
	return c.deadline, true
}

// Done arms the deadline: a channel must close when it passes.
func (c *RequestContext) Done() <-chan struct{} {
	if c.deadline.IsZero() {
		return c.Context.Done()
	}
	return c.arm().Done()
}

// Err reads the clock while the deadline is not armed; once it has passed,
// or the context was released, it arms it so that Err keeps its answer.
func (c *RequestContext) Err() error {
	if c.deadline.IsZero() {
		return c.Context.Err()
	}
	if a := c.armed.Load(); a != nil {
		return a.ctx.Err()
	}
	if err := c.Context.Err(); err != nil {
		return err
	}
	if !c.released.Load() && time.Now().Before(c.deadline) {
		return nil
	}
	return c.arm().Err()
}

// Value answers for the request ID, and asks the armed deadline, when
// there is one, so that context.Cause and derived contexts find it.
func (c *RequestContext) Value(key any) any {
	if _, ok := key.(requestIDKey); ok { // a type check, cheaper than comparing interfaces
		return c
	}
	if a := c.armed.Load(); a != nil {
		return a.ctx.Value(key)
	}
	return c.Context.Value(key)
}

// arm returns the deadline's context, made on the first call.
func (c *RequestContext) arm() context.Context {
	if a := c.armed.Load(); a != nil {
		return a.ctx
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if a := c.armed.Load(); a != nil {
		return a.ctx
	}
	ctx, cancel := context.WithDeadline(c.Context, c.deadline)
	if c.released.Load() {
		cancel()
	}
	c.armed.Store(&armedDeadline{ctx: ctx, cancel: cancel})
	return ctx
}

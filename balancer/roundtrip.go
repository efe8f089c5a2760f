package balancer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/threetier/threetier/tier"
)

// maxAttempts bounds Config.Retry.Attempts where it matters: the list of
// endpoints a request already tried lives on the stack.
const maxAttempts = 8

// RoundTrip sends r to an endpoint chosen by the policy, replacing the
// scheme and host of r.URL with the endpoint's (the Host header, when set,
// is kept). It retries on another endpoint when that is safe and the budget
// allows, and returns the last response or error. With no endpoint to send
// to it returns a *NoEndpointError. r is not modified.
//
// A request body streams to the endpoint as the caller supplies it; up to
// Retry.ReplayBytes of it is kept on the side so that the request can be
// sent again, and a larger body is not retried once a byte of it was sent.
//
// The deadline of r's context goes with each attempt, as what is left of
// it, in a tier.HeaderTimeout header; a retry that could not begin before
// the deadline, back-off included, is not made.
func (p *Pool) RoundTrip(r *http.Request) (*http.Response, error) {
	deadline, _ := r.Context().Deadline()
	resp, _, err := p.roundTrip(r, false, deadline)
	return resp, err
}

// roundTrip is RoundTrip; owned means r was made for this call (by the
// proxy), so that its first attempt goes out as it is, aimed at the
// endpoint, without a copy. For an owned request with a body it also
// returns that body, which the caller detaches before its handler returns.
// deadline (zero: none) is the request's, sent on with each attempt.
func (p *Pool) roundTrip(r *http.Request, owned bool, deadline time.Time) (*http.Response, *replayBody, error) {
	if r.URL == nil {
		if r.Body != nil {
			_ = r.Body.Close()
		}
		return nil, nil, errors.New("balancer: request has no URL")
	}
	view := (*stdRequest)(r)
	e, err := p.first(view)
	if err != nil {
		if r.Body != nil {
			_ = r.Body.Close()
		}
		return nil, nil, err
	}
	attempts := p.attempts()
	body := p.prepareBody(r, attempts > 1, owned)
	idempotent := isIdempotent(view)
	var tried [maxAttempts]*endpoint
	b, err := body.forAttempt(r, 0)
	if err != nil {
		return nil, body, err
	}
	for n := 0; ; n++ {
		tried[n] = e
		out := p.outgoing(r, e, b, n, owned, deadline)
		var span trace.Span
		if p.tracer != nil {
			out, span = p.tracer.start(out, e, n)
		}
		resp, err := p.send(e, out, r.Context())
		status := 0
		if err == nil {
			status = resp.StatusCode
		}
		if span != nil {
			endAttempt(span, status, err)
		}
		next := p.retryTarget(view, n, attempts, idempotent, body, status, err, tried[:n+1], deadline)
		if next != nil {
			// Take the body over now, before the last answer is dropped: if
			// the attempt still sending it went past what is kept, that
			// answer stands.
			nb, berr := body.forAttempt(r, n+1)
			if berr != nil {
				next = nil
			} else {
				b = nb
			}
		}
		if next == nil {
			body.finish(err != nil)
			return resp, body, err
		}
		if resp != nil {
			discard(resp.Body)
			p.log.DebugContext(r.Context(), "retrying", "endpoint", e.key, "status", resp.StatusCode, "next", next.key)
		} else {
			p.log.DebugContext(r.Context(), "retrying", "endpoint", e.key, "err", err, "next", next.key)
		}
		e = next
	}
}

// first begins a request on the pool: it counts toward the retry budget,
// and gets its first endpoint, or a *NoEndpointError.
func (p *Pool) first(r requestView) (*endpoint, error) {
	p.budget.Request(time.Now().Unix())
	e := p.pickFor(r, nil)
	if e == nil {
		p.metrics.noEndpoint.Add(1)
		return nil, &NoEndpointError{Pool: p.cfg.Name, RetryAfter: p.retryAfter()}
	}
	return e, nil
}

// attempts is how many times a request may be sent, at most.
func (p *Pool) attempts() int { return min(p.cfg.Retry.Attempts, maxAttempts) }

// replayer says whether a request's body can still be sent whole again.
type replayer interface{ replayable() bool }

// retryTarget returns the endpoint for the attempt after attempt n, whose
// answer was status (0 with err), or nil when the request is done: out of
// attempts, not safe to send again, not worth it, nobody left to try, no
// budget, or no time left before deadline (zero: none) once the back-off
// is waited.
func (p *Pool) retryTarget(r requestView, n, attempts int, idempotent bool, body replayer, status int, err error, tried []*endpoint, deadline time.Time) *endpoint {
	ctx := r.context()
	if n+1 >= attempts || ctx.Err() != nil || !fits(deadline, 0) {
		return nil
	}
	switch {
	case err != nil && (idempotent || neverSent(err)):
	case err == nil && idempotent && p.retryOn[min(status, len(p.retryOn)-1)]:
	default:
		return nil
	}
	if !body.replayable() {
		return nil
	}
	next := p.pickFor(r, tried)
	if next == nil || !p.allowRetry(ctx, n, deadline) {
		return nil
	}
	return next
}

// send makes one attempt on e and does the bookkeeping: in-flight counts
// until the response body is closed, latency, outlier detection.
func (p *Pool) send(e *endpoint, out *http.Request, caller context.Context) (*http.Response, error) {
	var cancel context.CancelFunc
	var timer *time.Timer
	if d := p.cfg.Retry.AttemptTimeout; d > 0 {
		var ctx context.Context
		ctx, cancel = context.WithCancel(caller)
		timer = time.AfterFunc(d, cancel)
		out = out.WithContext(ctx)
	}
	start := p.beginAttempt(e)
	resp, err := p.transport.RoundTrip(out)
	end := time.Now()
	if timer != nil && !timer.Stop() && caller.Err() == nil {
		// The attempt timed out, even if headers came in as it did: their
		// body is cut off with the attempt's context.
		if err == nil {
			_ = resp.Body.Close()
		}
		resp, err = nil, fmt.Errorf("%s after %s: %w", e.key, p.cfg.Retry.AttemptTimeout, ErrAttemptTimeout)
	}
	if err != nil {
		p.done(e, cancel)
		p.settle(e, start, end, attemptOutcome{err: err, callerGone: errors.Is(caller.Err(), context.Canceled)})
		return nil, err
	}
	p.settle(e, start, end, attemptOutcome{status: resp.StatusCode, leaving: leaving(resp), retryAfter: resp.Header.Get("Retry-After") != ""})
	resp.Body = p.track(e, resp.Body, cancel)
	return resp, nil
}

// beginAttempt counts an attempt on e in flight, until done, and returns
// when it began.
func (p *Pool) beginAttempt(e *endpoint) time.Time {
	e.inflight.Add(1)
	p.inflight.Add(1)
	e.requests.Add(1)
	return time.Now()
}

// attemptOutcome is what an attempt came to, as either engine reads it.
type attemptOutcome struct {
	status     int   // the final status; 0 with err
	err        error // the attempt failed without an answer
	retryAfter bool  // the answer carries Retry-After (a deliberate refusal, with 503)
	leaving    bool  // the endpoint said it is draining (httpx.DrainingHeader)
	callerGone bool  // the caller gave up (canceled): not the endpoint's fault
}

// settle does an attempt's bookkeeping once its answer's headers came (or
// it failed): latency, the drain signal, outlier detection, the
// endpoint's averages. The attempt stays in flight until done.
func (p *Pool) settle(e *endpoint, start, end time.Time, o attemptOutcome) {
	now := end.UnixNano()
	if now-p.clock.Load() > int64(time.Millisecond) {
		p.clock.Store(now)
	}
	p.metrics.observe(end.Sub(start))
	if o.err == nil && o.leaving {
		p.drained(e, now)
	}
	switch {
	case o.err != nil:
		// The caller giving up is not the endpoint's fault; its deadline
		// passing while the endpoint is silent is.
		if !o.callerGone {
			p.failed(e, now, o.err, false)
			e.record(-1, false, now)
		}
	case o.status >= 500:
		p.failed(e, now, nil, p.refusal(o.status, o.retryAfter))
		e.record(end.Sub(start), false, now)
	default:
		if !o.leaving {
			p.servedWhileEjected(e, start.UnixNano(), now)
		}
		p.succeeded(e, now)
		e.record(end.Sub(start), true, now)
	}
}

// done ends an attempt: it is no longer in flight, and its attempt
// context, if it has one, is released.
func (p *Pool) done(e *endpoint, cancel context.CancelFunc) {
	e.inflight.Add(-1)
	p.inflight.Add(-1)
	if cancel != nil {
		cancel()
	}
}

// track wraps a response body so that the attempt stays in flight until the
// body is read to its end or closed.
func (p *Pool) track(e *endpoint, b io.ReadCloser, cancel context.CancelFunc) io.ReadCloser {
	if b == nil || b == http.NoBody {
		p.done(e, cancel)
		return b
	}
	if rw, ok := b.(io.ReadWriteCloser); ok { // 101 Switching Protocols
		return &trackedRWBody{trackedBody: trackedBody{ReadCloser: b, pool: p, ep: e, cancel: cancel}, w: rw}
	}
	return &trackedBody{ReadCloser: b, pool: p, ep: e, cancel: cancel}
}

type trackedBody struct {
	io.ReadCloser
	pool   *Pool
	ep     *endpoint
	cancel context.CancelFunc
	once   atomic.Bool
}

func (b *trackedBody) Read(buf []byte) (int, error) {
	n, err := b.ReadCloser.Read(buf)
	if err != nil && b.once.CompareAndSwap(false, true) {
		b.pool.done(b.ep, b.cancel)
	}
	return n, err
}

func (b *trackedBody) Close() error {
	err := b.ReadCloser.Close()
	if b.once.CompareAndSwap(false, true) {
		b.pool.done(b.ep, b.cancel)
	}
	return err
}

type trackedRWBody struct {
	trackedBody
	w io.Writer
}

func (b *trackedRWBody) Write(p []byte) (int, error) { return b.w.Write(p) }

// outgoing is r aimed at e, with body b for the attempt, the request ID
// of r's context forwarded and what is left before deadline (zero: none)
// in tier.HeaderTimeout. The first attempt of an owned request is r
// itself.
func (p *Pool) outgoing(r *http.Request, e *endpoint, b io.ReadCloser, attempt int, owned bool, deadline time.Time) *http.Request {
	if owned && attempt == 0 {
		r.URL.Scheme, r.URL.Host = e.url.Scheme, e.url.Host
		r.Body = b
		if !deadline.IsZero() {
			r.Header[tier.HeaderTimeout] = []string{tier.FormatTimeout(time.Until(deadline))}
		}
		return r
	}
	// One allocation for the request and its URL.
	both := &struct {
		req http.Request
		url url.URL
	}{req: *r, url: *r.URL}
	out := &both.req
	both.url.Scheme, both.url.Host = e.url.Scheme, e.url.Host
	out.URL = &both.url
	out.Body = b
	id := tier.RequestID(r.Context())
	if id != "" && len(r.Header[tier.HeaderRequestID]) == 0 || !deadline.IsZero() {
		// The caller's header, or an earlier attempt's, which its
		// transport may still read, stays as it is.
		out.Header = r.Header.Clone()
		if out.Header == nil {
			out.Header = make(http.Header, 2)
		}
		if id != "" && len(r.Header[tier.HeaderRequestID]) == 0 {
			out.Header[tier.HeaderRequestID] = []string{id}
		}
		if !deadline.IsZero() {
			out.Header[tier.HeaderTimeout] = []string{tier.FormatTimeout(time.Until(deadline))}
		}
	}
	return out
}

// discard reads a little of a body that will not be used, so that its
// connection can be reused, and closes it.
func discard(b io.ReadCloser) {
	_, _ = io.CopyN(io.Discard, b, 4<<10)
	_ = b.Close()
}

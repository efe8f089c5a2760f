package balancer

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"syscall"
	"time"

	"github.com/threetier/threetier/internal/retry"
)

// isIdempotent reports whether r may be sent twice: its method is idempotent
// (RFC 9110) or it carries an Idempotency-Key.
func isIdempotent(r requestView) bool {
	switch r.method() {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	if _, ok := r.header("Idempotency-Key"); ok {
		return true
	}
	_, ok := r.header("X-Idempotency-Key")
	return ok
}

// neverSent reports whether err proves the request never reached the
// endpoint: the connection could not be made.
func neverSent(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	return errors.Is(err, syscall.ECONNREFUSED)
}

// allowRetry spends one retry from the budget and waits the back-off
// before the attempt after attempt n. It returns false when the attempt
// would begin too late for deadline (zero: none), the budget is spent,
// or r's context ends during the wait.
func (p *Pool) allowRetry(ctx context.Context, n int, deadline time.Time) bool {
	wait := retry.Backoff(p.cfg.Retry.Backoff, p.cfg.Retry.MaxBackoff, n)
	if !fits(deadline, wait) {
		return false
	}
	if !p.budget.Withdraw(time.Now().Unix()) {
		p.metrics.budgetExhausted.Add(1)
		return false
	}
	p.metrics.retries.Add(1)
	return retry.Sleep(ctx, wait)
}

// errStaleAttempt ends the body of an attempt that a retry replaced: its
// transport may still be reading while the next attempt has the body.
var errStaleAttempt = errors.New("balancer: request body taken by a retry")

// errNotReplayable refuses a retry whose body can no longer be sent whole.
var errNotReplayable = errors.New("balancer: request body no longer replayable")

// replayBody gives each attempt the request body as it arrives: the bytes
// earlier attempts read (kept up to Retry.ReplayBytes), then the rest
// straight from the caller. So a body streams upstream while the client
// sends it, and a request can be sent again as long as everything read so
// far was kept. Only the current attempt reads; a retry takes over the body
// from the attempt before it.
type replayBody struct {
	mu      sync.Mutex
	cond    sync.Cond // signalled when a read of src ends
	src     io.ReadCloser
	getBody func() (io.ReadCloser, error) // the caller's way to replay, when given
	limit   int64
	buf     []byte
	over    bool  // more than limit was read: no longer replayable
	err     error // what src last returned (io.EOF at the end); sticky
	reading bool  // an attempt is inside src.Read
	gen     int   // the attempt that owns the body
	// The request is over (final) once RoundTrip returns; src is closed
	// then, or when the final attempt's transport closes its body, which
	// may be later: the upload can go on after the response headers.
	final, curClosed, closed bool
	keepOpen                 bool // src is the server's to close
}

// prepareBody wraps r's body so that attempts can share and replay it. With
// no body, or when retries are off, the body goes to the transport as it
// is, unless the request is owned: an owned request's body is a server's
// inbound body, which the server closes itself once the answer is written.
// Closing it earlier would make net/http read it to its end, and a client
// waiting for 100 Continue never sends it.
func (p *Pool) prepareBody(r *http.Request, retries, owned bool) *replayBody {
	if r.Body == nil || r.Body == http.NoBody || !retries && !owned {
		return nil
	}
	if r.GetBody != nil && !owned {
		return &replayBody{getBody: r.GetBody}
	}
	b := &replayBody{src: r.Body, limit: p.cfg.Retry.ReplayBytes, keepOpen: owned}
	if r.ContentLength > b.limit || !retries {
		b.limit = 0 // too large to keep: replayable only until a byte is read
	}
	b.cond.L = &b.mu
	return b
}

// replayable reports whether the body can be sent again in full.
func (b *replayBody) replayable() bool {
	if b == nil || b.getBody != nil {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return !b.over && (b.err == nil || b.err == io.EOF)
}

// forAttempt returns the body of attempt n, taking it over from attempt n-1.
// A body the caller can replay itself (GetBody) goes to each attempt as the
// caller gives it, and each transport closes its own.
func (b *replayBody) forAttempt(r *http.Request, n int) (io.ReadCloser, error) {
	switch {
	case b == nil || b.getBody != nil && n == 0:
		return r.Body, nil
	case b.getBody != nil:
		return b.getBody()
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if n > 0 && (b.over || b.err != nil && b.err != io.EOF) {
		return nil, errNotReplayable
	}
	b.gen, b.curClosed = n, false
	return &attemptBody{b: b, gen: n}, nil
}

// finish marks the request over: src is closed now when the last attempt
// failed or its body is already closed, otherwise when it is.
func (b *replayBody) finish(failed bool) {
	if b == nil || b.getBody != nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.final = true
	if failed || b.curClosed {
		b.closeSrc()
	}
}

// detach takes the body away from every attempt, waiting for a read in
// progress to end. A server's inbound body must not be read once its
// handler has returned (net/http then reads the connection itself), and a
// transport may still be writing an upload when the answer is done.
func (b *replayBody) detach() {
	if b == nil || b.getBody != nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.gen = -1
	for b.reading {
		b.cond.Wait()
	}
}

// closeSrc closes the caller's body once; b.mu held.
func (b *replayBody) closeSrc() {
	if !b.closed && !b.keepOpen {
		b.closed = true
		_ = b.src.Close()
	}
}

// attemptBody is one attempt's view of a replayBody.
type attemptBody struct {
	b   *replayBody
	gen int
	pos int // bytes of b.buf this attempt has read
}

func (a *attemptBody) Read(p []byte) (int, error) {
	b := a.b
	b.mu.Lock()
	defer b.mu.Unlock()
	for {
		switch {
		case a.gen != b.gen:
			return 0, errStaleAttempt
		case a.pos < len(b.buf):
			n := copy(p, b.buf[a.pos:])
			a.pos += n
			return n, nil
		case b.err != nil:
			return 0, b.err
		case b.reading: // the attempt before this one is still reading
			b.cond.Wait()
			continue
		}
		b.reading = true
		b.mu.Unlock()
		n, err := b.src.Read(p)
		b.mu.Lock()
		b.reading = false
		b.cond.Broadcast()
		if err != nil {
			b.err = err
		}
		switch {
		case a.gen != b.gen:
			// A retry took the body over while this read was waiting: the
			// bytes are kept for it whatever the limit (one read more at
			// most), and past the limit no further retry is allowed.
			b.buf = append(b.buf, p[:n]...)
			b.over = b.over || int64(len(b.buf)) > b.limit
			return 0, errStaleAttempt
		case b.over:
		case int64(len(b.buf)+n) <= b.limit:
			b.buf = append(b.buf, p[:n]...)
			a.pos += n
		default:
			// Too much to keep: from here on the body goes through, once.
			// (What buf holds was read by this attempt already.)
			b.over, b.buf = true, nil
			a.pos = 0
		}
		return n, err
	}
}

func (a *attemptBody) Close() error {
	b := a.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if a.gen == b.gen {
		b.curClosed = true
		if b.final {
			b.closeSrc()
		}
	}
	return nil
}

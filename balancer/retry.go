package balancer

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"syscall"
	"time"

	"github.com/threetier/threetier/internal/retry"
)

// isIdempotent reports whether r may be sent twice: its method is idempotent
// (RFC 9110) or it carries an Idempotency-Key.
func isIdempotent(r *http.Request) bool {
	switch r.Method {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	return len(r.Header["Idempotency-Key"]) > 0 || len(r.Header["X-Idempotency-Key"]) > 0
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
// before the attempt after attempt n. It returns false when the budget is
// spent or r's context ends during the wait.
func (p *Pool) allowRetry(r *http.Request, n int) bool {
	if !p.budget.Withdraw(time.Now().Unix()) {
		p.metrics.budgetExhausted.Add(1)
		return false
	}
	p.metrics.retries.Add(1)
	return retry.Sleep(r.Context(), retry.Backoff(p.cfg.Retry.Backoff, p.cfg.Retry.MaxBackoff, n))
}

// replayBody gives each attempt its copy of the request body.
type replayBody struct {
	replayable bool
	buf        []byte // the whole body, when buffered
	getBody    func() (io.ReadCloser, error)
	first      io.ReadCloser // the body of the first attempt
	orig       io.ReadCloser // closed when the request is done
}

// prepareBody makes r's body replayable when it can be: no body, a body
// with GetBody, or one of at most Retry.MaxBodyBytes (read into memory). A
// larger body is streamed to the first endpoint and the request is not
// retried.
func (p *Pool) prepareBody(r *http.Request, retries bool) (replayBody, error) {
	switch {
	case r.Body == nil || r.Body == http.NoBody:
		return replayBody{replayable: true, first: r.Body}, nil
	case !retries:
		return replayBody{first: r.Body}, nil
	case r.GetBody != nil:
		return replayBody{replayable: true, first: r.Body, getBody: r.GetBody}, nil
	case r.ContentLength > p.cfg.Retry.MaxBodyBytes:
		return replayBody{first: r.Body}, nil
	}
	limit := p.cfg.Retry.MaxBodyBytes
	buf, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		_ = r.Body.Close()
		return replayBody{}, err
	}
	if int64(len(buf)) > limit {
		// Too big to keep: send what was read, then the rest, once.
		return replayBody{first: struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(buf), r.Body), r.Body}}, nil
	}
	return replayBody{replayable: true, buf: buf, orig: r.Body}, nil
}

func (b *replayBody) forAttempt(r *http.Request, n int) (io.ReadCloser, error) {
	switch {
	case b.buf != nil:
		return io.NopCloser(bytes.NewReader(b.buf)), nil
	case n == 0:
		return b.first, nil
	case b.getBody != nil:
		return b.getBody()
	}
	return b.first, nil // nil or NoBody
}

func (b *replayBody) close() {
	if b.orig != nil {
		_ = b.orig.Close()
	}
}

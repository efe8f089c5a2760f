package tier

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync/atomic"
	"time"
)

// bodyTimeout wraps a server's handler so that a request body must keep
// arriving: each read may wait at most timeout for its bytes (when timeout
// is positive). A body read that fails closes the connection after the
// answer: where the next request would begin is not known. It changes
// nothing for a request without a body, and copies no request.
type bodyTimeout struct {
	next    http.Handler
	timeout time.Duration // zero or negative: no deadline
	// readTimeout is the http.Server's ReadTimeout, which a body deadline
	// set here must not outlast.
	readTimeout time.Duration
	report      *limitReport
}

func (h *bodyTimeout) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// An HTTP/2 request without a body still has a Body, but a
	// ContentLength of 0 (HTTP/1's is NoBody then): arming its deadline
	// would cost a round trip through the connection's serve loop and a
	// timer, per stream.
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		h.next.ServeHTTP(w, r)
		return
	}
	b := &timedBody{
		ReadCloser: r.Body,
		h:          h,
		rc:         *http.NewResponseController(w),
		start:      time.Now(),
		expect:     r.ProtoMajor == 1 && r.Header.Get("Expect") != "",
	}
	if r.ProtoMajor == 1 { // an HTTP/2 connection carries other streams
		// Every HTTP/1 connection is read through its framingConn, and
		// the trackedConn is beneath it.
		if b.framing, _ = r.Context().Value(framingKey{}).(*framingConn); b.framing != nil {
			b.conn = tracked(b.framing)
		}
	}
	// Armed before the handler runs: net/http may discard the body before
	// writing the handler's answer, and that read must not wait forever.
	b.arm()
	r.Body = b
	h.next.ServeHTTP(w, r)
	// r is the request net/http holds: given its own body back, it judges
	// what is left of it as it would without this wrapper (it closes the
	// connection after a body that failed, for one).
	r.Body = b.ReadCloser
	b.finish()
}

// States of a timedBody.
const (
	bodyUnread int32 = iota
	bodyReading
	bodyDone     // read to its end; no deadline armed
	bodyTimedOut // a read timed out
)

// timedBody arms a read deadline before each read of the body beneath.
type timedBody struct {
	io.ReadCloser
	h      *bodyTimeout
	rc     http.ResponseController
	start  time.Time
	expect bool // HTTP/1.1 Expect: 100-continue
	state  atomic.Int32
	// framing reads the HTTP/1 connection for net/http (see framingConn);
	// nil over HTTP/2.
	framing *framingConn
	// conn is the HTTP/1 connection beneath, which counts the body
	// timeouts: net/http reads it for the body too, to discard what the
	// handler left unread, and that read bypasses the timedBody. Nil over
	// HTTP/2, where the timedBody counts its own.
	conn *trackedConn
}

func (b *timedBody) Read(p []byte) (int, error) {
	switch b.state.Load() {
	case bodyDone, bodyTimedOut:
		return b.ReadCloser.Read(p)
	case bodyUnread:
		b.state.Store(bodyReading)
	}
	b.arm()
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF && b.framing != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
		b.framing.closeAfter()
	}
	switch {
	case err == io.EOF:
		// From the end of the body net/http reads the connection in the
		// background, and a timeout there cancels the request's context:
		// no deadline of the body may outlive it.
		b.state.Store(bodyDone)
		_ = b.rc.SetReadDeadline(time.Time{})
	case errors.Is(err, os.ErrDeadlineExceeded):
		b.state.Store(bodyTimedOut)
		if b.conn == nil {
			b.h.report.bodyTimeouts.Add(1)
			b.h.report.hit()
		}
		err = fmt.Errorf("%w: %w", NewProblem(http.StatusRequestTimeout,
			fmt.Sprintf("the request body stopped arriving (nothing for %s)", b.h.timeout)), err)
	}
	return n, err
}

// arm sets the read deadline a timeout ahead, or at the server's
// ReadTimeout if that comes first.
func (b *timedBody) arm() {
	if b.h.timeout <= 0 {
		return
	}
	d := time.Now().Add(b.h.timeout)
	if rt := b.h.readTimeout; rt > 0 {
		d = minTime(d, b.start.Add(rt))
	}
	if b.conn != nil {
		_ = b.conn.setBodyDeadline(d)
	} else {
		_ = b.rc.SetReadDeadline(d)
	}
}

// finish bounds what net/http reads of the body once the handler is done:
// a fresh timeout to discard what the handler left unread, or none at all
// (the connection closes) when it cannot arrive: after a timeout, or when
// the client still waits for the 100 Continue it was never sent.
func (b *timedBody) finish() {
	switch st := b.state.Load(); {
	case st == bodyDone:
	case st == bodyTimedOut, st == bodyUnread && b.expect:
		_ = b.rc.SetReadDeadline(time.Now())
	default:
		b.arm()
	}
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

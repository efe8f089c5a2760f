package tier

import (
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"time"
)

// oneRequest is what a framingConn needs to feed an engine that serves
// plain requests only (fasthttp): such an engine gets
//
//   - only whole request heads: a head's bytes are held until it ends, so
//     that the engine never sees a head it must not serve;
//   - at most one request per Read, the next one only once it reads again:
//     an engine that flushes its answers when its read buffer runs dry has
//     then written every answer before the request it is given;
//   - nothing of a request it cannot serve as net/http would (see
//     needsFullEngine): its next Read ends with io.EOF instead, and when it
//     closes the connection, the connection goes, that request's bytes put
//     back in front, to handover, for the rest of its life.
type oneRequest struct {
	maxHead int // the longest head taken; a longer one is answered 431
	// headTimeout bounds a head from its first byte, as net/http's
	// ReadHeaderTimeout: the engine's own deadline starts only when it
	// gets the head, whole. Zero for none.
	headTimeout time.Duration
	// bodyTimeout bounds each read of a body that has not arrived with
	// its head, as Limits.BodyTimeout; zero or negative for none.
	bodyTimeout time.Duration
	conn        *trackedConn            // beneath, for the body deadline; nil for none
	handover    func(*framingConn) bool // false if the full engine cannot take the connection

	ready     int // bytes at the front of held the engine may have
	scanned   int // bytes at the front of held the framer has seen
	buf       []byte
	bodyArmed bool // a body deadline is set
	headArmed bool // the head being read has its deadline
}

// oneRequestBuffer is the first size of a connection's read buffer; it
// grows for a longer head, up to maxHead.
const oneRequestBuffer = 4 << 10

// needsFullEngine reports whether the request of head h must be left to
// net/http: fasthttp does not switch protocols as net/http's handlers do,
// answers Expect itself, and reads a whole body before calling its
// handler, which a chunked body or a large one must not need.
func needsFullEngine(h headSummary) bool {
	return h.upgrade || h.expect || h.chunked || h.contentLength > FastMaxBody
}

// newOneRequestConn returns c read through a framer for an engine of plain
// requests, as o says (its first fields set).
func newOneRequestConn(c net.Conn, report *limitReport, o *oneRequest) *framingConn {
	fc := newFramingConn(c, report)
	fc.one = o
	return fc
}

// readOne is Read for an engine of plain requests; c.mu is held.
func (c *framingConn) readOne(p []byte) (int, error) {
	o := c.one
	for {
		if o.ready > 0 {
			n := copy(p, c.held[:o.ready])
			c.held = c.held[n:]
			o.ready -= n
			o.scanned -= n
			return n, nil
		}
		if c.handing.Load() != handNone {
			return 0, io.EOF
		}
		if c.mode == framingClosed {
			// The answer is out: the engine closes the connection
			// without writing one of its own.
			c.linger()
			return 0, io.EOF
		}
		if o.scanned == len(c.held) {
			if err := c.readMore(); err != nil {
				return 0, err
			}
			continue
		}
		c.scanOne()
	}
}

// readMore reads the connection at the end of held.
func (c *framingConn) readMore() error {
	o := c.one
	switch {
	case o.buf == nil:
		o.buf = make([]byte, oneRequestBuffer)
		c.held = o.buf[:0]
	case len(c.held) == 0:
		c.held = o.buf[:0]
	case cap(c.held)-len(c.held) < oneRequestBuffer/4:
		// A head longer than what is left: move it to the front, or grow.
		if len(c.held)+oneRequestBuffer/4 > len(o.buf) {
			o.buf = make([]byte, 2*len(o.buf))
		}
		c.held = o.buf[:copy(o.buf, c.held)]
	}
	if c.f.inBody() && o.bodyTimeout > 0 && o.conn != nil {
		// A body must keep arriving, as on net/http (see timedBody): a
		// read that times out is counted by the connection.
		_ = o.conn.setBodyDeadline(time.Now().Add(o.bodyTimeout))
		o.bodyArmed = true
	}
	free := c.held[len(c.held):cap(c.held)]
	c.mu.Unlock()
	n, err := c.Conn.Read(free)
	c.mu.Lock()
	c.held = c.held[:len(c.held)+n]
	if n == 0 {
		return err
	}
	if !o.headArmed && !c.f.inBody() && o.headTimeout > 0 && o.conn != nil {
		_ = o.conn.SetReadDeadline(time.Now().Add(o.headTimeout))
		o.headArmed = true
	}
	return nil
}

// scanOne runs the framer over what it has not seen of held, up to the
// end of a request at most.
func (c *framingConn) scanOne() {
	o := c.one
	k, ev, err := c.f.scan(c.held[o.scanned:])
	o.scanned += k
	if err != nil {
		// Every answer before it is out: the engine reads only then.
		c.report.framing(err)
		c.answer(err)
		c.held = nil
		return
	}
	if head := ev&evHead != 0 || ev == evNone && !c.f.inBody(); head && o.scanned > o.maxHead {
		// held begins with the head (the requests before it are out).
		c.answer(&FramingError{Status: http.StatusRequestHeaderFieldsTooLarge, Reason: "the request head is too large"})
		c.held = nil
		return
	}
	if ev&evHead != 0 {
		c.heads++
		o.headArmed = false
		if needsFullEngine(c.f.last) {
			c.handing.Store(handPending)
			return
		}
	}
	if ev&evEnd != 0 && o.bodyArmed {
		// The engine sets its own deadline for what comes next.
		_ = o.conn.SetReadDeadline(time.Time{})
		o.bodyArmed = false
	}
	if ev&evEnd != 0 || c.f.inBody() {
		o.ready = o.scanned
	}
}

// States of a framingConn's hand-over to the full engine.
const (
	handNone    uint32 = iota
	handPending        // a request for the full engine is next: reads end, Close hands the connection over
	handDone           // the full engine serves the connection: this one no longer reads nor closes it
)

// Close closes the connection, or hands it over to the full engine when
// a request the engine of plain requests cannot serve is next.
func (c *framingConn) Close() error {
	if !c.handing.CompareAndSwap(handPending, handDone) {
		if c.handing.Load() == handDone {
			return nil
		}
		return c.Conn.Close()
	}
	// The engine reads no more (its reads end at once now): held is
	// what is left of the stream, from the head of the request handed
	// over.
	c.mu.Lock()
	rest := c.held
	c.held = nil
	c.mu.Unlock()
	// The full engine sets the deadlines it wants; one left from the
	// engine before must not cut it.
	_ = c.Conn.SetDeadline(time.Time{})
	next := newFramingConn(c.Conn, c.report)
	next.held = rest
	if !c.one.handover(next) {
		return c.Conn.Close()
	}
	return nil
}

// handedOver reports whether the connection has gone to the full engine:
// what the engine before reports of it no longer holds.
func (c *framingConn) handedOver() bool { return c.handing.Load() == handDone }

// oneRequestTLSConn is a TLS connection fed to an engine of plain
// requests: it has the methods by which fasthttp knows a TLS connection
// (RequestCtx.IsTLS, TLSConnectionState); the handshake is done.
type oneRequestTLSConn struct {
	*framingConn
	tls *tls.Conn
}

func (c oneRequestTLSConn) Handshake() error                     { return nil }
func (c oneRequestTLSConn) ConnectionState() tls.ConnectionState { return c.tls.ConnectionState() }

// asFraming returns the framingConn c is, or nil.
func asFraming(c net.Conn) *framingConn {
	switch c := c.(type) {
	case *framingConn:
		return c
	case oneRequestTLSConn:
		return c.framingConn
	}
	return nil
}

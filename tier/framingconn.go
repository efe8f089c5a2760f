package tier

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// framingConn puts the framer between a client connection and net/http's
// HTTP/1.1 server, which reads the connection only through it:
//
//   - a request head the framer rejects is answered here, with a
//     problem+json and Connection: close, once the requests before it on
//     the connection have been answered; net/http never reads it, nor
//     anything after it;
//   - a body whose framing breaks fails its handler's read with a
//     *FramingError, and the connection closes after the answer;
//   - after a request that asks to switch protocols, what follows is held
//     back until net/http either hands the connection over (then it flows
//     as it is) or answers without switching (then it is read as requests).
//
// net/http itself keeps a connection after a body error once a handler has
// asked for full duplex, and reads bytes after a broken chunk as the next
// request: that is the smuggling this closes.
type framingConn struct {
	net.Conn
	report *limitReport

	// Only one Read runs at a time (net/http's reader or, after a hijack,
	// the handler's), and net/http changes the connection's state only
	// while none runs; mu orders them for the race detector.
	mu      sync.Mutex
	f       *framer
	mode    framingMode
	held    []byte        // bytes read but held back (see framingHold), or taken from it but not yet scanned
	heads   int           // request heads passed to net/http
	idles   int           // answers net/http finished
	reject  *FramingError // a head error, answered once the requests before it are
	bodyErr *FramingError // a body error, for every Read until the answer is out
	failed  *FramingError // the body error of the request in flight, for its handler to find
	drained bool
	// one, when set, makes the connection feed an engine that serves
	// plain requests only (see oneRequest); nil for net/http.
	one *oneRequest
	// handing is how far the connection is in going over to the full
	// engine (see oneRequest); atomic, for Close and the engine's state
	// hook, which must not wait on a Read.
	handing atomic.Uint32
}

type framingMode uint8

const (
	framingParse   framingMode = iota // bytes go through the framer
	framingHold                       // after an upgrade request: bytes are held until net/http decides
	framingDiscard                    // the connection is done with requests: bytes are dropped until the answers in flight are out
	framingClosed                     // nothing more is read
	framingPass                       // hijacked: bytes flow as they are
)

// maxHeld bounds what a client may send after an upgrade request before
// the answer: a WebSocket client sends nothing before it, so more is abuse.
const maxHeld = 64 << 10

// errFramingClosed ends a connection whose framing failed. It is a read
// error of the kind net/http drops a connection for without writing
// anything: the client has its answer already.
var errFramingClosed = &net.OpError{Op: "read", Net: "tcp", Err: errors.New("the connection's request framing failed")}

func newFramingConn(c net.Conn, report *limitReport) *framingConn {
	return &framingConn{Conn: c, f: newFramer(), report: report}
}

// NetConn returns the connection beneath, as tls.Conn's does.
func (c *framingConn) NetConn() net.Conn { return c.Conn }

func (c *framingConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.one != nil && c.mode != framingPass {
		return c.readOne(p)
	}
	for {
		switch c.mode {
		case framingPass:
			if len(c.held) > 0 {
				n := copy(p, c.held)
				c.held = c.held[n:]
				return n, nil
			}
			c.mu.Unlock()
			n, err := c.Conn.Read(p)
			c.mu.Lock()
			return n, err
		case framingClosed:
			c.linger()
			return 0, errFramingClosed
		case framingDiscard, framingHold:
			if err := c.readAside(p); err != nil {
				return 0, err
			}
			continue
		}
		if e := c.bodyErr; e != nil {
			// Every read fails alike until the answer is out: a reader that
			// only peeked (a trailer's line folding check) must not take
			// the error away from the body.
			return 0, e
		}
		var n int
		fromHeld := len(c.held) > 0
		if fromHeld {
			n = copy(p, c.held)
		} else {
			var err error
			c.mu.Unlock()
			n, err = c.Conn.Read(p)
			c.mu.Lock()
			if n == 0 {
				return 0, err
			}
		}
		deliver, done := c.scan(p[:n])
		if fromHeld {
			c.held = c.held[done:]
		} else if done < n && c.mode == framingHold {
			c.held = append(c.held, p[done:n]...)
		}
		if deliver > 0 {
			return deliver, nil
		}
		// Nothing to give: the loop answers, holds or drops as the mode now says.
	}
}

// scan runs the framer over p, which net/http is about to get. It returns
// how many bytes of p net/http may have and how many the framer is done
// with (the rest is held, when the mode says so, or dropped).
func (c *framingConn) scan(p []byte) (deliver, done int) {
	off, start := 0, 0 // start: where the request being read began in p
	for off < len(p) {
		k, ev, err := c.f.scan(p[off:])
		off += k
		if ev&evHead != 0 {
			c.heads++
		}
		if ev&evEnd != 0 {
			start = off
			if c.f.switching {
				c.mode = framingHold
				return off, off
			}
		}
		if err == nil {
			continue
		}
		c.report.framing(err)
		if c.f.inBody() {
			// The bytes before the break are the body's: the handler gets
			// them, then the error.
			c.bodyErr, c.failed = err, err
			return off, len(p)
		}
		c.mode = framingDiscard
		if c.heads > c.idles {
			// Requests before this one are being answered: this one is,
			// when they are (see idle).
			c.reject = err
			return start, len(p)
		}
		c.answer(err)
		return 0, len(p)
	}
	return len(p), len(p)
}

// readAside reads the connection without giving net/http anything, so
// that its reads still end with the client or with a deadline: into held
// when holding, else to drop.
func (c *framingConn) readAside(scratch []byte) error {
	buf := scratch
	if c.mode == framingHold {
		if len(c.held) >= maxHeld {
			c.mode = framingClosed
			return errFramingClosed
		}
		if cap(c.held)-len(c.held) < 4<<10 {
			c.held = append(c.held, make([]byte, 4<<10)...)[:len(c.held)]
		}
		buf = c.held[len(c.held):cap(c.held)]
	}
	c.mu.Unlock()
	n, err := c.Conn.Read(buf)
	c.mu.Lock()
	if c.mode == framingHold {
		c.held = c.held[:len(c.held)+n]
	}
	return err
}

// answer writes the problem for a rejected head and ends the connection.
// It runs only when no answer is being written: nothing else writes.
func (c *framingConn) answer(e *FramingError) {
	c.mode = framingClosed
	c.reject = nil
	p := NewProblem(e.Status, e.Reason)
	body, _ := json.Marshal(p)
	head := "HTTP/1.1 " + strconv.Itoa(e.Status) + " " + http.StatusText(e.Status) +
		"\r\nContent-Type: " + ContentTypeProblem +
		"\r\nContent-Length: " + strconv.Itoa(len(body)) +
		"\r\nConnection: close\r\n"
	if e.Status == http.StatusMethodNotAllowed {
		head += "Allow: GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS\r\n"
	}
	_, _ = c.Conn.Write(append([]byte(head+"\r\n"), body...))
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
}

// linger reads what the client still sends, for a moment, before the
// connection closes: closed with unread bytes, it would be reset, and the
// reset can destroy the answer before the client reads it.
func (c *framingConn) linger() {
	if c.drained {
		return
	}
	c.drained = true
	_ = c.Conn.SetReadDeadline(time.Now().Add(lingerTime))
	buf := make([]byte, 4<<10)
	for total := 0; total < maxLinger; {
		c.mu.Unlock()
		n, err := c.Conn.Read(buf)
		c.mu.Lock()
		total += n
		if err != nil {
			return
		}
	}
}

// How long and how much linger reads before a rejected connection closes.
const (
	lingerTime = 500 * time.Millisecond // as net/http waits after its own errors
	maxLinger  = 256 << 10
)

// closeAfter ends the connection after the answer in flight: its framing
// is no longer known (a body read failed where net/http, not the framer,
// found the fault: a chunked body over its limit of extensions, say).
func (c *framingConn) closeAfter() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.failed == nil {
		c.failed = &FramingError{Status: http.StatusBadRequest, Reason: "malformed request body"}
	}
	if c.mode == framingParse || c.mode == framingHold {
		c.mode = framingDiscard
		c.held = nil
	}
}

// stateChanged follows net/http's view of the connection.
func (c *framingConn) stateChanged(st http.ConnState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch st {
	case http.StateIdle:
		c.idles++
		c.failed = nil
		if c.bodyErr != nil {
			c.bodyErr, c.mode = nil, framingClosed
			return
		}
		switch c.mode {
		case framingHold:
			c.mode = framingParse // no switch: what was held is the next request
		case framingDiscard:
			if c.idles < c.heads {
				return // pipelined requests before the rejected one are still to answer
			}
			if c.reject != nil {
				c.answer(c.reject)
				return
			}
			c.mode = framingClosed
		}
	case http.StateHijacked:
		c.mode = framingPass
	}
}

// framingState returns an http.Server.ConnState that tells each
// connection's framingConn its state, then calls next if any.
func framingState(next func(net.Conn, http.ConnState)) func(net.Conn, http.ConnState) {
	return func(c net.Conn, st http.ConnState) {
		if fc := asFraming(c); fc != nil {
			fc.stateChanged(st)
		}
		if next != nil {
			next(c, st)
		}
	}
}

// framingKey holds a request's framingConn in its context.
type framingKey struct{}

// framingContext returns an http.Server.ConnContext that puts the
// connection's framingConn in its requests' contexts, then calls next if any.
func framingContext(next func(context.Context, net.Conn) context.Context) func(context.Context, net.Conn) context.Context {
	return func(ctx context.Context, c net.Conn) context.Context {
		if fc, ok := c.(*framingConn); ok {
			ctx = context.WithValue(ctx, framingKey{}, fc)
		}
		if next != nil {
			ctx = next(ctx, c)
		}
		return ctx
	}
}

// BodyFramingError returns the *FramingError that broke r's body, or nil
// when its framing held (or r did not come on an HTTP/1.1 listener of
// this package). net/http closes the connection after a body that failed,
// unless the handler enabled full duplex (http.ResponseController): such
// a handler must answer it with Connection: close, or what net/http
// buffered past the failure is read as the next request. The front door
// answers it 400 so.
func BodyFramingError(r *http.Request) error {
	fc, ok := r.Context().Value(framingKey{}).(*framingConn)
	if !ok {
		return nil
	}
	fc.mu.Lock()
	defer fc.mu.Unlock()
	if fc.failed == nil {
		return nil
	}
	return fc.failed
}

// ReadFrom keeps sendfile for responses: writes are not the framer's.
func (c *framingConn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{c.Conn}, r)
}

// CloseWrite lets net/http half-close after an error answer.
func (c *framingConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}

// SyscallConn gives socket options (TCP_CORK) the descriptor beneath.
func (c *framingConn) SyscallConn() (syscall.RawConn, error) {
	if sc, ok := c.Conn.(syscall.Conn); ok {
		return sc.SyscallConn()
	}
	return nil, errors.ErrUnsupported
}

package tier

import (
	"errors"
	"io"
	"math"
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"time"
)

// sendChunk is the most one write hands the kernel under one send
// deadline: a client must take this much per SendTimeout to keep a
// response going.
const sendChunk = 64 << 10

// maxFileChunk is the most one sendfile call may send under one deadline.
// A file's chunks start at sendChunk and double while each goes out in a
// small part of SendTimeout, so that a client that keeps up costs a few
// system calls per file rather than one per 64 KiB, and one that slows
// down gets smaller chunks again.
const maxFileChunk = 1 << 20

// trackedConn is an accepted connection as the server's limits see it: it
// notes when bytes last moved either way, bounds every write by
// SendTimeout, and can be closed to make room for another.
type trackedConn struct {
	net.Conn
	set *connSet

	index    int          // position in set.conns, under set.mu
	state    atomic.Int32 // the http.ConnState net/http last reported
	progress atomic.Int64 // set.now() when bytes last moved
	userSend atomic.Int64 // the write deadline net/http or a handler set, as set.now(); 0 for none
	armedAt  atomic.Int64 // set.now() when the send deadline was last armed
	closed   atomic.Bool
	// bodyRead is set while the read deadline in force is a request
	// body's (see timedBody): a read that times out then is a body
	// timeout, whoever reads, the handler or net/http discarding what the
	// handler left unread.
	bodyRead atomic.Bool
}

var (
	_ io.ReaderFrom                   = (*trackedConn)(nil)
	_ syscall.Conn                    = (*trackedConn)(nil)
	_ interface{ CloseWrite() error } = (*trackedConn)(nil)
)

func (c *trackedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.progress.Store(c.set.now())
	}
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) && c.bodyRead.CompareAndSwap(true, false) {
		c.set.report.bodyTimeouts.Add(1)
		c.set.report.hit()
	}
	return n, err
}

// SetReadDeadline is a deadline of net/http's own (headers, idle) or one
// set to end a read at once: a read it ends is no body timeout.
func (c *trackedConn) SetReadDeadline(t time.Time) error {
	c.bodyRead.Store(false)
	return c.Conn.SetReadDeadline(t)
}

// setBodyDeadline sets a request body's read deadline: a read it ends
// counts as a body timeout.
func (c *trackedConn) setBodyDeadline(t time.Time) error {
	err := c.Conn.SetReadDeadline(t)
	c.bodyRead.Store(true)
	return err
}

// Write writes p a chunk at a time, each under a fresh send deadline, so
// that a client taking the response slowly but steadily is never cut.
func (c *trackedConn) Write(p []byte) (int, error) {
	if c.set.sendTimeout <= 0 {
		n, err := c.Conn.Write(p)
		c.moved(int64(n))
		return n, err
	}
	var total int
	for len(p) > 0 {
		c.armSend()
		n, err := c.Conn.Write(p[:min(len(p), sendChunk)])
		total += n
		p = p[n:]
		c.moved(int64(n))
		if err != nil {
			c.sendFailed(err)
			return total, err
		}
	}
	return total, nil
}

// ReadFrom sends src through the connection's own ReadFrom (sendfile for
// a file) a chunk at a time, each under a fresh send deadline.
// TCPConn.ReadFrom sees through one *io.LimitedReader around an *os.File,
// so a limited src is chunked over its R rather than wrapped again.
func (c *trackedConn) ReadFrom(src io.Reader) (int64, error) {
	rf, ok := c.Conn.(io.ReaderFrom)
	if !ok {
		return io.Copy(writeOnly{c}, src)
	}
	if c.set.sendTimeout <= 0 {
		n, err := rf.ReadFrom(src)
		c.moved(n)
		return n, err
	}
	remain := int64(math.MaxInt64)
	lr, limited := src.(*io.LimitedReader)
	if limited {
		src, remain = lr.R, lr.N
	}
	chunk := &io.LimitedReader{R: src}
	var total int64
	var err error
	size := int64(sendChunk)
	for remain > 0 {
		chunk.N = min(remain, size)
		want := chunk.N
		c.armSend()
		start := c.set.now()
		var n int64
		n, err = rf.ReadFrom(chunk)
		total += n
		remain -= n
		c.moved(n)
		if err != nil {
			c.sendFailed(err)
			break
		}
		if n < want { // src has ended
			break
		}
		switch took := c.set.now() - start; {
		case took < int64(c.set.sendTimeout/64) && size < maxFileChunk:
			size *= 2
		case took > int64(c.set.sendTimeout/4) && size > sendChunk:
			size /= 2
		}
	}
	if limited {
		lr.N = remain
	}
	return total, err
}

// writeOnly hides ReadFrom, so that io.Copy falls back to Write.
type writeOnly struct{ io.Writer }

func (c *trackedConn) moved(n int64) {
	if n > 0 {
		c.progress.Store(c.set.now())
	}
}

// armSend sets the write deadline SendTimeout ahead (or the user's, if
// sooner). Re-arming is skipped while the deadline armed last is still
// most of SendTimeout away: a busy keep-alive connection does not churn
// the timer on every small write.
func (c *trackedConn) armSend() {
	now := c.set.now()
	if a := c.armedAt.Load(); a != 0 && now-a < int64(c.set.sendTimeout/16) {
		return
	}
	c.armedAt.Store(now)
	_ = c.Conn.SetWriteDeadline(c.set.at(c.sendDeadline(now)))
}

func (c *trackedConn) sendDeadline(now int64) int64 {
	d := now + int64(c.set.sendTimeout)
	if u := c.userSend.Load(); u != 0 && u < d {
		d = u
	}
	return d
}

// sendFailed counts a write that timed out on SendTimeout rather than on a
// deadline the user set.
func (c *trackedConn) sendFailed(err error) {
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		return
	}
	if u := c.userSend.Load(); u != 0 && u <= c.set.now() {
		return
	}
	c.set.report.sendTimeouts.Add(1)
	c.set.report.hit()
	c.resetOnClose()
}

// resetOnClose makes Close drop what the client has not taken, with a
// reset, rather than leave the kernel holding it for a client that does
// not read (nginx's reset_timedout_connection).
func (c *trackedConn) resetOnClose() {
	if l, ok := c.Conn.(interface{ SetLinger(int) error }); ok {
		_ = l.SetLinger(0)
	}
}

// SetWriteDeadline keeps t as the user's deadline: the send deadline never
// runs past it.
func (c *trackedConn) SetWriteDeadline(t time.Time) error {
	if c.set.sendTimeout <= 0 {
		return c.Conn.SetWriteDeadline(t)
	}
	var u int64
	if !t.IsZero() {
		if u = int64(t.Sub(c.set.epoch)); u == 0 {
			u = -1 // 0 means none
		}
	}
	c.userSend.Store(u)
	now := c.set.now()
	c.armedAt.Store(now)
	return c.Conn.SetWriteDeadline(c.set.at(c.sendDeadline(now)))
}

func (c *trackedConn) SetDeadline(t time.Time) error {
	return errors.Join(c.SetReadDeadline(t), c.SetWriteDeadline(t))
}

// Close closes the connection and frees its place under MaxConns.
func (c *trackedConn) Close() error {
	if c.closed.CompareAndSwap(false, true) {
		c.set.remove(c)
	}
	return c.Conn.Close()
}

// CloseWrite lets net/http half-close after an error answer, so that the
// client reads it before the connection goes.
func (c *trackedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}

// SyscallConn gives socket options (TCP_CORK) the descriptor beneath.
func (c *trackedConn) SyscallConn() (syscall.RawConn, error) {
	if sc, ok := c.Conn.(syscall.Conn); ok {
		return sc.SyscallConn()
	}
	return nil, errors.ErrUnsupported
}

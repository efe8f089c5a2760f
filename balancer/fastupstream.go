package balancer

import (
	"bufio"
	"crypto/tls"
	"errors"
	"net"
	"net/url"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// fastReadBuffer is the size of an upstream connection's read buffer on
// the fast path, which bounds a response's header block (HAProxy's
// tune.bufsize).
const fastReadBuffer = 16 << 10

// fastUpstream is the pool's connections to its endpoints as the fast path
// uses them: HTTP/1.1 keep-alive connections (TLS for https:// endpoints,
// with the pool's settings), written with the request's bytes and read
// with fasthttp's parser on the caller's goroutine. It keeps the idle
// connections the way the pool's own transport does (h1Host) and holds no
// goroutine.
type fastUpstream struct {
	dialer     net.Dialer
	tls        *tls.Config // for https:// endpoints; ServerName filled per host when empty
	handshake  time.Duration
	hosts      sync.Map // host:port → *h1Host
	unsafeIdle time.Duration
}

func newFastUpstream(connectTimeout time.Duration, serverName string) *fastUpstream {
	return &fastUpstream{
		dialer:     net.Dialer{Timeout: connectTimeout, KeepAlive: 30 * time.Second},
		tls:        &tls.Config{ServerName: serverName, MinVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"}},
		handshake:  connectTimeout,
		unsafeIdle: h1UnsafeIdle,
	}
}

// closeIdle closes the idle connections.
func (u *fastUpstream) closeIdle() { closeIdleHosts(&u.hosts) }

func (u *fastUpstream) host(addr string) *h1Host {
	if v, ok := u.hosts.Load(addr); ok {
		return v.(*h1Host)
	}
	v, _ := u.hosts.LoadOrStore(addr, &h1Host{})
	return v.(*h1Host)
}

// endpointAddr is the host:port to dial for e.
func endpointAddr(u *url.URL) string {
	if u.Port() != "" {
		return u.Host
	}
	if u.Scheme == "https" {
		return net.JoinHostPort(u.Hostname(), "443")
	}
	return net.JoinHostPort(u.Hostname(), "80")
}

// exchange sends wire (a whole request) to e and reads the response header
// into res, handing each informational response but 101 to relay. It
// returns the connection the body is to be read from. A kept connection
// that the endpoint had closed while idle is replaced, once, by a new one
// when the request was not written, or when no answer came and sending it
// twice is harmless (replayable).
func (u *fastUpstream) exchange(e *endpoint, wire []byte, res *fasthttp.Response, deadline time.Time, replayable bool, relay func(*fasthttp.ResponseHeader) error) (*h1Conn, error) {
	addr := endpointAddr(e.url)
	h := u.host(addr)
	maxIdle := h1IdleTimeout
	if !replayable {
		maxIdle = u.unsafeIdle
	}
	for fresh := false; ; fresh = true {
		var pc *h1Conn
		if !fresh {
			// A request that cannot be sent again goes only on a
			// connection seen open just now, however recently it was
			// used: it costs a system call, which the request the
			// endpoint never got would cost far more.
			pc = h.get(time.Now(), maxIdle, !replayable)
		}
		if pc == nil {
			var err error
			if pc, err = u.dial(e, h, addr, deadline); err != nil {
				return nil, err
			}
		}
		stale, err := u.send(pc, wire, res, deadline, relay)
		if err == nil {
			return pc, nil
		}
		_ = pc.conn.Close()
		again := stale == h1NotWritten || stale == h1NoAnswer && replayable
		if !again || !pc.reused || fresh || isTimeout(err) {
			return nil, err
		}
		h.closeIdleSince(pc.idleAt)
	}
}

// dial connects to addr, with TLS for an https endpoint; its errors are
// *net.OpError with Op "dial" when no connection was made, which tells
// the pool the request was never sent.
func (u *fastUpstream) dial(e *endpoint, h *h1Host, addr string, deadline time.Time) (*h1Conn, error) {
	d := u.dialer
	if !deadline.IsZero() {
		d.Deadline = deadline
	}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	if e.url.Scheme == "https" {
		cfg := u.tls
		if cfg.ServerName == "" {
			cfg = cfg.Clone()
			cfg.ServerName = e.url.Hostname()
		}
		tc := tls.Client(c, cfg)
		hd := time.Now().Add(u.handshake)
		if !deadline.IsZero() && deadline.Before(hd) {
			hd = deadline
		}
		_ = c.SetDeadline(hd)
		if err := tc.Handshake(); err != nil {
			_ = c.Close()
			return nil, &net.OpError{Op: "dial", Net: "tcp", Addr: c.RemoteAddr(), Err: err}
		}
		c = tc
	}
	pc := &h1Conn{conn: c, host: h, r: h1Reader{conn: c, limit: -1}}
	pc.br = bufio.NewReaderSize(&pc.r, fastReadBuffer)
	return pc, nil
}

// send writes wire on pc and reads the final response header into res.
// stale reports a failure before any byte of the answer came.
func (u *fastUpstream) send(pc *h1Conn, wire []byte, res *fasthttp.Response, deadline time.Time, relay func(*fasthttp.ResponseHeader) error) (h1Failure, error) {
	if err := pc.conn.SetDeadline(deadline); err != nil {
		return h1NotWritten, err
	}
	pc.r.n = 0
	res.Header.SetNoDefaultContentType(true) // an answer without one gets none
	if _, err := pc.conn.Write(wire); err != nil {
		return h1NotWritten, err
	}
	for n1xx := 0; ; n1xx++ {
		if err := res.Header.Read(pc.br); err != nil {
			if pc.r.n == 0 {
				return h1NoAnswer, err
			}
			return h1Failed, err
		}
		code := res.Header.StatusCode()
		if code < 100 || code > 199 {
			// The deadline bounds the wait for the answer's header only;
			// its body may stream for as long as it lasts.
			return h1Failed, pc.conn.SetDeadline(time.Time{})
		}
		if code == fasthttp.StatusSwitchingProtocols {
			return h1Failed, errH1Upgrade
		}
		if n1xx == h1Max1xx {
			return h1Failed, errH1Too1xx
		}
		if err := relay(&res.Header); err != nil {
			return h1Failed, err
		}
	}
}

// release ends the use of pc for one exchange: kept for the next when the
// answer was read to its end and both sides keep the connection, closed
// otherwise.
func (pc *h1Conn) release(keep bool) {
	if !keep {
		_ = pc.conn.Close()
		return
	}
	_ = pc.conn.SetDeadline(time.Time{})
	pc.reused = true
	pc.host.put(pc, time.Now())
}

// isTimeout reports whether err is a deadline passing on a connection.
func isTimeout(err error) bool {
	return errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, fasthttp.ErrTimeout)
}

// appendInformational appends an informational response as the client
// gets it: the status line and its end-to-end headers.
func appendInformational(dst []byte, h *fasthttp.ResponseHeader) []byte {
	code := h.StatusCode()
	dst = append(dst, "HTTP/1.1 "...)
	dst = strconv.AppendInt(dst, int64(code), 10)
	dst = append(dst, ' ')
	dst = append(dst, fasthttp.StatusMessage(code)...)
	dst = append(dst, "\r\n"...)
	connection := b2s(h.Peek("Connection"))
	for k, v := range h.All() {
		if name := b2s(k); responseHeaderKept(name) && name != "Content-Length" && !listedIn(connection, name) {
			dst = appendHeaderLine(dst, k, v)
		}
	}
	return append(dst, "\r\n"...)
}

func appendHeaderLine(dst, name, value []byte) []byte {
	dst = append(dst, name...)
	dst = append(dst, ": "...)
	dst = append(dst, value...)
	return append(dst, "\r\n"...)
}

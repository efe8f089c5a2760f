package h1

import (
	"bufio"
	"crypto/tls"
	"errors"
	"net"
	"net/url"
	"os"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// readBuffer is the size of an upstream connection's read buffer on
// the fast path, which bounds a response's header block (HAProxy's
// tune.bufsize).
const readBuffer = 16 << 10

// Upstream is a pool's connections to its endpoints as the fast engine
// uses them: HTTP/1.1 keep-alive connections (TLS for https:// endpoints,
// with the pool's settings), written with the request's bytes and read
// with fasthttp's parser on the caller's goroutine. It keeps the idle
// connections the way Transport does (hostConns) and holds no goroutine.
type Upstream struct {
	dialer net.Dialer
	// TLS is for https:// endpoints; ServerName is filled per host when
	// empty.
	TLS        *tls.Config
	handshake  time.Duration
	hosts      sync.Map // host:port → *hostConns
	unsafeIdle time.Duration
}

// NewUpstream returns an Upstream that connects within connectTimeout (the
// TLS handshake included) and verifies https:// endpoints against
// serverName, or each endpoint's own host name when it is empty.
func NewUpstream(connectTimeout time.Duration, serverName string) *Upstream {
	return &Upstream{
		dialer:     net.Dialer{Timeout: connectTimeout, KeepAlive: 30 * time.Second},
		TLS:        &tls.Config{ServerName: serverName, MinVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"}},
		handshake:  connectTimeout,
		unsafeIdle: defaultUnsafeIdle,
	}
}

// CloseIdle closes the idle connections.
func (u *Upstream) CloseIdle() { closeIdleHosts(&u.hosts) }

func (u *Upstream) host(addr string) *hostConns {
	if v, ok := u.hosts.Load(addr); ok {
		return v.(*hostConns)
	}
	v, _ := u.hosts.LoadOrStore(addr, &hostConns{})
	return v.(*hostConns)
}

// endpointAddr is the host:port to dial for u.
func endpointAddr(u *url.URL) string {
	if u.Port() != "" {
		return u.Host
	}
	if u.Scheme == "https" {
		return net.JoinHostPort(u.Hostname(), "443")
	}
	return net.JoinHostPort(u.Hostname(), "80")
}

// Exchange sends wire (a whole request) to the endpoint at target and
// reads the response header into res, handing each informational response
// but 101 to relay. It returns the connection the body is to be read from
// (Reader), to Release once it is. A kept connection
// that the endpoint had closed while idle is replaced, once, by a new one
// when the request was not written, or when no answer came and sending it
// twice is harmless (replayable).
func (u *Upstream) Exchange(target *url.URL, wire []byte, res *fasthttp.Response, deadline time.Time, replayable bool, relay func(*fasthttp.ResponseHeader) error) (*Conn, error) {
	addr := endpointAddr(target)
	h := u.host(addr)
	maxIdle := idleTimeout
	if !replayable {
		maxIdle = u.unsafeIdle
	}
	for fresh := false; ; fresh = true {
		var pc *Conn
		if !fresh {
			// A request that cannot be sent again goes only on a
			// connection seen open just now, however recently it was
			// used: it costs a system call, which the request the
			// endpoint never got would cost far more.
			pc = h.get(time.Now(), maxIdle, !replayable)
		}
		if pc == nil {
			var err error
			if pc, err = u.dial(target, h, addr, deadline); err != nil {
				return nil, err
			}
		}
		stale, err := u.send(pc, wire, res, deadline, relay)
		if err == nil {
			return pc, nil
		}
		_ = pc.conn.Close()
		again := stale == notWritten || stale == noAnswer && replayable
		if !again || !pc.reused || fresh || IsTimeout(err) {
			return nil, err
		}
		h.closeIdleSince(pc.idleAt)
	}
}

// dial connects to addr, with TLS for an https endpoint; its errors are
// *net.OpError with Op "dial" when no connection was made, which tells
// the pool the request was never sent.
func (u *Upstream) dial(target *url.URL, h *hostConns, addr string, deadline time.Time) (*Conn, error) {
	d := u.dialer
	if !deadline.IsZero() {
		d.Deadline = deadline
	}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	if target.Scheme == "https" {
		cfg := u.TLS
		if cfg.ServerName == "" {
			cfg = cfg.Clone()
			cfg.ServerName = target.Hostname()
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
	pc := &Conn{conn: c, host: h, r: reader{conn: c, limit: -1}}
	pc.br = bufio.NewReaderSize(&pc.r, readBuffer)
	return pc, nil
}

// send writes wire on pc and reads the final response header into res.
// stale reports a failure before any byte of the answer came.
func (u *Upstream) send(pc *Conn, wire []byte, res *fasthttp.Response, deadline time.Time, relay func(*fasthttp.ResponseHeader) error) (failure, error) {
	if err := pc.conn.SetDeadline(deadline); err != nil {
		return notWritten, err
	}
	pc.r.n = 0
	res.Header.SetNoDefaultContentType(true) // an answer without one gets none
	if _, err := pc.conn.Write(wire); err != nil {
		return notWritten, err
	}
	for n1xx := 0; ; n1xx++ {
		if err := res.Header.Read(pc.br); err != nil {
			if pc.r.n == 0 {
				return noAnswer, err
			}
			return failed, err
		}
		code := res.Header.StatusCode()
		if code < 100 || code > 199 {
			// The deadline bounds the wait for the answer's header only;
			// its body may stream for as long as it lasts.
			return failed, pc.conn.SetDeadline(time.Time{})
		}
		if code == fasthttp.StatusSwitchingProtocols {
			return failed, errUpgrade
		}
		if n1xx == max1xx {
			return failed, errToo1xx
		}
		if err := relay(&res.Header); err != nil {
			return failed, err
		}
	}
}

// Reader is what the answer's body is read from.
func (pc *Conn) Reader() *bufio.Reader { return pc.br }

// Release ends the use of pc for one exchange: kept for the next when the
// answer was read to its end and both sides keep the connection, closed
// otherwise.
func (pc *Conn) Release(keep bool) {
	if !keep {
		_ = pc.conn.Close()
		return
	}
	_ = pc.conn.SetDeadline(time.Time{})
	pc.reused = true
	pc.host.put(pc, time.Now())
}

// IsTimeout reports whether err is a deadline passing on a connection.
func IsTimeout(err error) bool {
	return errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, fasthttp.ErrTimeout)
}

package tier

import (
	"net"
	"net/netip"
	"sync"
)

// ConnAdmission decides, for each connection a server accepts, whether to
// serve it, before a byte is read: ok false refuses it at once (reset).
// An admitted connection calls release once, when it closes.
type ConnAdmission func(remote netip.Addr) (release func(), ok bool)

// WithConnAdmission has the server ask admit about every connection it
// accepts, whatever serves it afterwards (HTTP/1.1, TLS, HTTP/2): a cap of
// connections per client address, or a block, holds on the listener.
func WithConnAdmission(admit ConnAdmission) ServerOption {
	return func(s *HTTPServer) { s.admission = admit }
}

// admitting wraps ln in the server's admission, if it has one.
func (s *HTTPServer) admitting(ln net.Listener) net.Listener {
	if s.admission == nil {
		return ln
	}
	return admittingListener{ln, s.admission}
}

// admittingListener refuses the connections its admission refuses and
// hands on the others, each releasing its admission when closed.
type admittingListener struct {
	net.Listener
	admit ConnAdmission
}

func (l admittingListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		var addr netip.Addr
		if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok {
			addr = ta.AddrPort().Addr().Unmap()
		} else if ap, err := netip.ParseAddrPort(c.RemoteAddr().String()); err == nil {
			addr = ap.Addr().Unmap()
		}
		release, ok := l.admit(addr)
		if !ok {
			// A reset, not a close: the refused client holds no socket of
			// the server's in TIME_WAIT.
			if tc, isTCP := c.(*net.TCPConn); isTCP {
				_ = tc.SetLinger(0)
			}
			_ = c.Close()
			continue
		}
		if release == nil {
			return c, nil
		}
		// *net.TCPConn stays embedded as such, so that what the server
		// finds on it (sendfile, CloseWrite, SetLinger, the descriptor)
		// is still there.
		if tc, isTCP := c.(*net.TCPConn); isTCP {
			return &admittedTCPConn{TCPConn: tc, release: release}, nil
		}
		return &admittedConn{Conn: c, release: release}, nil
	}
}

type admittedTCPConn struct {
	*net.TCPConn
	once    sync.Once
	release func()
}

func (c *admittedTCPConn) Close() error {
	err := c.TCPConn.Close()
	c.once.Do(c.release)
	return err
}

type admittedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *admittedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

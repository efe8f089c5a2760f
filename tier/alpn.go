package tier

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"sync"
	"time"

	"golang.org/x/net/http2"
)

// defaultHandshakeTimeout bounds a TLS handshake when the http.Server sets
// none of ReadHeaderTimeout, ReadTimeout or WriteTimeout: a client that
// opens a connection and says nothing must not hold it forever.
const defaultHandshakeTimeout = 10 * time.Second

// HTTP/2 settings of every TLS listener. Each bounds what one connection
// can make the server hold.
const (
	// h2MaxStreams caps the streams open at once on a connection, as
	// HAProxy's tune.h2.max-concurrent-streams (100) and Go's default.
	h2MaxStreams = 100
	// h2MaxFrame is the largest frame a client may send: the protocol's
	// initial 16 KiB, not the 1 MiB x/net/http2 would allow, so that a
	// connection's read buffer stays small.
	h2MaxFrame = 16 << 10
	// h2StreamWindow is how much of a request body a client may send
	// ahead of the handler reading it, per stream; the connection's window
	// (x/net/http2's 1 MiB) bounds the sum.
	h2StreamWindow = 256 << 10
)

// tlsServing is a TLS listener's own serving: it accepts raw connections,
// runs each handshake under a deadline, then serves "h2" itself through
// x/net/http2 and hands every other connection (HTTP/1.1 or no ALPN) to
// the http.Server through an in-process listener, as a connection that is
// not a *tls.Conn (so that net/http does not look for TLSNextProto) but
// whose ConnectionState still reaches the handlers as r.TLS.
type tlsServing struct {
	s   *HTTPServer
	cfg *tls.Config
	//lint:ignore SA1019 x/net/http2's Server is the one that serves a single connection (ServeConn) behind the flood guard; net/http's offers no such entry
	h2 *http2.Server
	h1 *connQueue

	mu      sync.Mutex
	conns   map[*tls.Conn]bool // open TLS connections; true once serving HTTP/2
	closing bool
	idle    chan struct{} // closed when conns empties while closing; nil before
	wg      sync.WaitGroup
}

// newTLSServing configures HTTP/2 on srv (so that its Shutdown sends
// GOAWAY) and returns the serving of raw over cfg.
func newTLSServing(s *HTTPServer, raw net.Listener, cfg *tls.Config) (*tlsServing, error) {
	//lint:ignore SA1019 x/net/http2's Server is the one that serves a single connection (ServeConn) behind the flood guard; net/http's offers no such entry
	h2 := &http2.Server{
		MaxConcurrentStreams:     h2MaxStreams,
		MaxReadFrameSize:         h2MaxFrame,
		MaxUploadBufferPerStream: h2StreamWindow,
	}
	//lint:ignore SA1019 it registers the GOAWAY of srv's Shutdown with the connections h2 serves
	if err := http2.ConfigureServer(s.server, h2); err != nil {
		return nil, err
	}
	t := &tlsServing{s: s, cfg: cfg, h2: h2, h1: newConnQueue(raw), conns: map[*tls.Conn]bool{}}
	t.wg.Go(func() { t.accept(raw) })
	return t, nil
}

// accept runs the handshake of every connection raw accepts. An accept
// error goes to net/http through the queue: it retries a temporary one
// after a pause, and ends serving on any other.
func (t *tlsServing) accept(raw net.Listener) {
	for {
		c, err := raw.Accept()
		if err != nil {
			if !t.h1.put(nil, err) || errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		tc := tls.Server(c, t.cfg)
		if !t.track(tc) {
			_ = c.Close()
			continue
		}
		t.wg.Go(func() { t.serve(tc) })
	}
}

// serve runs tc's handshake and serves it by the protocol the client chose.
func (t *tlsServing) serve(tc *tls.Conn) {
	defer t.untrack(tc)
	raw := tc.NetConn()
	_ = raw.SetDeadline(time.Now().Add(handshakeTimeout(t.s.server)))
	if err := tc.Handshake(); err != nil {
		t.s.logConnError("TLS handshake error from "+raw.RemoteAddr().String(), err)
		_ = raw.Close()
		return
	}
	_ = raw.SetDeadline(time.Time{})
	state := tc.ConnectionState()
	if state.NegotiatedProtocol != http2.NextProtoTLS {
		if !t.h1.put(t.s.h1Conn(tlsConn{tc}), nil) {
			_ = tc.Close()
		}
		return
	}
	if !t.serving(tc) {
		_ = tc.Close()
		return
	}
	g := newH2Guard(tc, t.s.conns.report)
	//lint:ignore SA1019 x/net/http2's Server is the one that serves a single connection (ServeConn) behind the flood guard; net/http's offers no such entry
	t.h2.ServeConn(g, &http2.ServeConnOpts{
		Context:    t.s.connContext(t.h1, g),
		BaseConfig: t.s.server,
		Handler:    t.s.server.Handler,
	})
}

// handshakeTimeout is what net/http allows a TLS handshake: the shortest
// of the server's read and write timeouts.
func handshakeTimeout(srv *http.Server) time.Duration {
	d := time.Duration(0)
	for _, t := range []time.Duration{srv.ReadHeaderTimeout, srv.ReadTimeout, srv.WriteTimeout} {
		if t > 0 && (d == 0 || t < d) {
			d = t
		}
	}
	if d == 0 {
		return defaultHandshakeTimeout
	}
	return d
}

// connContext is the base context of an HTTP/2 connection's requests, as
// net/http builds one for the connections it serves itself.
func (s *HTTPServer) connContext(ln net.Listener, c net.Conn) context.Context {
	ctx := context.Background()
	if s.server.BaseContext != nil {
		ctx = s.server.BaseContext(ln)
	}
	ctx = context.WithValue(ctx, http.ServerContextKey, s.server)
	ctx = context.WithValue(ctx, http.LocalAddrContextKey, c.LocalAddr())
	if s.server.ConnContext != nil {
		ctx = s.server.ConnContext(ctx, c)
	}
	return ctx
}

// logConnError reports a connection that failed before any request, where
// net/http would: the server's ErrorLog, else the tier's log at debug.
func (s *HTTPServer) logConnError(msg string, err error) {
	if s.server.ErrorLog != nil {
		s.server.ErrorLog.Printf("http: %s: %v", msg, err)
		return
	}
	s.log.Debug(msg, "server", s.name, "err", err)
}

// track adds a connection about to shake hands; false once closing.
func (t *tlsServing) track(tc *tls.Conn) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closing {
		return false
	}
	t.conns[tc] = false
	return true
}

// serving marks tc as serving HTTP/2; false once closing.
func (t *tlsServing) serving(tc *tls.Conn) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closing {
		return false
	}
	t.conns[tc] = true
	return true
}

func (t *tlsServing) untrack(tc *tls.Conn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.conns, tc)
	if t.closing && len(t.conns) == 0 && t.idle != nil {
		close(t.idle)
		t.idle = nil
	}
}

// close stops new connections, cuts the ones still shaking hands, and
// returns a channel closed once the HTTP/2 connections are gone (after the
// GOAWAY that the http.Server's Shutdown sent them, their streams done).
func (t *tlsServing) close() <-chan struct{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.closing = true
	for tc, h2 := range t.conns {
		if !h2 {
			_ = tc.NetConn().Close()
		}
	}
	done := make(chan struct{})
	if len(t.conns) == 0 {
		close(done)
	} else {
		t.idle = done
	}
	return done
}

// closeAll closes every connection left and waits for their goroutines.
func (t *tlsServing) closeAll() {
	t.mu.Lock()
	t.closing = true
	for tc := range t.conns {
		_ = tc.NetConn().Close()
	}
	t.mu.Unlock()
	_ = t.h1.Close()
	t.wg.Wait()
}

// stop ends TLS serving once the http.Server's Shutdown returned err: it
// waits for the HTTP/2 connections until ctx ends, then closes what is
// left.
func (t *tlsServing) stop(ctx context.Context, err error) error {
	if err == nil {
		select {
		case <-t.close():
		case <-ctx.Done():
			err = ctx.Err()
		}
	}
	t.closeAll()
	return err
}

// tlsConn is a TLS connection as net/http's HTTP/1 serving sees it: not a
// *tls.Conn, whose handshake net/http would run again, but with its
// ConnectionState, which NewHTTPServer's handler puts in r.TLS.
type tlsConn struct{ *tls.Conn }

// tlsStateKey is the context key of a connection's TLS state.
type tlsStateKey struct{}

// withTLSState chains an http.Server.ConnContext that notes the TLS state
// of a connection net/http serves without knowing it is TLS.
func withTLSState(next func(context.Context, net.Conn) context.Context) func(context.Context, net.Conn) context.Context {
	return func(ctx context.Context, c net.Conn) context.Context {
		if st := tlsState(c); st != nil {
			ctx = context.WithValue(ctx, tlsStateKey{}, st)
		}
		if next != nil {
			ctx = next(ctx, c)
		}
		return ctx
	}
}

// tlsState finds the TLS state of c, beneath any wrapper that has a
// NetConn method; nil for a plaintext connection.
func tlsState(c net.Conn) *tls.ConnectionState {
	for {
		if cs, ok := c.(interface{ ConnectionState() tls.ConnectionState }); ok {
			st := cs.ConnectionState()
			return &st
		}
		nc, ok := c.(interface{ NetConn() net.Conn })
		if !ok {
			return nil
		}
		c = nc.NetConn()
	}
}

// tlsAware sets r.TLS for a request that came over TLS on a connection
// net/http did not see as TLS (see tlsConn), so that handlers, the access
// log and X-Forwarded-Proto see https.
func tlsAware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil {
			if st, ok := r.Context().Value(tlsStateKey{}).(*tls.ConnectionState); ok {
				r.TLS = st
			}
		}
		next.ServeHTTP(w, r)
	})
}

// connQueue is a listener fed in process: what it accepts was put there.
// Closing it closes the listener beneath, so that net/http's Shutdown and
// Close stop the accepting too.
type connQueue struct {
	raw  net.Listener
	in   chan accepted
	done chan struct{}
	once sync.Once
}

type accepted struct {
	c   net.Conn
	err error
}

func newConnQueue(raw net.Listener) *connQueue {
	return &connQueue{raw: raw, in: make(chan accepted), done: make(chan struct{})}
}

// put hands net/http a connection or an accept error, waiting until it
// takes it; false if the queue closed first.
func (q *connQueue) put(c net.Conn, err error) bool {
	select {
	case q.in <- accepted{c, err}:
		return true
	case <-q.done:
		return false
	}
}

func (q *connQueue) Accept() (net.Conn, error) {
	select {
	case a := <-q.in:
		return a.c, a.err
	case <-q.done:
		return nil, net.ErrClosed
	}
}

func (q *connQueue) Close() error {
	err := net.ErrClosed
	q.once.Do(func() {
		close(q.done)
		err = q.raw.Close()
	})
	return err
}

func (q *connQueue) Addr() net.Addr { return q.raw.Addr() }

// h1Listener applies an HTTPServer's h1Conn to every connection accepted.
type h1Listener struct {
	net.Listener
	wrap func(net.Conn) net.Conn
}

func (l h1Listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return l.wrap(c), nil
}

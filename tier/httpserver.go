package tier

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
	"go.opentelemetry.io/otel/trace"

	"github.com/threetier/threetier/internal/tracing"
)

// HTTPServer runs an *http.Server as a Tier: Start binds the listener (so a
// port taken is a start error, and ":0" gets a real port), serves in the
// background, and Stop shuts down gracefully, draining in-flight requests
// until its context ends. Every connection it accepts is held to its
// Limits (see WithLimits). The web, app and balancer tiers are built on it.
type HTTPServer struct {
	name       string
	server     *http.Server
	log        *slog.Logger
	limits     Limits
	conns      *connSet
	report     *limitReport
	health     *Health
	drainDelay time.Duration
	draining   atomic.Bool
	tracer     trace.TracerProvider
	// h1Conn wraps every connection served as HTTP/1.x before net/http
	// reads from it: plaintext ones as accepted, TLS ones after their
	// handshake (then a wrapper should keep a NetConn method, through
	// which the TLS state is found). The identity by default.
	h1Conn func(net.Conn) net.Conn
	// admission, when set, refuses connections as they are accepted
	// (WithConnAdmission).
	admission ConnAdmission
	// fastHandler, set by WithFastHTTP1, makes fast serve HTTP/1.x.
	fastHandler fasthttp.RequestHandler
	fast        *fastEngine

	mu       sync.Mutex
	listener net.Listener
	tls      *tlsServing // nil without TLS
	failed   chan error
	served   chan struct{}
}

var (
	_ Tier   = (*HTTPServer)(nil)
	_ Failer = (*HTTPServer)(nil)
)

// NewHTTPServer returns a tier called name that serves srv on srv.Addr, with
// TLS when srv.TLSConfig has certificates: then each handshake is bounded
// (by the shortest of srv's read and write timeouts, else 10 s), HTTP/2 is
// served by x/net/http2 with bounded streams and a guard against rapid
// reset, and HTTP/1.1 by srv (or by fasthttp, see WithFastHTTP1), r.TLS
// set as usual. It takes srv over: its Handler
// is wrapped to bound request bodies and mark the answers of a draining
// server, and its ConnState chained to track connections, for the Limits
// that opts set (the defaults without WithLimits).
func NewHTTPServer(name string, srv *http.Server, opts ...ServerOption) *HTTPServer {
	s := &HTTPServer{name: name, server: srv, log: slog.New(slog.DiscardHandler), failed: make(chan error, 1),
		h1Conn: func(c net.Conn) net.Conn { return c }}
	for _, o := range opts {
		o(s)
	}
	s.limits = s.limits.withDefaults()
	report := &limitReport{log: s.log, server: name}
	s.conns = newConnSet(s.limits, descriptorLimit(), report)
	report.open, report.max = s.conns.open, s.conns.capacity
	next := srv.Handler
	if next == nil {
		next = http.DefaultServeMux // what http.Server serves for a nil Handler
	}
	next = &bodyTimeout{next: next, timeout: s.limits.BodyTimeout, readTimeout: srv.ReadTimeout, report: report}
	if s.limits.SendTimeout > 0 {
		next = &streamSendTimeout{next: next, timeout: s.limits.SendTimeout, report: report}
	}
	srv.Handler = s.drainAware(next)
	if tracing.On(s.tracer) {
		srv.Handler = tracing.Server(s.tracer, name, srv.Handler)
	}
	srv.Handler = tlsAware(srv.Handler)
	srv.ConnState = s.conns.watchState(framingState(srv.ConnState))
	srv.ConnContext = framingContext(withTLSState(srv.ConnContext))
	s.report = report
	s.h1Conn = func(c net.Conn) net.Conn { return newFramingConn(c, report) }
	if s.fastHandler != nil {
		s.fast = newFastEngine(s, s.fastHandler)
		s.h1Conn = s.fast.wrap
	}
	return s
}

// Limits returns the limits the server holds its connections to, defaults
// filled in.
func (s *HTTPServer) Limits() Limits { return s.limits }

// Name returns the tier's name.
func (s *HTTPServer) Name() string { return s.name }

// Server returns the underlying server, for settings not covered elsewhere.
func (s *HTTPServer) Server() *http.Server { return s.server }

// Addr returns the bound address once started ("127.0.0.1:41234"), or the
// configured one before.
func (s *HTTPServer) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.listener != nil {
		return s.listener.Addr().String()
	}
	return s.server.Addr
}

// Start binds the address and begins serving; when ctx carries a
// ConnBudget, the server's connection cap is its share of it until Stop.
func (s *HTTPServer) Start(ctx context.Context) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", s.server.Addr)
	if err != nil {
		return err
	}
	if err := s.Serve(ln); err != nil {
		return err
	}
	if b := connBudget(ctx); b != nil {
		b.join(s.conns)
	}
	return nil
}

// Serve begins serving on a listener the caller made (socket activation,
// tests); it returns at once.
func (s *HTTPServer) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.listener != nil {
		s.mu.Unlock()
		_ = ln.Close()
		return errors.New("already started")
	}
	ln = s.admitting(ln)
	tlsOn := s.server.TLSConfig != nil && (len(s.server.TLSConfig.Certificates) > 0 || s.server.TLSConfig.GetCertificate != nil)
	if tlsOn {
		// Taken before http2.ConfigureServer adds "h2" to the server's
		// own configuration: a server configured without it keeps
		// serving HTTP/1.1 only.
		cfg := s.server.TLSConfig.Clone()
		if len(cfg.NextProtos) == 0 {
			cfg.NextProtos = []string{"h2", "http/1.1"}
		}
		t, err := newTLSServing(s, trackingListener{ln, s.conns}, cfg)
		if err != nil {
			s.mu.Unlock()
			_ = ln.Close()
			return err
		}
		s.tls, ln = t, t.h1
	} else {
		ln = h1Listener{trackingListener{ln, s.conns}, s.h1Conn}
	}
	s.listener = ln
	served := make(chan struct{})
	s.served = served
	var serving sync.WaitGroup
	if s.fast != nil {
		// fasthttp serves the listener; net/http, the connections it
		// hands over.
		fastLn := ln
		s.fast.handed = newConnQueue(unclosed{fastLn})
		s.fast.ln = fastLn
		serving.Go(func() {
			if err := s.fast.srv.Serve(fastLn); err != nil {
				s.fail(err)
			}
		})
		ln = s.fast.handed
	}
	s.mu.Unlock()

	serving.Go(func() {
		if err := s.server.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.fail(err)
		}
	})
	go func() {
		serving.Wait()
		close(served)
	}()
	return nil
}

// unclosed is a listener that another server closes: net/http's
// Shutdown of the connections handed over leaves it to fasthttp's.
type unclosed struct{ net.Listener }

func (unclosed) Close() error { return nil }

// fail reports that serving stopped on its own, once.
func (s *HTTPServer) fail(err error) {
	select {
	case s.failed <- err:
	default:
	}
}

// Failed yields an error if the server stops serving on its own.
func (s *HTTPServer) Failed() <-chan error { return s.failed }

// Stop drains (unless Drain was called already), then stops accepting
// connections and waits for in-flight requests until ctx ends; then it
// closes what is left.
func (s *HTTPServer) Stop(ctx context.Context) error {
	s.mu.Lock()
	served, t := s.served, s.tls
	s.mu.Unlock()
	if served == nil {
		return nil
	}
	_ = s.Drain(ctx) // cut short by ctx, the drain leaves Shutdown no time: it closes at once
	var fastErr error
	var fastDone sync.WaitGroup
	if s.fast != nil {
		fastDone.Go(func() { fastErr = s.fast.shutdown(ctx) })
	}
	err := s.server.Shutdown(ctx)
	fastDone.Wait()
	if err == nil {
		err = fastErr
	}
	if t != nil {
		// HTTP/2 connections are served apart from net/http's own: their
		// GOAWAY went out with Shutdown; wait for their streams too.
		err = t.stop(ctx, err)
	}
	if err != nil {
		_ = s.server.Close()
	}
	<-served
	if b := s.conns.budget.Load(); b != nil {
		b.leave(s.conns)
	}
	return err
}

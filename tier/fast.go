package tier

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"

	"github.com/threetier/threetier/internal/tracing"
)

// FastMaxBody is the largest request body, by its Content-Length, that the
// fast engine (WithFastHTTP1) takes: fasthttp reads a whole body before
// its handler runs, so a larger one, and a chunked one, goes to the
// server's net/http handler instead, which streams it.
const FastMaxBody = 64 << 10

// WithFastHTTP1 serves the server's HTTP/1.x connections on fasthttp,
// calling h for each request, while HTTP/2 stays on the http.Server's
// Handler. Every connection still reads through the server's framing
// checks and counts under its Limits; the answers of a draining server
// are marked as on net/http, and with a TracerProvider each request gets
// the same server span (see FastContext).
//
// A request that fasthttp cannot serve as net/http does goes, with the
// rest of its connection, to the http.Server's Handler: one that asks to
// switch protocols (a WebSocket), one with an Expect header, one with a
// chunked body, or one whose Content-Length is over FastMaxBody. The
// answers before it are out first, in order.
//
// h is given one request at a time, and only once every answer before it
// on the connection has been written out: it may write an interim (1xx)
// response straight to ctx.Conn() before its own.
//
// The http.Server's settings apply: ReadHeaderTimeout (or ReadTimeout, if
// shorter) bounds a request's head from its first byte, IdleTimeout a
// keep-alive wait, WriteTimeout a response, and MaxHeaderBytes a head
// (431 over it), which is also the size of each connection's read
// buffer: keep it to what heads need (net/http's default is 1 MiB).
func WithFastHTTP1(h fasthttp.RequestHandler) ServerOption {
	return func(s *HTTPServer) { s.fastHandler = h }
}

// fastContextKey holds a request's context.Context among the user values
// of its fasthttp.RequestCtx.
type fastContextKey struct{}

// FastContext returns the context.Context of a request served by the fast
// engine, for code shared with net/http handlers: with tracing, it holds
// the request's server span. Never nil; unlike ctx itself, it is not
// cancelled when the server shuts down, so that requests in flight
// finish.
func FastContext(ctx *fasthttp.RequestCtx) context.Context {
	if c, ok := ctx.UserValue(fastContextKey{}).(context.Context); ok {
		return c
	}
	return context.Background()
}

// fastEngine serves an HTTPServer's HTTP/1.x connections on fasthttp.
type fastEngine struct {
	s      *HTTPServer
	h      fasthttp.RequestHandler
	srv    *fasthttp.Server
	traced http.Handler // the tracing wrapper around h, nil without tracing
	// maxHead is the longest request head taken, as net/http's
	// MaxHeaderBytes.
	maxHead int
	// handed feeds net/http the connections handed over to it; set by
	// Serve before any connection is accepted.
	handed *connQueue
	// ln is the listener fasthttp serves, set by Serve.
	ln net.Listener
}

// fastConcurrency is far over any MaxConns: fasthttp must never refuse a
// connection itself, the server's connSet does the bounding.
const fastConcurrency = 1 << 20

func newFastEngine(s *HTTPServer, h fasthttp.RequestHandler) *fastEngine {
	srv := s.server
	maxHead := srv.MaxHeaderBytes
	if maxHead <= 0 {
		maxHead = http.DefaultMaxHeaderBytes
	}
	e := &fastEngine{s: s, h: h, maxHead: maxHead}
	readTimeout := srv.ReadHeaderTimeout
	if readTimeout <= 0 || srv.ReadTimeout > 0 && srv.ReadTimeout < readTimeout {
		readTimeout = srv.ReadTimeout
	}
	e.srv = &fasthttp.Server{
		Handler:                      e.serve,
		ErrorHandler:                 e.answerError,
		Concurrency:                  fastConcurrency,
		ReadBufferSize:               maxHead,
		MaxRequestBodySize:           FastMaxBody,
		ReadTimeout:                  readTimeout,
		IdleTimeout:                  srv.IdleTimeout,
		WriteTimeout:                 srv.WriteTimeout, // SendTimeout is the connection's own (trackedConn)
		NoDefaultServerHeader:        true,
		NoDefaultContentType:         true,
		DisablePreParseMultipartForm: true,
		CloseOnShutdown:              true,
		ReduceMemoryUsage:            true,
		Logger:                       fastLogger{s},
		// fasthttp numbers its states as net/http does: the server's own
		// hook, connSet's and framingConn's included, serves both.
		ConnState: func(c net.Conn, st fasthttp.ConnState) {
			if fc := asFraming(c); fc != nil && fc.handedOver() {
				return // net/http reports it now
			}
			srv.ConnState(c, http.ConnState(st))
		},
	}
	if tracing.On(s.tracer) {
		e.traced = tracing.Server(s.tracer, s.name, http.HandlerFunc(e.serveTraced))
	}
	return e
}

// wrap readies a connection for fasthttp: read through the framer, and
// seen as TLS when it is.
func (e *fastEngine) wrap(c net.Conn) net.Conn {
	fc := newOneRequestConn(c, e.s.report, &oneRequest{maxHead: e.maxHead, headTimeout: e.srv.ReadTimeout,
		bodyTimeout: e.s.limits.BodyTimeout, conn: tracked(c), handover: e.handOver})
	if tc, ok := c.(tlsConn); ok {
		return oneRequestTLSConn{fc, tc.Conn}
	}
	return fc
}

// handOver gives net/http a connection fasthttp cannot serve further.
func (e *fastEngine) handOver(c *framingConn) bool { return e.handed.put(c, nil) }

// serve is fasthttp's handler.
func (e *fastEngine) serve(ctx *fasthttp.RequestCtx) {
	if e.traced != nil {
		e.serveWithSpan(ctx)
	} else {
		e.h(ctx)
	}
	if e.s.draining.Load() {
		markDraining(ctx.Response.Header.Set)
	}
}

// fastRequestKey holds, in the context of the http.Request made for the
// tracing wrapper, the fasthttp request it stands for.
type fastRequestKey struct{}

// serveWithSpan runs h under the tracing wrapper net/http's requests go
// through, on an http.Request that stands for ctx's: one implementation
// of the server span, its name and attributes.
func (e *fastEngine) serveWithSpan(ctx *fasthttp.RequestCtx) {
	var r http.Request
	if err := fasthttpadaptor.ConvertRequest(ctx, &r, true); err != nil {
		e.h(ctx)
		return
	}
	ownStrings(&r)
	req := r.WithContext(context.WithValue(context.Background(), fastRequestKey{}, ctx))
	e.traced.ServeHTTP(&statusRecorder{header: http.Header{}}, req)
}

// ownStrings gives r strings of its own: ConvertRequest's share fasthttp's
// buffers, which the connection's next request overwrites, while the
// span's attributes, taken from them, live on until exported.
func ownStrings(r *http.Request) {
	r.Method, r.Proto, r.Host, r.RequestURI = strings.Clone(r.Method), strings.Clone(r.Proto), strings.Clone(r.Host), strings.Clone(r.RequestURI)
	u := *r.URL
	u.Scheme, u.Opaque, u.Host, u.Path, u.RawPath = strings.Clone(u.Scheme), strings.Clone(u.Opaque), strings.Clone(u.Host), strings.Clone(u.Path), strings.Clone(u.RawPath)
	u.RawQuery, u.Fragment, u.RawFragment = strings.Clone(u.RawQuery), strings.Clone(u.Fragment), strings.Clone(u.RawFragment)
	u.User = nil // the framer refuses credentials in a target
	r.URL = &u
	h := make(http.Header, len(r.Header))
	for k, vs := range r.Header {
		own := make([]string, len(vs))
		for i, v := range vs {
			own[i] = strings.Clone(v)
		}
		h[strings.Clone(k)] = own
	}
	r.Header = h
	r.TransferEncoding, r.Trailer = nil, nil // neither reaches the span
}

// serveTraced is the handler within the tracing wrapper: h, with the
// span's context for FastContext, and its status for the span.
func (e *fastEngine) serveTraced(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context().Value(fastRequestKey{}).(*fasthttp.RequestCtx)
	ctx.SetUserValue(fastContextKey{}, r.Context())
	e.h(ctx)
	w.WriteHeader(ctx.Response.StatusCode())
	_, _ = w.Write(ctx.Response.Body())
}

// statusRecorder is the http.ResponseWriter of the tracing wrapper: the
// answer is fasthttp's; the wrapper only reads its status and size.
type statusRecorder struct{ header http.Header }

func (w *statusRecorder) Header() http.Header         { return w.header }
func (w *statusRecorder) Write(p []byte) (int, error) { return len(p), nil }
func (w *statusRecorder) WriteHeader(int)             {}

// answerError answers a request fasthttp could not read as a problem.
func (e *fastEngine) answerError(ctx *fasthttp.RequestCtx, err error) {
	var small *fasthttp.ErrSmallBuffer
	var ne net.Error
	p := NewProblem(http.StatusBadRequest, "malformed request")
	switch {
	case errors.As(err, &small):
		p = NewProblem(http.StatusRequestHeaderFieldsTooLarge, "the request head is too large")
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		p = NewProblem(http.StatusRequestEntityTooLarge, fmt.Sprintf("the request body is over %d bytes", FastMaxBody))
	case errors.As(err, &ne) && ne.Timeout():
		p = NewProblem(http.StatusRequestTimeout, "the request did not arrive in time")
		if ctx.Request.Header.ContentLength() > 0 {
			// The head came whole (see oneRequest): the body stopped.
			p.Detail = fmt.Sprintf("the request body stopped arriving (nothing for %s)", e.s.limits.BodyTimeout)
		}
	}
	ctx.Response.Reset()
	writeProblem(&fastWriter{ctx: ctx, header: http.Header{}}, p, string(ctx.Request.Header.Peek("Accept")))
}

// fastWriter writes an http.ResponseWriter's answer into a fasthttp
// response, for the answers written once for both engines (problems).
type fastWriter struct {
	ctx    *fasthttp.RequestCtx
	header http.Header
}

func (w *fastWriter) Header() http.Header { return w.header }

func (w *fastWriter) WriteHeader(status int) {
	for k, vs := range w.header {
		for _, v := range vs {
			w.ctx.Response.Header.Add(k, v)
		}
	}
	w.ctx.SetStatusCode(status)
}

// Write appends to the body; WriteProblem has set the head already.
func (w *fastWriter) Write(p []byte) (int, error) { return w.ctx.Write(p) }

// fastLogger sends what fasthttp logs to the server's log, at debug: it
// logs per connection, which a client can make as often as it likes.
type fastLogger struct{ s *HTTPServer }

func (l fastLogger) Printf(format string, args ...any) {
	l.s.log.Debug(fmt.Sprintf(format, args...), "server", l.s.name)
}

// shutdown stops fasthttp's serving until ctx ends; then it closes what is
// left, as http.Server.Close would.
func (e *fastEngine) shutdown(ctx context.Context) error {
	err := e.srv.ShutdownWithContext(ctx)
	// fasthttp closes only the listeners its Serve has taken: one whose
	// goroutine has not run yet would accept on after a Stop right after
	// Start. Closed here, it ends that Serve at its first accept.
	_ = e.ln.Close()
	if err != nil {
		e.s.conns.closeAll()
	}
	return err
}

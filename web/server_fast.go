package web

import (
	"context"
	"log/slog"
	"net/http"
	"reflect"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"

	"github.com/threetier/threetier/internal/accesslog"
	"github.com/threetier/threetier/internal/httpedge"
	"github.com/threetier/threetier/internal/httpx"
	"github.com/threetier/threetier/internal/obs"
	"github.com/threetier/threetier/internal/tracing"
	"github.com/threetier/threetier/tier"
)

// fastServer serves the web tier's HTTP/1.x requests on the fast engine:
// the files and the forwarded prefixes natively, under the same edge steps
// as Echo's routes (request ID, security headers, metrics, access log,
// recovery); every other request through an adapter to Echo on net/http.
type fastServer struct {
	echo  *echo.Echo
	files *Files // nil: no files served
	// filesRoute is the Echo route the files are mounted on: a request
	// Echo would route there is served natively.
	filesRoute string
	// forwards are the Forwarders by their Echo routes.
	forwards map[string]*Forwarder
	adapter  fasthttp.RequestHandler
	// traced: name each server span by its route, as tracing.EchoRoute
	// does on Echo.
	traced bool
	// ownMiddleware is how many middleware the tier itself put on Echo;
	// throughEcho, set at Start when the user added more, sends every
	// request through Echo so that theirs runs for the files and the
	// forwarded prefixes too.
	ownMiddleware int
	throughEcho   bool
	security      []headerValue
	met           *obs.HTTPMetrics
	access        *accesslog.Log
	log           *slog.Logger
}

func newFastServer(e *echo.Echo, files *Files, forwards map[string]*Forwarder, security []headerValue, met *obs.HTTPMetrics, access *accesslog.Log, log *slog.Logger) *fastServer {
	s := &fastServer{echo: e, files: files, forwards: forwards, security: security, met: met, access: access, log: log,
		ownMiddleware: echoMiddleware(e)}
	if files != nil {
		s.filesRoute = files.cfg.Prefix + "*"
	}
	s.adapter = fasthttpadaptor.NewFastHTTPHandler(http.HandlerFunc(serveWithFastContext(e)))
	return s
}

// serveWithFastContext gives h's requests the context of the fast
// engine's request (its span), in place of the fasthttp.RequestCtx the
// adapter puts there.
func serveWithFastContext(h http.Handler) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		if rc, ok := r.Context().(*fasthttp.RequestCtx); ok {
			r = r.WithContext(tier.FastContext(rc))
		}
		h.ServeHTTP(w, r)
	}
}

// settle looks, once the server starts, for middleware the user added
// with Echo().Use or Pre: with any, the files and the forwarded prefixes
// are served through Echo as well, so that an authentication check, say,
// is never skipped for them; the price is the adapter's cost.
func (s *fastServer) settle() {
	if n := echoMiddleware(s.echo); n < 0 || n > s.ownMiddleware {
		s.throughEcho = true
		s.log.Info("middleware added on Echo: the fast engine serves files and forwarded prefixes through Echo too")
	}
}

// echoMiddleware counts the middleware e runs (Pre and Use), or -1 when
// it cannot tell. Echo keeps both lists to itself; their lengths, read
// through reflect, are the one way to know whether any was added.
func echoMiddleware(e *echo.Echo) int {
	v := reflect.ValueOf(e).Elem()
	n := 0
	for _, name := range []string{"premiddleware", "middleware"} {
		f := v.FieldByName(name)
		if !f.IsValid() || f.Kind() != reflect.Slice {
			return -1
		}
		n += f.Len()
	}
	return n
}

// serve is the fast engine's handler.
func (s *fastServer) serve(ctx *fasthttp.RequestCtx) {
	if s.throughEcho {
		s.adapter(ctx)
		return
	}
	route := s.route(ctx)
	switch {
	case route == "":
	case route == s.filesRoute:
		s.serveFiles(ctx)
		return
	case s.forwards[route] != nil:
		s.serveForward(ctx, s.forwards[route], route)
		return
	}
	s.adapter(ctx)
}

// route returns the Echo route of ctx's request when it is one served
// natively (the files or a forwarded prefix), or "": the routes added on
// Echo take precedence, as on net/http. A path with escapes goes through
// Echo, which routes such paths by their escaped form.
func (s *fastServer) route(ctx *fasthttp.RequestCtx) string {
	p := unsafeString(ctx.URI().PathOriginal())
	if strings.IndexByte(p, '%') >= 0 || s.files == nil && len(s.forwards) == 0 {
		return ""
	}
	c := s.echo.AcquireContext()
	s.echo.Router().Find(unsafeString(ctx.Method()), p, c)
	route := c.Path()
	s.echo.ReleaseContext(c)
	if route == s.filesRoute && s.files != nil || s.forwards[route] != nil {
		return route
	}
	return ""
}

// serveForward forwards a request on the proxy's fast path, which takes
// or makes its ID; the security headers are defaults that the app tier's
// answer replaces, as on net/http.
func (s *fastServer) serveForward(ctx *fasthttp.RequestCtx, fw *Forwarder, route string) {
	start := time.Now()
	s.met.Begin()
	defer s.met.End()
	fw.ServeFast(ctx)
	h := &ctx.Response.Header
	for _, kv := range s.security {
		if len(h.Peek(kv.key)) == 0 {
			h.Set(kv.key, kv.value[0])
		}
	}
	s.observe(ctx, route, start, func() context.Context {
		return httpx.WithRequestID(tier.FastContext(ctx), string(h.Peek(tier.HeaderRequestID)))
	})
}

// observe counts an answered request in the metrics and the access log,
// under route; reqCtx gives its context, made only when a line is logged.
func (s *fastServer) observe(ctx *fasthttp.RequestCtx, route string, start time.Time, reqCtx func() context.Context) {
	elapsed := time.Since(start)
	status, size := ctx.Response.StatusCode(), fastBodySize(ctx)
	method := stableMethod(ctx.Method())
	s.met.Observe(method, route, status, elapsed, size)
	if s.traced {
		tracing.Route(tier.FastContext(ctx), method, route)
	}
	if s.access != nil {
		rc := reqCtx()
		if s.access.Enabled(rc, status, false) {
			s.access.Log(&accesslog.Entry{Context: rc, Remote: ctx.RemoteAddr().String(), Method: method,
				Host: string(ctx.Host()), URI: string(ctx.RequestURI()), Path: string(ctx.Path()),
				Proto: string(ctx.Request.Header.Protocol()), UserAgent: string(ctx.UserAgent()),
				Route: route, Status: status, Bytes: size, Duration: elapsed})
		}
	}
}

// serveFiles answers a request for the files with the edge steps of the
// web tier's middleware (edge).
func (s *fastServer) serveFiles(ctx *fasthttp.RequestCtx) {
	start := time.Now()
	id := fastRequestID(ctx)
	reqCtx := httpx.WithRequestID(tier.FastContext(ctx), id)
	h := &ctx.Response.Header
	h.Set(tier.HeaderRequestID, id)
	for _, kv := range s.security {
		h.Set(kv.key, kv.value[0])
	}
	s.met.Begin()
	defer s.met.End() // also when the handler aborts with a panic
	s.serveRecovering(ctx, reqCtx)
	s.observe(ctx, s.filesRoute, start, func() context.Context { return reqCtx })
}

// serveRecovering serves the files, answering a panic as the edge does.
func (s *fastServer) serveRecovering(ctx *fasthttp.RequestCtx, reqCtx context.Context) {
	defer func() {
		if v := recover(); v != nil {
			_ = httpedge.RecoveredRequest(reqCtx, s.log, stableMethod(ctx.Method()), string(ctx.Path()), v)
			ctx.Response.ResetBody()
			x := fastExchange{ctx: ctx, reqCtx: reqCtx, escaped: string(ctx.URI().PathOriginal())}
			refuse(s.files, x, tier.NewProblem(http.StatusInternalServerError, "internal error"))
		}
	}()
	s.files.serveFast(ctx, reqCtx)
}

// fastRequestID is httpx.AcceptRequestID's rule for a fasthttp request:
// the client's ID when it sent exactly one and it is valid, else a new
// one.
func fastRequestID(ctx *fasthttp.RequestCtx) string {
	if ids := ctx.Request.Header.PeekAll(tier.HeaderRequestID); len(ids) == 1 && httpx.ValidRequestID(unsafeString(ids[0])) {
		return string(ids[0])
	}
	return tier.NewRequestID()
}

// fastBodySize is the size of the body of ctx's answer, as the edge
// counts it: 0 for HEAD, unknown (0) for a stream of unknown length.
func fastBodySize(ctx *fasthttp.RequestCtx) int64 {
	switch {
	case ctx.IsHead():
		return 0
	case ctx.Response.IsBodyStream():
		return max(int64(ctx.Response.Header.ContentLength()), 0)
	}
	return int64(len(ctx.Response.Body()))
}

// stableMethod returns method as a string that outlives the request: a
// constant for the standard ones.
func stableMethod(method []byte) string {
	switch m := unsafeString(method); m {
	case http.MethodGet:
		return http.MethodGet
	case http.MethodHead:
		return http.MethodHead
	case http.MethodPost:
		return http.MethodPost
	}
	return string(method)
}

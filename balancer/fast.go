package balancer

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/valyala/fasthttp"
	"go.opentelemetry.io/otel/trace"

	"github.com/threetier/threetier/balancer/internal/h1"
	"github.com/threetier/threetier/internal/accesslog"
	"github.com/threetier/threetier/internal/httpedge"
	"github.com/threetier/threetier/internal/httpx"
	"github.com/threetier/threetier/tier"
)

// The fast path: the front door's HTTP/1.1 requests served on fasthttp.
// The engine hands it only requests whose whole body (at most
// tier.FastMaxBody) is in memory, without Upgrade or Expect; it forwards
// them with the same rules as ServeHTTP (routing, the header policy, the
// pool's picking, accounting and retries, failures as problems) through
// the pool's own connections (h1.Upstream).

// fastBufferedBody is the largest response body the fast path reads
// before answering; a longer one, one of unknown length or an event
// stream goes to the client as it comes.
const fastBufferedBody = 64 << 10

// b2s is the bytes of b as a string, without a copy, for reading a
// header the engine keeps until the handler returns; never retained.
func b2s(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// fastRequest is a fasthttp request seen by the pool.
type fastRequest fasthttp.RequestCtx

func (r *fastRequest) ctx() *fasthttp.RequestCtx { return (*fasthttp.RequestCtx)(r) }
func (r *fastRequest) context() context.Context  { return fastContext(r.ctx()) }
func (r *fastRequest) method() string            { return b2s(r.ctx().Method()) }
func (r *fastRequest) remoteAddr() string        { return r.ctx().RemoteAddr().String() }
func (r *fastRequest) path() string {
	return string(appendUnescapedPath(nil, r.ctx().URI().PathOriginal()))
}
func (r *fastRequest) header(name string) (string, bool) {
	for k, v := range r.ctx().Request.Header.All() {
		if b2s(k) == name {
			return b2s(v), true
		}
	}
	return "", false
}

func (r *fastRequest) cookie(name string) (string, bool) {
	for k, v := range r.ctx().Request.Header.AllInOrder() {
		if b2s(k) == "Cookie" {
			if c, ok := findCookie(b2s(v), name); ok {
				return c, true
			}
		}
	}
	return "", false
}

// RemoteAddr, Header and Cookie read the request's client key for the
// rate limit (rateKeySource).
func (r *fastRequest) RemoteAddr() string { return r.remoteAddr() }

func (r *fastRequest) Header(name string) []string {
	var values []string
	for k, v := range r.ctx().Request.Header.AllInOrder() {
		if b2s(k) == name {
			values = append(values, string(v))
		}
	}
	return values
}

func (r *fastRequest) Cookie(name string) string {
	v, _ := r.cookie(name)
	return v
}

// fastContext is the context of a request on the fast path: its server
// span, for the pool's tracing and logs.
func fastContext(ctx *fasthttp.RequestCtx) context.Context { return tier.FastContext(ctx) }

// inMemory is a request body the fast path holds whole: always
// replayable.
type inMemory struct{}

func (inMemory) replayable() bool { return true }

// fastExchange is one request through the fast path, pooled: the bytes of
// the request as it goes upstream, the upstream's answer, and what the
// client got. A streamed answer keeps it until the stream ends.
type fastExchange struct {
	px    *Proxy
	ctx   *fasthttp.RequestCtx
	rt    *route
	start time.Time
	head  []byte // the request's line and headers but Host and the end of the block
	wire  []byte // one attempt's whole request
	host  []byte // the client's Host, for upstreamHost
	path  []byte // the request's path, decoded, for routing
	// A trusted peer's X-Forwarded-For and Forwarded values, joined.
	xff, fwd []byte
	info     []byte // an informational response on its way to the client
	// deadline is the request's for its answer's headers (zero: none):
	// ResponseTimeout, shortened by the caller's tier.HeaderTimeout.
	deadline time.Time
	res      fasthttp.Response
	idBuf    [128]byte
	id       []byte // the request ID forwarded, in idBuf
	// method is kept for the metrics and the access log of a streamed
	// answer, which end after the handler returned.
	method string
	status int // the final status the client was given; 0 none
	bytes  int64
	// The streamed answer: read from pc, an attempt on e of pool.
	pc     *h1.Conn
	pool   *Pool
	e      *endpoint
	body   io.Reader
	closed bool
}

var fastExchanges = sync.Pool{New: func() any { return &fastExchange{} }}

// ServeFast forwards the request of ctx as the proxy's own fast engine
// does, for a server that embeds the proxy on its fast engine
// (tier.WithFastHTTP1), as the web tier's Forwarder does; see ServeHTTP,
// whose guarantees it keeps.
func (px *Proxy) ServeFast(ctx *fasthttp.RequestCtx) { px.serveFast(ctx) }

// serveFast forwards the request of ctx to the pool of its route; see
// ServeHTTP, whose guarantees it keeps.
func (px *Proxy) serveFast(ctx *fasthttp.RequestCtx) {
	if h := px.probes.fastHandler(b2s(ctx.Path())); h != nil {
		h(ctx)
		return
	}
	x := fastExchanges.Get().(*fastExchange)
	x.px, x.ctx, x.start = px, ctx, time.Now()
	x.deadline = px.ownDeadline(fastContext(ctx), x.start)
	px.metrics.Begin()
	streamed := false
	defer func() {
		if v := recover(); v != nil {
			x.recovered(v)
		}
		if !streamed {
			x.end()
		}
	}()
	// Routes match the path as the client wrote it, decoded but not
	// cleaned: as net/http's URL.Path, so both engines route alike.
	x.path = appendUnescapedPath(x.path[:0], ctx.URI().PathOriginal())
	x.rt = px.match(b2s(ctx.Host()), b2s(x.path))
	x.method = methodName(ctx.Method())
	body := ctx.Request.Body()
	x.writeHead(len(body))
	if x.rt == nil {
		x.problem(http.StatusNotFound, "no route for this host and path", 0)
		return
	}
	if ok, rf := px.limitRequest((*fastRequest)(ctx), x.rt); !ok {
		for _, kv := range rf.headers {
			ctx.Response.Header.Set(kv[0], kv[1])
		}
		x.serveProblem(rf.problem())
		return
	}
	if max := px.cfg.MaxBodyBytes; max > 0 && int64(len(body)) > max {
		x.problem(http.StatusRequestEntityTooLarge, "request body over "+strconv.FormatInt(max, 10)+" bytes", 0)
		return
	}
	streamed = x.forward(body)
}

// appendUnescapedPath appends p with its %XX escapes decoded; an escape
// that is not one stays as it is.
func appendUnescapedPath(dst, p []byte) []byte {
	for i := 0; i < len(p); i++ {
		if c := p[i]; c == '%' && i+2 < len(p) && isHex(p[i+1]) && isHex(p[i+2]) {
			dst = append(dst, unhex(p[i+1])<<4|unhex(p[i+2]))
			i += 2
		} else {
			dst = append(dst, c)
		}
	}
	return dst
}

func isHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

func unhex(c byte) byte {
	switch {
	case c >= 'a':
		return c - 'a' + 10
	case c >= 'A':
		return c - 'A' + 10
	}
	return c - '0'
}

// methodName is the method as a string for the metrics, which keep it: a
// constant for the standard methods.
func methodName(m []byte) string {
	for _, s := range [...]string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace} {
		if b2s(m) == s {
			return s
		}
	}
	return string(m)
}

// protoName is the request's protocol as a string for the access log: a
// constant for HTTP/1.1 and HTTP/1.0.
func protoName(p []byte) string {
	for _, s := range [...]string{"HTTP/1.1", "HTTP/1.0"} {
		if b2s(p) == s {
			return s
		}
	}
	return string(p)
}

// remoteName is the client's address as "ip:port", made in one
// allocation where net.TCPAddr.String takes two.
func remoteName(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.AddrPort().String()
	}
	return a.String()
}

// writeHead writes the request's line and headers as they go upstream,
// but for Host, which depends on the endpoint: the client's end-to-end
// headers, this hop's forwarding headers, the request ID.
func (x *fastExchange) writeHead(bodyLen int) {
	ctx, px := x.ctx, x.px
	req := &ctx.Request.Header
	out := append(x.head[:0], ctx.Method()...)
	out = append(out, ' ')
	out = x.appendPath(out)
	if q := ctx.URI().QueryString(); len(q) > 0 {
		out = append(out, '?')
		out = append(out, q...)
	}
	out = append(out, " HTTP/1.1\r\n"...)

	var client netip.Addr
	if a, ok := ctx.RemoteAddr().(*net.TCPAddr); ok {
		client, _ = netip.AddrFromSlice(a.IP)
		client = client.Unmap()
	}
	trusted := len(px.trusted) > 0 && client.IsValid() && px.trusts(client)
	connection := b2s(req.Peek("Connection"))
	x.xff, x.fwd = x.xff[:0], x.fwd[:0]
	var ids int
	var clientID []byte
	haveProto, haveHost := false, false
	for k, v := range req.AllInOrder() {
		name := b2s(k)
		switch name {
		case "Host", "Content-Length": // this hop writes its own
			continue
		case "Traceparent", "Tracestate":
			if x.rt != nil && x.rt.pool.tracer != nil {
				continue // each attempt sends its own span's
			}
		}
		switch requestHeaderRule(name, trusted) {
		case ruleDrop:
			continue
		case ruleRequestID:
			ids++
			clientID = v
			continue
		case ruleTimeout:
			x.deadline = px.shorten(fastContext(ctx), x.deadline, x.start, b2s(v))
			continue
		case ruleTE:
			if listedIn(b2s(v), "trailers") {
				out = append(out, "Te: trailers\r\n"...)
			}
			continue
		case ruleForwardedFor:
			if !listedIn(connection, name) {
				// Written after this loop, with this hop's element.
				if name == "Forwarded" {
					x.fwd = appendJoined(x.fwd, v)
				} else {
					x.xff = appendJoined(x.xff, v)
				}
			}
			continue
		case ruleForwardedSet:
			haveProto = haveProto || name == "X-Forwarded-Proto"
			haveHost = haveHost || name == "X-Forwarded-Host"
		}
		if !listedIn(connection, name) {
			out = appendHeaderLine(out, k, v)
		}
	}
	if bodyLen > 0 || x.method == http.MethodPost || x.method == http.MethodPut || x.method == http.MethodPatch {
		out = append(out, "Content-Length: "...)
		out = strconv.AppendInt(out, int64(bodyLen), 10)
		out = append(out, "\r\n"...)
	}

	if ids == 1 && len(clientID) <= len(x.idBuf) && httpx.ValidRequestID(b2s(clientID)) {
		x.id = append(x.idBuf[:0], clientID...)
	} else {
		x.id = httpx.AppendNewRequestID(x.idBuf[:0])
	}
	out = appendHeaderLine(out, []byte(tier.HeaderRequestID), x.id)

	var ipBuf [48]byte
	ip := ""
	if client.IsValid() {
		ip = b2s(client.AppendTo(ipBuf[:0]))
	}
	host := b2s(ctx.Host())
	proto := schemeOf(ctx.IsTLS())
	if len(x.xff) > 0 || ip != "" {
		out = append(out, "X-Forwarded-For: "...)
		out = appendForwardedFor(out, b2s(x.xff), ip)
		out = append(out, "\r\n"...)
	}
	if !haveProto {
		out = append(out, "X-Forwarded-Proto: "...)
		out = append(out, proto...)
		out = append(out, "\r\n"...)
	}
	if !haveHost && host != "" {
		out = append(out, "X-Forwarded-Host: "...)
		out = append(out, host...)
		out = append(out, "\r\n"...)
	}
	out = append(out, "Forwarded: "...)
	out = appendForwarded(out, b2s(x.fwd), ip, host, proto)
	out = append(out, "\r\n"...)
	x.head = out
	x.host = append(x.host[:0], host...)
}

// appendPath appends the path the request goes upstream with: as the
// client sent it, or with the route's prefix stripped as ServeHTTP strips
// it (from the decoded path, keeping the client's escaping when it still
// spells the rest).
func (x *fastExchange) appendPath(out []byte) []byte {
	raw := b2s(x.ctx.URI().PathOriginal())
	if x.rt == nil || !x.rt.StripPrefix {
		return append(out, raw...)
	}
	rest, slash := cutPrefix(b2s(x.path), x.rt.PathPrefix)
	if strings.IndexByte(raw, '%') >= 0 {
		rawRest, rawSlash := cutPrefix(raw, x.rt.PathPrefix)
		if rawSlash != slash || string(appendUnescapedPath(nil, []byte(rawRest))) != rest {
			p := rest
			if slash {
				p = "/" + rest
			}
			return append(out, (&url.URL{Path: p}).EscapedPath()...)
		}
		rest = rawRest
	}
	if slash {
		out = append(out, '/')
	}
	return append(out, rest...)
}

// appendJoined appends v to dst, the values of a header so far, as the
// next one: comma-separated, as joinValues does.
func appendJoined(dst, v []byte) []byte {
	if len(dst) > 0 {
		dst = append(dst, ", "...)
	}
	return append(dst, v...)
}

// wireFor is the whole request for an attempt on e: the head, its Host,
// what is left of the deadline, the attempt's span when traced, the end
// of the header block, the body.
func (x *fastExchange) wireFor(e *endpoint, body []byte, traced context.Context) []byte {
	w := append(x.wire[:0], x.head...)
	w = append(w, "Host: "...)
	if h := x.rt.upstreamHost(b2s(x.host)); h != "" {
		w = append(w, h...)
	} else {
		w = append(w, e.url.Host...)
	}
	w = append(w, "\r\n"...)
	if !x.deadline.IsZero() {
		w = append(w, tier.HeaderTimeout+": "...)
		w = tier.AppendTimeout(w, time.Until(x.deadline))
		w = append(w, "\r\n"...)
	}
	x.wire = w
	if traced != nil {
		// The carrier appends to x.wire, not to a local whose address
		// would move it to the heap on every request.
		x.rt.pool.tracer.prop.Inject(traced, wireCarrier{&x.wire})
	}
	x.wire = append(x.wire, "\r\n"...)
	x.wire = append(x.wire, body...)
	return x.wire
}

// forward sends the request to the route's pool, retrying as the pool's
// rules allow, and answers the client. It reports whether the answer
// streams on after the handler returns.
func (x *fastExchange) forward(body []byte) (streamed bool) {
	pool := x.rt.pool
	view := (*fastRequest)(x.ctx)
	deadline := x.deadline
	if !fits(deadline, 0) {
		x.problem(http.StatusGatewayTimeout, "the request's deadline passed before it could be forwarded", 0)
		return false
	}
	e, err := pool.first(view)
	if err != nil {
		x.fail(err)
		return false
	}
	idempotent := isIdempotent(view)
	attempts := pool.attempts()
	var tried [maxAttempts]*endpoint
	for n := 0; ; n++ {
		tried[n] = e
		pc, err := x.attempt(pool, e, n, body, idempotent, deadline)
		if err != nil && !deadline.IsZero() && !time.Now().Before(deadline) {
			x.problem(http.StatusGatewayTimeout, "the upstream did not answer in time", 0)
			return false
		}
		status := 0
		if err == nil {
			status = x.res.Header.StatusCode()
		}
		next := pool.retryTarget(view, n, attempts, idempotent, inMemory{}, status, err, tried[:n+1], deadline)
		if next == nil {
			if err != nil {
				x.fail(err)
				return false
			}
			return x.answer(pool, e, pc)
		}
		if pc != nil {
			x.discard(pool, e, pc)
		}
		e = next
	}
}

// attempt sends the request to e and reads its answer's header into
// x.res, with the pool's bookkeeping. The returned connection holds the
// answer's body; the attempt stays in flight until it is released.
func (x *fastExchange) attempt(pool *Pool, e *endpoint, n int, body []byte, idempotent bool, deadline time.Time) (_ *h1.Conn, err error) {
	var traced context.Context
	if pool.tracer != nil {
		var span trace.Span
		traced, span = pool.tracer.begin(fastContext(x.ctx), x.method, e, n)
		defer func() {
			status := 0
			if err == nil {
				status = x.res.Header.StatusCode()
			}
			endAttempt(span, status, err)
		}()
	}
	start := pool.beginAttempt(e)
	ad, byAttempt := deadline, false
	if d := pool.cfg.Retry.AttemptTimeout; d > 0 {
		if t := start.Add(d); deadline.IsZero() || t.Before(deadline) {
			ad, byAttempt = t, true
		}
	}
	wire := x.wireFor(e, body, traced)
	pc, err := pool.fast.Exchange(e.url, wire, &x.res, ad, idempotent && len(body) == 0, x.relay)
	end := time.Now()
	if err != nil {
		callerGone := false
		if h1.IsTimeout(err) {
			if byAttempt {
				err = fmt.Errorf("%s after %s: %w", e.key, pool.cfg.Retry.AttemptTimeout, ErrAttemptTimeout)
			} else {
				callerGone = true // the response timeout, as a caller giving up
			}
		}
		pool.done(e, nil)
		pool.settle(e, start, end, attemptOutcome{err: err, callerGone: callerGone})
		return nil, err
	}
	h := &x.res.Header
	pool.settle(e, start, end, attemptOutcome{status: h.StatusCode(), leaving: fastLeaving(h), retryAfter: len(h.Peek("Retry-After")) > 0})
	return pc, nil
}

// relay passes an informational response (103 Early Hints) to the client
// as it comes; the engine has flushed the answers before this one.
func (x *fastExchange) relay(h *fasthttp.ResponseHeader) error {
	x.info = appendInformational(x.info[:0], h)
	_, err := x.ctx.Conn().Write(x.info)
	return err
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

// noBody reports whether the answer has no body whatever its header
// says.
func (x *fastExchange) noBody() bool {
	code := x.res.Header.StatusCode()
	return x.ctx.IsHead() || code == http.StatusNoContent || code == http.StatusNotModified || code < 200
}

// discard drops an answer that a retry replaces, keeping its connection
// when the rest of the body is small and already there.
func (x *fastExchange) discard(pool *Pool, e *endpoint, pc *h1.Conn) {
	keep := false
	if x.noBody() {
		keep = !x.res.Header.ConnectionClose()
	} else if cl := x.res.Header.ContentLength(); cl >= 0 && cl <= h1.DrainBytes && pc.Reader().Buffered() >= cl {
		_, _ = pc.Reader().Discard(cl)
		keep = !x.res.Header.ConnectionClose()
	}
	pc.Release(keep)
	pool.done(e, nil)
	x.res.Reset()
}

// answer gives the client the upstream's answer in x.res, its body read
// from pc. It reports whether the body streams on after the handler.
func (x *fastExchange) answer(pool *Pool, e *endpoint, pc *h1.Conn) (streamed bool) {
	resp := &x.ctx.Response
	up := &x.res.Header
	resp.Header.SetNoDefaultContentType(true)
	resp.SetStatusCode(up.StatusCode())
	connection := b2s(up.Peek("Connection"))
	hasID := false
	for k, v := range up.All() {
		name := b2s(k)
		if name == "Content-Length" || !responseHeaderKept(name) || listedIn(connection, name) {
			continue
		}
		hasID = hasID || name == tier.HeaderRequestID
		resp.Header.AddBytesKV(k, v)
	}
	if !hasID {
		resp.Header.SetBytesV(tier.HeaderRequestID, x.id)
	}
	keep := !up.ConnectionClose()
	cl := up.ContentLength()
	switch {
	case x.noBody():
		if cl >= 0 {
			resp.Header.SetContentLength(cl)
		}
		pc.Peek = true
		pc.Release(keep)
		pool.done(e, nil)
		x.status = up.StatusCode()
		return false
	case cl >= 0 && cl <= fastBufferedBody && !isEventStream(up.ContentType()):
		if err := x.res.ReadBody(pc.Reader(), 0); err != nil {
			pc.Release(false)
			pool.done(e, nil)
			x.px.log.Warn("upstream body cut off", "pool", pool.Name(), "err", err)
			resp.Reset()
			x.problem(http.StatusBadGateway, "the upstream could not be reached", 0)
			return false
		}
		pc.Peek = false
		pc.Release(keep)
		pool.done(e, nil)
		// The body's buffer changes hands rather than being copied.
		x.res.SwapBody(resp.SwapBody(x.res.Body()))
		x.status, x.bytes = up.StatusCode(), int64(cl)
		return false
	}
	x.res.StreamBody = true
	if err := x.res.ReadBody(pc.Reader(), 0); err != nil {
		pc.Release(false)
		pool.done(e, nil)
		resp.Reset()
		x.problem(http.StatusBadGateway, "the upstream could not be reached", 0)
		return false
	}
	x.pc, x.pool, x.e, x.body, x.closed = pc, pool, e, x.res.BodyStream(), false
	x.status = up.StatusCode()
	size := -1 // chunked to the client, flushed as it comes
	if cl >= 0 && !isEventStream(up.ContentType()) {
		size = cl
	}
	// The head goes out at once, as net/http's proxy sends it when the
	// upstream flushes it: a client of an event stream may wait for it
	// before the first event exists.
	resp.ImmediateHeaderFlush = size < 0
	resp.SetBodyStream(x, size)
	return true
}

// isEventStream reports whether a Content-Type is text/event-stream.
func isEventStream(ct []byte) bool {
	const sse = "text/event-stream"
	return len(ct) >= len(sse) && b2s(ct[:len(sse)]) == sse
}

// Read is the streamed answer's body as the engine copies it to the
// client.
func (x *fastExchange) Read(p []byte) (int, error) {
	n, err := x.body.Read(p)
	x.bytes += int64(n)
	if err != nil && err != io.EOF {
		// The upstream failed mid-body: the client must see the answer
		// cut off, not a clean end.
		x.px.log.Warn("upstream body cut off", "pool", x.pool.Name(), "err", err)
		x.ctx.SetConnectionClose()
	}
	return n, err
}

// CloseWithError ends the streamed answer once the engine is done with
// it, err telling why it stopped early, if it did: the connection is kept
// only after a clean end, and the exchange is over.
func (x *fastExchange) CloseWithError(err error) error {
	if x.closed {
		return nil
	}
	x.closed = true
	clean := err == nil && x.res.CloseBodyStream() == nil
	x.pc.Release(clean && !x.res.Header.ConnectionClose() && x.res.Header.ContentLength() != -2)
	x.pool.done(x.e, nil)
	if err != nil {
		x.ctx.SetConnectionClose()
	}
	x.end()
	return nil
}

// Close is CloseWithError(nil).
func (x *fastExchange) Close() error { return x.CloseWithError(nil) }

// fail answers a request that could not be forwarded.
func (x *fastExchange) fail(err error) {
	status, detail, retryAfter := upstreamFailure(fastContext(x.ctx), err)
	if status == 0 {
		return
	}
	if status != http.StatusServiceUnavailable {
		x.px.log.Debug("forward failed", "err", err)
	}
	x.problem(status, detail, retryAfter)
}

// problem answers with a problem+json under the request ID this hop
// forwards.
func (x *fastExchange) problem(status int, detail string, retryAfter time.Duration) {
	p := tier.NewProblem(status, detail)
	p.RetryAfter = retryAfter
	x.serveProblem(p)
}

func (x *fastExchange) serveProblem(p *tier.Problem) {
	resp := &x.ctx.Response
	p.Instance = string(x.ctx.URI().PathOriginal())
	p.RequestID = string(x.id)
	resp.Header.SetNoDefaultContentType(true)
	resp.SetStatusCode(p.Status)
	body := tier.ProblemAnswer(p, b2s(x.ctx.Request.Header.Peek("Accept")), resp.Header.Set)
	resp.Header.SetBytesV(tier.HeaderRequestID, x.id)
	resp.SetBodyRaw(body)
	x.status, x.bytes = p.Status, int64(len(body))
}

// recovered answers a panic while forwarding with a 500 problem; the
// engine has not sent a byte of the answer yet.
func (x *fastExchange) recovered(v any) {
	err := httpedge.RecoveredRequest(fastContext(x.ctx), x.px.log, x.method, string(x.ctx.Path()), v)
	x.ctx.Response.Reset()
	if x.id == nil {
		x.id = httpx.AppendNewRequestID(x.idBuf[:0])
	}
	x.serveProblem(tier.ProblemOf(err))
}

// end counts the request in the metrics and the access log, and puts the
// exchange back in the pool.
func (x *fastExchange) end() {
	px := x.px
	px.metrics.End()
	elapsed := time.Since(x.start)
	status := x.status
	if status == 0 {
		status = httpx.StatusClientClosedRequest
	}
	var pool string
	if x.rt != nil {
		pool = x.rt.pool.Name()
	}
	px.metrics.Observe(x.method, pool, status, elapsed, x.bytes)
	if ctx := x.ctx; px.access.Enabled(fastContext(ctx), status, false) {
		// The line's strings are copied out of the request, which fasthttp
		// reuses: the ID, the client's address, Host and the URI cost an
		// allocation each; the method and protocol are constants.
		px.access.Log(&accesslog.Entry{
			Context: fastContext(ctx), RequestID: string(x.id),
			Remote: remoteName(ctx.RemoteAddr()), Method: x.method, Host: string(ctx.Host()),
			URI: string(ctx.RequestURI()), Proto: protoName(ctx.Request.Header.Protocol()),
			Pool: pool, Status: status, Bytes: x.bytes, Duration: elapsed,
		})
	}
	x.reset()
	fastExchanges.Put(x)
}

func (x *fastExchange) reset() {
	x.px, x.ctx, x.rt, x.pc, x.pool, x.e, x.body = nil, nil, nil, nil, nil, nil, nil
	x.status, x.bytes, x.id, x.method = 0, 0, nil, ""
	x.res.Reset()
	x.res.StreamBody = false
}

// fastLeaving is leaving for the fast path's answers: the header stays,
// and responseHeaderKept keeps it from the client.
func fastLeaving(h *fasthttp.ResponseHeader) bool {
	for k := range h.All() {
		if b2s(k) == httpx.DrainingHeader {
			return true
		}
	}
	return false
}

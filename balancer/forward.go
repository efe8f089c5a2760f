package balancer

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/netip"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/threetier/threetier/tier"
)

// Header values shared by every request; the transport never writes to them.
var (
	protoHTTP    = []string{"http"}
	protoHTTPS   = []string{"https"}
	connUpgrade  = []string{"Upgrade"}
	teTrailers   = []string{"trailers"}
	bufferPool   = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}
	errNoUpgrade = errors.New("the upstream switched to a protocol the client did not ask for")
)

// exchange is one request through the proxy: the client's response
// writer, its request ID, and what the 1xx callback needs, in the same
// allocation as the outgoing URL.
type exchange struct {
	resp  answer
	id    []string // accepted from the client or made here; forwarded
	url   url.URL
	trace httptrace.ClientTrace
	// The transport calls got1xx on its own goroutine, and may still do so
	// after RoundTrip returned (a timeout, a retry): mu and done keep it
	// off the response once the handler writes the final answer.
	mu   sync.Mutex
	done bool
	n1xx int
	// bodyRead: the client's body was first read, and with it net/http
	// sent the client its own 100 Continue (see continueGate).
	bodyRead bool
}

// max1xx bounds the informational responses passed on for one request.
const max1xx = 16

// forward sends r, which arrived at start, to rt's pool and copies the
// answer back to the client; ex.resp notes what the client got (nothing
// when it left first).
func (px *Proxy) forward(ex *exchange, r *http.Request, rt *route, start time.Time) {
	w, id := &ex.resp, ex.id
	deadline := px.ownDeadline(r.Context(), start)
	for _, v := range r.Header[tier.HeaderTimeout] {
		deadline = px.shorten(r.Context(), deadline, start, v)
	}
	if !fits(deadline, 0) {
		px.problem(w, r, id[0], http.StatusGatewayTimeout, "the request's deadline passed before it could be forwarded", 0)
		return
	}
	body := r.Body
	if max := px.cfg.MaxBodyBytes; max > 0 && body != nil && body != http.NoBody {
		if r.ContentLength > max {
			px.problem(w, r, id[0], http.StatusRequestEntityTooLarge, "request body over "+strconv.FormatInt(max, 10)+" bytes", 0)
			return
		}
		body = &limitedBody{ReadCloser: body, left: max, limit: max}
	}
	if body != nil && body != http.NoBody && r.ProtoMajor == 1 {
		// The upstream may answer before the upload ends (and the client
		// may wait for that answer): read and write at once.
		_ = http.NewResponseController(w).EnableFullDuplex()
	}

	ex.url = url.URL{Path: r.URL.Path, RawPath: r.URL.RawPath, RawQuery: r.URL.RawQuery}
	if rt.StripPrefix {
		ex.url.Path = stripPrefix(ex.url.Path, rt.PathPrefix)
		if ex.url.RawPath != "" {
			ex.url.RawPath = stripPrefix(ex.url.RawPath, rt.PathPrefix)
		}
	}
	ex.trace.Got1xxResponse = ex.got1xx
	if len(r.Header["Expect"]) > 0 && body != nil && body != http.NoBody {
		body = &continueGate{ReadCloser: body, ex: ex}
	}
	ctx := r.Context()
	var headersDue *time.Timer
	if !deadline.IsZero() {
		// A timer rather than a context deadline: once the headers came,
		// the answer may stream on past it.
		var cancel context.CancelCauseFunc
		ctx, cancel = context.WithCancelCause(ctx)
		defer cancel(nil)
		headersDue = time.AfterFunc(time.Until(deadline), func() { cancel(errResponseTimeout) })
	}
	out := r.WithContext(httptrace.WithClientTrace(ctx, &ex.trace))
	out.URL = &ex.url
	out.Proto, out.ProtoMajor, out.ProtoMinor = "HTTP/1.1", 1, 1
	out.RequestURI, out.Close, out.TLS = "", false, nil
	out.Body = body
	upgrade := upgradeType(r)
	out.Header = px.outHeader(r, id, upgrade)
	out.Host = rt.upstreamHost(r.Host)

	resp, upload, err := rt.pool.roundTrip(out, true, deadline)
	defer upload.detach()
	ex.finish()
	if ferr := tier.BodyFramingError(r); ferr != nil {
		// Whatever the upstream made of a body cut short, the client's
		// request was malformed: that is the answer.
		if err == nil {
			_ = resp.Body.Close()
		}
		err = ferr
	}
	if headersDue != nil && !headersDue.Stop() && context.Cause(ctx) == errResponseTimeout {
		if err == nil {
			_ = resp.Body.Close()
		}
		px.problem(w, r, id[0], http.StatusGatewayTimeout, "the upstream did not answer in time", 0)
		return
	}
	if err != nil {
		px.fail(w, r, id[0], err)
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusSwitchingProtocols {
		px.tunnel(w, r, id[0], upgrade, resp)
		return
	}

	h := w.Header()
	copyEndToEnd(h, resp.Header)
	if _, ok := h[tier.HeaderRequestID]; !ok {
		h[tier.HeaderRequestID] = id
	}
	if len(resp.Trailer) > 0 {
		names := make([]string, 0, len(resp.Trailer))
		for k := range resp.Trailer {
			names = append(names, k)
		}
		h["Trailer"] = []string{strings.Join(names, ", ")}
	}
	w.WriteHeader(resp.StatusCode)
	stream := resp.ContentLength < 0 || strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream")
	if stream {
		// The client sees the headers now, not with the first event.
		_ = http.NewResponseController(w).Flush()
	}
	if err := copyBody(w, resp.Body, stream); err != nil {
		if errors.Is(err, errUpstreamBody) && r.Context().Err() == nil {
			// The upstream failed mid-body: the client must see the
			// response cut off, not a clean end.
			px.log.WarnContext(r.Context(), "upstream body cut off", "pool", rt.pool.Name(), "err", err)
			panic(http.ErrAbortHandler)
		}
		return
	}
	for k, v := range resp.Trailer {
		h[http.TrailerPrefix+k] = v
	}
}

// finish keeps the 1xx callback off the response from now on: the final
// answer is being written.
func (ex *exchange) finish() {
	ex.mu.Lock()
	ex.done = true
	ex.mu.Unlock()
}

// got1xx passes an informational response (100 Continue, 103 Early Hints)
// to the client as it comes. The headers the final response will carry
// stay out of it.
func (ex *exchange) got1xx(code int, header textproto.MIMEHeader) error {
	ex.mu.Lock()
	defer ex.mu.Unlock()
	if ex.done {
		return nil
	}
	if code == http.StatusContinue && ex.bodyRead {
		return nil // the client has its 100 Continue already
	}
	if ex.n1xx++; ex.n1xx > max1xx {
		return errors.New("too many informational responses")
	}
	// Beneath ex.resp: an informational response is not the answer.
	h := ex.resp.ResponseWriter.Header()
	var saved http.Header
	if len(h) > 0 {
		saved = h.Clone()
		clear(h)
	}
	for k, v := range header {
		h[k] = v
	}
	ex.resp.ResponseWriter.WriteHeader(code)
	clear(h)
	for k, v := range saved {
		h[k] = v
	}
	return nil
}

// outHeader is the header of the request that goes upstream: the client's
// end-to-end headers, the forwarding headers of this hop, the request ID.
func (px *Proxy) outHeader(r *http.Request, id []string, upgrade string) http.Header {
	trusted := px.trustedPeer(r.RemoteAddr)
	connection := joinValues(r.Header["Connection"])
	h := make(http.Header, len(r.Header)+5)
	for k, v := range r.Header {
		switch requestHeaderRule(k, trusted) {
		case ruleDrop, ruleRequestID, ruleTimeout:
			continue
		case ruleTE:
			if hasToken(v, "trailers") {
				h["Te"] = teTrailers
			}
			continue
		}
		if !listedIn(connection, k) {
			h[k] = v
		}
	}
	if upgrade != "" {
		h["Connection"], h["Upgrade"] = connUpgrade, r.Header["Upgrade"]
	}
	h[tier.HeaderRequestID] = id

	client := clientIP(r.RemoteAddr)
	proto := protoHTTP
	if r.TLS != nil {
		proto = protoHTTPS
	}
	// One backing array for the values this hop sets, each a slice of one.
	vals := make([]string, 3)
	one := func(i int, v string) []string { vals[i] = v; return vals[i : i+1 : i+1] }
	switch prior := joinValues(h["X-Forwarded-For"]); {
	case prior == "" && client != "":
		h["X-Forwarded-For"] = one(0, client) // what appendForwardedFor makes, without a copy
	case prior != "":
		h["X-Forwarded-For"] = one(0, string(appendForwardedFor(nil, prior, client)))
	}
	if _, ok := h["X-Forwarded-Proto"]; !ok {
		h["X-Forwarded-Proto"] = proto
	}
	if _, ok := h["X-Forwarded-Host"]; !ok && r.Host != "" {
		h["X-Forwarded-Host"] = one(1, r.Host)
	}
	var buf [128]byte
	h["Forwarded"] = one(2, string(appendForwarded(buf[:0], joinValues(h["Forwarded"]), client, r.Host, proto[0])))
	return h
}

// joinValues is the values of a header as one comma-separated value.
func joinValues(values []string) string {
	switch len(values) {
	case 0:
		return ""
	case 1:
		return values[0]
	}
	return strings.Join(values, ", ")
}

// trustedPeer reports whether the connection comes from a configured
// trusted proxy, whose forwarding headers are kept.
func (px *Proxy) trustedPeer(remote string) bool {
	if len(px.trusted) == 0 {
		return false
	}
	ap, err := netip.ParseAddrPort(remote)
	if err != nil {
		return false
	}
	return px.trusts(ap.Addr())
}

// clientIP is the address part of a RemoteAddr ("203.0.113.7:5123").
func clientIP(remote string) string {
	if i := strings.LastIndexByte(remote, ':'); i > 0 {
		remote = remote[:i]
	}
	return strings.TrimSuffix(strings.TrimPrefix(remote, "["), "]")
}

// upgradeType is the protocol an HTTP/1.1 request asks to switch to, or "".
func upgradeType(r *http.Request) string {
	if r.ProtoMajor != 1 || !hasToken(r.Header["Connection"], "upgrade") {
		return ""
	}
	return r.Header.Get("Upgrade")
}

// hasToken reports whether a comma-separated header holds token.
func hasToken(values []string, token string) bool {
	for _, v := range values {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(textproto.TrimString(t), token) {
				return true
			}
		}
	}
	return false
}

// copyEndToEnd copies the response's end-to-end headers into dst: not the
// hop-by-hop ones, nor the ones its Connection header names.
func copyEndToEnd(dst, src http.Header) {
	connection := joinValues(src["Connection"])
	for k, v := range src {
		if responseHeaderKept(k) && !listedIn(connection, k) {
			dst[k] = v
		}
	}
}

// errResponseTimeout ends a request whose upstream did not send its
// response headers by its deadline (ProxyConfig.ResponseTimeout, or the
// caller's tier.HeaderTimeout).
var errResponseTimeout = errors.New("no response headers within the response timeout")

// errUpstreamBody marks a failure to read the upstream's response body, as
// opposed to a failure to write to the client.
var errUpstreamBody = errors.New("reading the upstream's response body")

// copyBody copies the response body to the client, flushing after every
// read when the response is streamed.
func copyBody(w http.ResponseWriter, body io.Reader, stream bool) error {
	bp := bufferPool.Get().(*[]byte)
	defer bufferPool.Put(bp)
	buf := *bp
	var rc *http.ResponseController
	if stream {
		rc = http.NewResponseController(w)
	}
	for {
		n, rerr := body.Read(buf)
		if n > 0 {
			if _, err := w.Write(buf[:n]); err != nil {
				return err
			}
			if rc != nil {
				_ = rc.Flush()
			}
		}
		switch {
		case rerr == io.EOF:
			return nil
		case rerr != nil:
			return errors.Join(errUpstreamBody, rerr)
		}
	}
}

// fail answers a request that could not be forwarded, unless the client
// has left.
func (px *Proxy) fail(w http.ResponseWriter, r *http.Request, id string, err error) {
	var fe *tier.FramingError
	if errors.As(err, &fe) {
		// Where the client's next request would begin is not known: the
		// connection ends with this answer (the server closes it too).
		w.Header().Set("Connection", "close")
		px.problem(w, r, id, fe.Status, fe.Reason, 0)
		return
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		// The rest of the body is not read: the connection cannot be reused.
		w.Header().Set("Connection", "close")
		px.problem(w, r, id, http.StatusRequestEntityTooLarge, "request body over "+strconv.FormatInt(mbe.Limit, 10)+" bytes", 0)
		return
	}
	status, detail, retryAfter := upstreamFailure(r.Context(), err)
	if status == 0 {
		return
	}
	if status != http.StatusServiceUnavailable {
		px.log.DebugContext(r.Context(), "forward failed", "err", err)
	}
	px.problem(w, r, id, status, detail, retryAfter)
}

// problem writes a problem+json answer.
func (px *Proxy) problem(w http.ResponseWriter, r *http.Request, id string, status int, detail string, retryAfter time.Duration) {
	p := tier.NewProblem(status, detail)
	p.RetryAfter = retryAfter
	serveProblem(w, r, id, p)
}

// serveProblem answers r with p under the request ID this hop forwards.
func serveProblem(w http.ResponseWriter, r *http.Request, id string, p *tier.Problem) {
	p.RequestID = id
	w.Header()[tier.HeaderRequestID] = []string{id}
	tier.ServeProblem(w, r, p)
}

// stripPrefix turns "/api/orders" into "/orders" and "/api" into "/" for
// prefix "/api/".
func stripPrefix(p, prefix string) string {
	rest, slash := cutPrefix(p, prefix)
	if slash {
		return "/" + rest
	}
	return rest
}

// cutPrefix is stripPrefix for either engine: the path without prefix is
// rest, preceded by a slash when slash is set.
func cutPrefix(p, prefix string) (rest string, slash bool) {
	if rest, ok := strings.CutPrefix(p, prefix); ok {
		return rest, !strings.HasPrefix(rest, "/")
	}
	if p+"/" == prefix {
		return "", true
	}
	return p, false
}

// continueGate makes one 100 Continue of two. The transport starts sending
// the body as soon as the upstream's 100 Continue arrives, before it hands
// that 100 to got1xx; the body's first read makes net/http send the client
// a 100 Continue of its own, and a relayed one after it would read as the
// final answer. Under ex.mu, whichever comes first wins: a 100 written by
// got1xx stops net/http's, and a body read first stops the relay.
type continueGate struct {
	io.ReadCloser
	ex     *exchange
	opened bool // read only by the body's reader
}

func (g *continueGate) Read(p []byte) (int, error) {
	if !g.opened {
		g.opened = true
		g.ex.mu.Lock()
		g.ex.bodyRead = true
		g.ex.mu.Unlock()
	}
	return g.ReadCloser.Read(p)
}

// limitedBody fails a read past limit bytes with *http.MaxBytesError. It is
// http.MaxBytesReader without its side effect on the ResponseWriter, which
// would race with the handler: the transport reads bodies on its own
// goroutine.
type limitedBody struct {
	io.ReadCloser
	left, limit int64
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.left < 0 {
		return 0, &http.MaxBytesError{Limit: b.limit}
	}
	if int64(len(p)) > b.left+1 {
		p = p[:b.left+1] // one byte more tells "at the limit" from "over it"
	}
	n, err := b.ReadCloser.Read(p)
	if int64(n) > b.left {
		n, b.left = int(b.left), -1
		return n, &http.MaxBytesError{Limit: b.limit}
	}
	b.left -= int64(n)
	return n, err
}

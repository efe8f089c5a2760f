// Package h1 is a balancer pool's own HTTP/1.1 client connections: a
// lean http.RoundTripper for net/http requests (Transport), and raw
// exchanges of a request's bytes for the front door's fast engine
// (Upstream), both on the caller's goroutine with keep-alive connections
// stacked per host.
package h1

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"os"
	"strconv"
	"sync"
	"time"

	"golang.org/x/net/http/httpguts"
)

// The limits of the lean path.
const (
	maxIdlePerHost = 256
	idleTimeout    = 90 * time.Second
	// defaultUnsafeIdle is how long a connection may have been idle and still
	// carry a request that cannot be sent again if the connection turns
	// out dead: servers close idle connections after as little as 2 s
	// (gunicorn), 5 s (Node.js, Apache), and with no background reader
	// this transport only learns of it when it uses the connection.
	defaultUnsafeIdle = time.Second
	// maxBody is the largest request body the lean path sends. It writes
	// a body before it reads the answer; a larger or unknown-length body
	// may be an upload the client streams while it waits for the answer,
	// which only the fallback's concurrent write can serve.
	maxBody = 64 << 10
	// maxHeaderBytes bounds a response's header, as
	// http.Transport.MaxResponseHeaderBytes does by default.
	maxHeaderBytes = 1 << 20
	max1xx         = 5
	// DrainBytes is how much of an unread response body Close consumes,
	// from what has already arrived only, to keep the connection.
	DrainBytes = 4 << 10
)

var (
	// aLongTimeAgo is a deadline that has passed: setting it aborts a
	// blocked read or write at once.
	aLongTimeAgo = time.Unix(1, 0)

	errHeaderTooLarge = errors.New("balancer: upstream response header too large")
	errToo1xx         = errors.New("balancer: too many 1xx informational responses")
	errUpgrade        = errors.New("balancer: upstream switched protocols unasked")
	errClosedBody     = errors.New("http: read on closed response body")

	writers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 4<<10) }}
)

// Transport is a pool's own transport: plain HTTP/1.1 to http://
// endpoints with keep-alive connections, done on the caller's goroutine.
// http.Transport spends two goroutines per connection and a hand-off
// through channels on every request; a proxy forwarding small requests
// spends most of its CPU there. Anything unusual (TLS, upgrades,
// 100-continue, trailers, streamed or large bodies, client traces other
// than 1xx) goes to fallback, decided before a byte is sent.
//
// It holds no goroutine: idle connections sit in a stack per host and
// their age is checked when one is taken or put back.
type Transport struct {
	// Fallback takes the requests the lean path does not.
	Fallback *http.Transport
	dialer   net.Dialer
	hosts    sync.Map // host:port → *hostConns
	// proxied means that fallback may send http:// requests through a
	// proxy (HTTP_PROXY is set): each request asks it first.
	proxied    bool
	unsafeIdle time.Duration // defaultUnsafeIdle
	// idempotent reports whether a request may be sent twice.
	idempotent func(*http.Request) bool
}

// NewTransport returns a Transport that connects within connectTimeout and
// sends what it does not take to fallback. A request that idempotent
// accepts, and that has no body, is sent again on a new connection when a
// kept one turns out to have been closed by the server before answering.
func NewTransport(fallback *http.Transport, connectTimeout time.Duration, idempotent func(*http.Request) bool) *Transport {
	return &Transport{
		Fallback:   fallback,
		idempotent: idempotent,
		dialer:     net.Dialer{Timeout: connectTimeout, KeepAlive: 30 * time.Second},
		proxied:    fallback.Proxy != nil && (os.Getenv("HTTP_PROXY") != "" || os.Getenv("http_proxy") != ""),
		unsafeIdle: defaultUnsafeIdle,
	}
}

// hostConns is the idle connections to one host: a stack, so that the
// connection used last, the one least likely to have been closed by the
// server, goes out first, and the others age out from the bottom.
type hostConns struct {
	mu   sync.Mutex
	idle []*Conn
}

// Conn is one connection to an upstream.
type Conn struct {
	conn   net.Conn
	host   *hostConns
	r      reader
	br     *bufio.Reader
	abort  func() // makes blocked I/O on conn fail; made once, for context.AfterFunc
	idleAt time.Time
	reused bool
	// Peek asks for a look at the socket before reuse: the last answer
	// had no body, so a server that sends one anyway (after a HEAD, a 204)
	// would have it taken for the next answer. Set it before Release.
	Peek bool
}

// peekIdle is how long a connection may sit idle before get looks at
// its socket for bytes or an end the server sent meanwhile (a 408 and a
// close). Busier connections are reused without the extra system call.
const peekIdle = 100 * time.Millisecond

// reader is what the connection's bufio.Reader reads: the connection,
// with a bound on a response header's size, counting what it read.
type reader struct {
	conn  net.Conn
	limit int64 // bytes left for the header; < 0 while reading a body
	n     int64 // bytes read in this exchange
}

func (r *reader) Read(p []byte) (int, error) {
	if r.limit >= 0 {
		if r.limit == 0 {
			return 0, errHeaderTooLarge
		}
		if int64(len(p)) > r.limit {
			p = p[:r.limit]
		}
	}
	n, err := r.conn.Read(p)
	r.n += int64(n)
	if r.limit >= 0 {
		r.limit -= int64(n)
	}
	return n, err
}

// CloseIdleConnections closes the idle connections, its own and the
// fallback's. Connections in use are closed or kept when their exchange
// ends, as with http.Transport.
func (t *Transport) CloseIdleConnections() {
	closeIdleHosts(&t.hosts)
	t.Fallback.CloseIdleConnections()
}

// closeIdleHosts closes the idle connections of every hostConns in hosts.
func closeIdleHosts(hosts *sync.Map) {
	hosts.Range(func(_, v any) bool {
		h := v.(*hostConns)
		h.mu.Lock()
		idle := h.idle
		h.idle = nil
		h.mu.Unlock()
		for _, pc := range idle {
			_ = pc.conn.Close()
		}
		return true
	})
}

// RoundTrip sends r and returns the response; see http.RoundTripper.
func (t *Transport) RoundTrip(r *http.Request) (*http.Response, error) {
	trace := httptrace.ContextClientTrace(r.Context())
	if !lean(r, trace) {
		return t.Fallback.RoundTrip(r)
	}
	if t.proxied {
		if u, err := t.Fallback.Proxy(r); u != nil || err != nil {
			return t.Fallback.RoundTrip(r)
		}
	}
	ctx := r.Context()
	if err := ctx.Err(); err != nil {
		closeRequestBody(r)
		return nil, err
	}
	addr := r.URL.Host
	if r.URL.Port() == "" {
		addr = net.JoinHostPort(r.URL.Hostname(), "80")
	}
	h := t.host(addr)
	// A request is sent again, once, on a new connection when a kept one
	// turns out to have been closed by the server while idle: when it
	// could not be written, or when no answer came and sending it twice
	// is harmless. After a write, the server may have acted on it; and a
	// body, once read, is gone.
	replayable := (r.Body == nil || r.Body == http.NoBody) && t.idempotent(r)
	maxIdle := idleTimeout
	if !replayable {
		maxIdle = t.unsafeIdle
	}
	for fresh := false; ; fresh = true {
		var pc *Conn
		if !fresh {
			pc = h.get(time.Now(), maxIdle, false)
		}
		if pc == nil {
			var err error
			if pc, err = t.dial(ctx, h, addr); err != nil {
				closeRequestBody(r)
				return nil, err
			}
		}
		resp, stale, err := t.exchange(ctx, pc, r, trace)
		if err == nil {
			return resp, nil
		}
		again := stale == notWritten || stale == noAnswer && replayable
		if !again || !pc.reused || fresh || ctx.Err() != nil {
			if stale == notWritten {
				closeRequestBody(r)
			}
			return nil, err
		}
		// The ones idle longer than pc went the same way, most likely.
		h.closeIdleSince(pc.idleAt)
	}
}

// How an exchange failed, for the retry on a new connection.
type failure int8

const (
	failed     failure = iota
	notWritten         // the request could not be written, and none of its body was read
	noAnswer           // the request was written; not a byte of an answer came
)

// lean reports whether r can take the lean path.
func lean(r *http.Request, trace *httptrace.ClientTrace) bool {
	if r.URL == nil || r.URL.Scheme != "http" || r.URL.Host == "" || len(r.Trailer) > 0 || len(r.TransferEncoding) > 0 {
		return false
	}
	if r.Body != nil && r.Body != http.NoBody && (r.ContentLength <= 0 || r.ContentLength > maxBody) {
		return false
	}
	if len(r.Header["Expect"]) > 0 || len(r.Header["Upgrade"]) > 0 || httpguts.HeaderValuesContainsToken(r.Header["Connection"], "upgrade") {
		return false
	}
	return trace == nil || trace.GetConn == nil && trace.GotConn == nil && trace.PutIdleConn == nil &&
		trace.GotFirstResponseByte == nil && trace.Got100Continue == nil && trace.DNSStart == nil &&
		trace.DNSDone == nil && trace.ConnectStart == nil && trace.ConnectDone == nil &&
		trace.TLSHandshakeStart == nil && trace.TLSHandshakeDone == nil && trace.WroteHeaderField == nil &&
		trace.WroteHeaders == nil && trace.Wait100Continue == nil && trace.WroteRequest == nil
}

func (t *Transport) host(addr string) *hostConns {
	if v, ok := t.hosts.Load(addr); ok {
		return v.(*hostConns)
	}
	v, _ := t.hosts.LoadOrStore(addr, &hostConns{})
	return v.(*hostConns)
}

// get takes the most recently used idle connection, or returns nil when
// none has been idle for at most maxIdle. With peek, it looks at the
// socket of the connection whatever its idle time.
func (h *hostConns) get(now time.Time, maxIdle time.Duration, peek bool) *Conn {
	h.mu.Lock()
	n := len(h.idle)
	if n == 0 {
		h.mu.Unlock()
		return nil
	}
	pc := h.idle[n-1]
	idle := now.Sub(pc.idleAt)
	if idle > maxIdle && idle <= idleTimeout {
		h.mu.Unlock()
		return nil // kept for a request that can be sent again
	}
	if idle > idleTimeout {
		// The newest is too old, and so are all the others.
		stale := h.idle
		h.idle = nil
		h.mu.Unlock()
		for _, c := range stale {
			_ = c.conn.Close()
		}
		return nil
	}
	h.idle[n-1] = nil
	h.idle = h.idle[:n-1]
	h.mu.Unlock()
	if (peek || pc.Peek || idle > peekIdle) && !idleConnClean(pc.conn) {
		_ = pc.conn.Close()
		return h.get(now, maxIdle, peek)
	}
	return pc
}

// put keeps pc for another request, or closes it when the stack is full.
// The oldest connection is dropped when it has been idle too long.
func (h *hostConns) put(pc *Conn, now time.Time) {
	pc.idleAt = now
	var drop *Conn
	h.mu.Lock()
	switch {
	case len(h.idle) >= maxIdlePerHost:
		drop = pc
	case len(h.idle) > 0 && now.Sub(h.idle[0].idleAt) > idleTimeout:
		drop = h.idle[0]
		n := copy(h.idle, h.idle[1:])
		h.idle[n] = pc
	default:
		h.idle = append(h.idle, pc)
	}
	h.mu.Unlock()
	if drop != nil {
		_ = drop.conn.Close()
	}
}

// closeIdleSince closes the connections idle since t or before.
func (h *hostConns) closeIdleSince(t time.Time) {
	h.mu.Lock()
	var stale []*Conn
	kept := h.idle[:0]
	for _, pc := range h.idle {
		if pc.idleAt.After(t) {
			kept = append(kept, pc)
		} else {
			stale = append(stale, pc)
		}
	}
	clear(h.idle[len(kept):])
	h.idle = kept
	h.mu.Unlock()
	for _, pc := range stale {
		_ = pc.conn.Close()
	}
}

// dial connects to addr; its errors are *net.OpError with Op "dial",
// which tells the pool that the request was never sent.
func (t *Transport) dial(ctx context.Context, h *hostConns, addr string) (*Conn, error) {
	c, err := t.dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		if cerr := ctx.Err(); cerr != nil {
			return nil, fmt.Errorf("%w: %w", cerr, err)
		}
		return nil, err
	}
	pc := &Conn{conn: c, host: h, r: reader{conn: c, limit: -1}}
	pc.br = bufio.NewReaderSize(&pc.r, 4<<10)
	pc.abort = func() { _ = c.SetDeadline(aLongTimeAgo) }
	return pc, nil
}

// exchange sends r on pc and reads the response header. stale reports
// a failure before any byte of the response came, which on a kept
// connection means the server had closed it.
func (t *Transport) exchange(ctx context.Context, pc *Conn, r *http.Request, trace *httptrace.ClientTrace) (_ *http.Response, stale failure, _ error) {
	// The context can end the exchange at any point, the response body
	// included: until the body is done, its end sets a past deadline on
	// the connection, which fails whatever I/O waits on it.
	var stop func() bool
	if ctx.Done() != nil {
		stop = context.AfterFunc(ctx, pc.abort)
	}
	fail := func(err error, stale failure) (*http.Response, failure, error) {
		if stop != nil {
			stop()
		}
		_ = pc.conn.Close()
		if cerr := ctx.Err(); cerr != nil {
			err = fmt.Errorf("%w: %w", cerr, err)
		}
		return nil, stale, err
	}

	pc.r.n = 0
	bw := writers.Get().(*bufio.Writer)
	bw.Reset(pc.conn)
	err := writeRequest(bw, r)
	bw.Reset(nil)
	writers.Put(bw)
	if err != nil {
		var we *writeError
		if errors.As(err, &we) && !we.bodyRead {
			return fail(err, notWritten) // the body stays open for the retry
		}
		closeRequestBody(r)
		return fail(err, failed)
	}
	closeRequestBody(r)

	pc.r.limit = maxHeaderBytes
	var resp *http.Response
	for n1xx := 0; ; n1xx++ {
		resp, err = http.ReadResponse(pc.br, r)
		if err != nil {
			if pc.r.n == 0 {
				return fail(err, noAnswer)
			}
			return fail(err, failed)
		}
		code := resp.StatusCode
		if code < 100 || code > 199 {
			break
		}
		if code == http.StatusSwitchingProtocols {
			return fail(errUpgrade, failed)
		}
		if n1xx == max1xx {
			return fail(errToo1xx, failed)
		}
		pc.r.limit = maxHeaderBytes
		if trace != nil && trace.Got1xxResponse != nil {
			if err := trace.Got1xxResponse(code, textproto.MIMEHeader(resp.Header)); err != nil {
				return fail(err, failed)
			}
		}
	}
	pc.r.limit = -1

	keep := !resp.Close && !r.Close && !httpguts.HeaderValuesContainsToken(r.Header["Connection"], "close")
	pc.Peek = false
	if resp.Body == http.NoBody || resp.Body == nil {
		resp.Body = http.NoBody
		pc.Peek = true
		t.release(pc, keep, stop)
		return resp, failed, nil
	}
	resp.Body = &body{body: resp.Body, t: t, pc: pc, ctx: ctx, stop: stop, keep: keep}
	return resp, failed, nil
}

// release ends an exchange on pc: the connection is kept for the next
// request when it is clean, else closed.
func (t *Transport) release(pc *Conn, keep bool, stop func() bool) {
	if stop != nil && !stop() {
		keep = false // the context ended: the connection has a past deadline
	}
	if keep && pc.br.Buffered() == 0 {
		pc.reused = true
		pc.host.put(pc, time.Now())
		return
	}
	_ = pc.conn.Close()
}

// writeError is a failure to send a request on the connection (as
// opposed to a bad request or a failure to read its body); bodyRead
// tells whether any of the body was taken from the caller.
type writeError struct {
	err      error
	bodyRead bool
}

func (e *writeError) Error() string { return "balancer: writing request: " + e.err.Error() }
func (e *writeError) Unwrap() error { return e.err }

// writeRequest writes r's head and body to bw and flushes it.
func writeRequest(bw *bufio.Writer, r *http.Request) error {
	method := r.Method
	if method == "" {
		method = http.MethodGet
	}
	if !validToken(method) {
		return fmt.Errorf("balancer: invalid method %q", method)
	}
	host := r.Host
	if host == "" {
		host = r.URL.Host
	}
	if !validHeaderValue(host) || hasByte(host, ' ') {
		return fmt.Errorf("balancer: invalid Host %q", host)
	}
	bw.WriteString(method)
	bw.WriteByte(' ')
	if u := r.URL; u.Opaque == "" {
		// RequestURI without the concatenation.
		p := u.EscapedPath()
		if p == "" {
			p = "/"
		}
		if !validHeaderValue(p) || !validHeaderValue(u.RawQuery) {
			return errors.New("balancer: can't write control character in Request.URL")
		}
		bw.WriteString(p)
		if u.ForceQuery || u.RawQuery != "" {
			bw.WriteByte('?')
			bw.WriteString(u.RawQuery)
		}
	} else {
		ruri := u.RequestURI()
		if !validHeaderValue(ruri) {
			return errors.New("balancer: can't write control character in Request.URL")
		}
		bw.WriteString(ruri)
	}
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	bw.WriteString(host)
	bw.WriteString("\r\n")
	for k, vv := range r.Header {
		switch k {
		case "Host", "Content-Length", "Transfer-Encoding", "Trailer":
			continue // written from r's fields, or not at all
		case "User-Agent":
			if len(vv) == 0 || vv[0] == "" {
				continue
			}
			vv = vv[:1]
		}
		if !validToken(k) {
			return fmt.Errorf("balancer: invalid header field name %q", k)
		}
		for _, v := range vv {
			if !validHeaderValue(v) {
				return fmt.Errorf("balancer: invalid header field value for %q", k)
			}
			bw.WriteString(k)
			bw.WriteString(": ")
			bw.WriteString(v)
			bw.WriteString("\r\n")
		}
	}
	if r.Close && !httpguts.HeaderValuesContainsToken(r.Header["Connection"], "close") {
		bw.WriteString("Connection: close\r\n")
	}
	hasBody := r.Body != nil && r.Body != http.NoBody
	switch {
	case hasBody:
		bw.WriteString("Content-Length: ")
		bw.Write(strconv.AppendInt(bw.AvailableBuffer(), r.ContentLength, 10))
		bw.WriteString("\r\n")
	case r.Method == http.MethodPost || r.Method == http.MethodPut || r.Method == http.MethodPatch:
		// As net/http does: some servers answer 411 to a POST without it.
		bw.WriteString("Content-Length: 0\r\n")
	}
	bw.WriteString("\r\n")
	if !hasBody {
		if err := bw.Flush(); err != nil {
			return &writeError{err: err}
		}
		return nil
	}
	// The body goes through bw's own buffer: read into its free space,
	// then "written" in place.
	var sent int64
	for sent < r.ContentLength {
		if bw.Available() == 0 {
			if err := bw.Flush(); err != nil {
				return &writeError{err: err, bodyRead: sent > 0}
			}
		}
		buf := bw.AvailableBuffer()
		buf = buf[:min(int64(cap(buf)), r.ContentLength-sent)]
		n, err := r.Body.Read(buf)
		if n > 0 {
			sent += int64(n)
			bw.Write(buf[:n])
		}
		if err == io.EOF && sent < r.ContentLength {
			return fmt.Errorf("http: ContentLength=%d with Body length %d", r.ContentLength, sent)
		}
		if err != nil && err != io.EOF {
			return err
		}
	}
	if err := bw.Flush(); err != nil {
		return &writeError{err: err, bodyRead: true}
	}
	return nil
}

// closeRequestBody closes r's body, as a RoundTripper must.
func closeRequestBody(r *http.Request) {
	if r.Body != nil && r.Body != http.NoBody {
		_ = r.Body.Close()
	}
}

// body is a response body on the lean path. Read to its end, it puts
// the connection back for the next request; closed before that, it keeps
// the connection only if the rest of the body had already arrived.
type body struct {
	body  io.ReadCloser // from http.ReadResponse; never closed, which would read it to its end
	t     *Transport
	pc    *Conn
	ctx   context.Context
	stop  func() bool
	keep  bool
	mu    sync.Mutex
	state int8  // bodyIdle, bodyReading or bodyDone
	rerr  error // what Read returns once done
}

const (
	bodyIdle int8 = iota
	bodyReading
	bodyDone
)

func (b *body) Read(p []byte) (int, error) {
	b.mu.Lock()
	switch b.state {
	case bodyDone:
		err := b.rerr
		b.mu.Unlock()
		return 0, err
	case bodyReading:
		b.mu.Unlock()
		return 0, errors.New("balancer: concurrent reads of a response body")
	}
	b.state = bodyReading
	b.mu.Unlock()

	n, err := b.body.Read(p)

	b.mu.Lock()
	if b.state == bodyDone { // closed during the read, which closed the connection
		rerr := b.rerr
		b.mu.Unlock()
		if err != nil {
			err = rerr
		}
		return n, err
	}
	if err == nil {
		b.state = bodyIdle
		b.mu.Unlock()
		return n, nil
	}
	if err != io.EOF {
		if cerr := b.ctx.Err(); cerr != nil {
			err = fmt.Errorf("%w: %w", cerr, err)
		}
	}
	b.state, b.rerr = bodyDone, err
	b.mu.Unlock()
	b.t.release(b.pc, err == io.EOF && b.keep, b.stop)
	return n, err
}

func (b *body) Close() error {
	b.mu.Lock()
	state := b.state
	if state == bodyDone {
		b.mu.Unlock()
		return nil
	}
	b.state, b.rerr = bodyDone, errClosedBody
	b.mu.Unlock()
	if state == bodyReading {
		// A read waits on the connection: closing it ends the read.
		b.t.release(b.pc, false, b.stop)
		return nil
	}
	if b.stop != nil && !b.stop() {
		_ = b.pc.conn.Close()
		return nil
	}
	b.t.release(b.pc, b.keep && b.drainArrived(), nil)
	return nil
}

// drainArrived reads the rest of the body if it has all arrived already,
// without waiting on the connection, and reports whether it reached the
// end.
func (b *body) drainArrived() bool {
	if b.pc.br.Buffered() == 0 {
		return false
	}
	c := b.pc.conn
	if c.SetReadDeadline(aLongTimeAgo) != nil {
		return false
	}
	_, err := io.CopyN(io.Discard, b.body, DrainBytes+1)
	return err == io.EOF && c.SetReadDeadline(time.Time{}) == nil
}

// validToken reports whether s is an RFC 9110 token (a method, a field
// name).
func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !tokenByte[s[i]] {
			return false
		}
	}
	return true
}

// validHeaderValue reports whether s holds no control character but tab:
// a value that cannot end its line early and smuggle in another header.
func validHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

func hasByte(s string, c byte) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			return true
		}
	}
	return false
}

var tokenByte = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

package tier_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/threetier/threetier/internal/certreload"
	"github.com/threetier/threetier/internal/framingtest"
	"github.com/threetier/threetier/internal/httpx"
	"github.com/threetier/threetier/internal/testcert"
	"github.com/threetier/threetier/tier"
)

// engines records the request lines each engine of a fast server served,
// in order: "fast GET /a" or "net POST /b".
type engines struct {
	mu    sync.Mutex
	lines []string
}

func (e *engines) note(engine, method, uri string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.lines = append(e.lines, engine+" "+method+" "+uri)
}

func (e *engines) seen() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.lines...)
}

// Paths is what framingtest reads: the paths either engine served.
func (e *engines) Paths() []string {
	var paths []string
	for _, l := range e.seen() {
		f := strings.Fields(l)
		paths = append(paths, f[len(f)-1])
	}
	return paths
}

// fast answers "fast <body length>", noting each request.
func (e *engines) fast(ctx *fasthttp.RequestCtx) {
	e.note("fast", string(ctx.Method()), string(ctx.RequestURI()))
	ctx.SetContentType("text/plain")
	ctx.SetBodyString("fast " + strconv.Itoa(len(ctx.Request.Body())))
}

// ServeHTTP is the net/http handler: it echoes what follows a switch of
// protocols, and answers "net <body length>" otherwise.
func (e *engines) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	e.note("net", r.Method, r.RequestURI)
	if r.Header.Get("Upgrade") == "echo" {
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
		_ = brw.Flush()
		_, _ = io.Copy(c, brw)
		return
	}
	b, err := io.ReadAll(r.Body)
	if err != nil {
		w.Header().Set("Connection", "close")
		tier.WriteProblem(w, tier.NewProblem(http.StatusBadRequest, err.Error()))
		return
	}
	_, _ = io.WriteString(w, "net "+strconv.Itoa(len(b)))
}

// startFast starts a fast server over e, in cleartext or (with tlsOn)
// TLS, and returns it with a dialer of HTTP/1.1 connections to it.
func startFast(t *testing.T, e *engines, tlsOn bool, hs *http.Server, opts ...tier.ServerOption) (*tier.HTTPServer, framingtest.Dial, *x509.CertPool) {
	t.Helper()
	return startFastWith(t, e, e.fast, tlsOn, hs, opts...)
}

// startFastWith is startFast with h as the fast handler.
func startFastWith(t *testing.T, e *engines, h fasthttp.RequestHandler, tlsOn bool, hs *http.Server, opts ...tier.ServerOption) (*tier.HTTPServer, framingtest.Dial, *x509.CertPool) {
	t.Helper()
	if hs == nil {
		hs = &http.Server{ReadHeaderTimeout: 5 * time.Second, MaxHeaderBytes: 8 << 10}
	}
	hs.Addr, hs.Handler = "127.0.0.1:0", e
	var roots *x509.CertPool
	if tlsOn {
		dir := t.TempDir()
		certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
		roots = testcert.Write(t, certFile, keyFile, 1)
		certs, err := certreload.New(certFile, keyFile)
		if err != nil {
			t.Fatal(err)
		}
		hs.TLSConfig = certs.TLSConfig()
	}
	srv := tier.NewHTTPServer("fast", hs, append([]tier.ServerOption{tier.WithFastHTTP1(h)}, opts...)...)
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Stop(ctx); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	dial := framingtest.TCP(srv.Addr())
	if tlsOn {
		dial = func() (net.Conn, error) {
			d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 5 * time.Second},
				Config: &tls.Config{RootCAs: roots, NextProtos: []string{"http/1.1"}}}
			return d.Dial("tcp", srv.Addr())
		}
	}
	return srv, dial, roots
}

// Every request-smuggling vector is answered by the fast engine as by
// net/http: one problem, then the connection closes, and neither engine
// ever sees the request hidden behind the bad framing.
func TestFastFraming(t *testing.T) {
	for _, tlsOn := range []bool{false, true} {
		t.Run(map[bool]string{false: "cleartext", true: "TLS"}[tlsOn], func(t *testing.T) {
			e := &engines{}
			_, dial, _ := startFast(t, e, tlsOn, nil)
			framingtest.Run(t, dial, e)
		})
	}
}

// A plain GET is served by the fast engine; the requests on the same
// connection that it cannot serve as net/http does go, with the rest of
// the connection, to net/http, and every answer comes in order.
func TestFastHandsOverWhatItCannotServe(t *testing.T) {
	get := "GET /first HTTP/1.1\r\nHost: a\r\n\r\n"
	for _, tc := range []struct {
		name, raw string
		want      []string // the answers' bodies
	}{
		{"chunked", get + "POST /chunked HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n" + get,
			[]string{"fast 0", "net 5", "net 0"}},
		{"expect", get + "POST /expect HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nhello",
			[]string{"fast 0", "net 5"}},
		{"over FastMaxBody", get + "POST /big HTTP/1.1\r\nHost: a\r\nContent-Length: " + strconv.Itoa(tier.FastMaxBody+1) + "\r\n\r\n" +
			strings.Repeat("x", tier.FastMaxBody+1), []string{"fast 0", "net " + strconv.Itoa(tier.FastMaxBody+1)}},
		{"at FastMaxBody", get + "POST /limit HTTP/1.1\r\nHost: a\r\nContent-Length: " + strconv.Itoa(tier.FastMaxBody) + "\r\n\r\n" +
			strings.Repeat("x", tier.FastMaxBody), []string{"fast 0", "fast " + strconv.Itoa(tier.FastMaxBody)}},
	} {
		for _, tlsOn := range []bool{false, true} {
			t.Run(tc.name+map[bool]string{false: "", true: " over TLS"}[tlsOn], func(t *testing.T) {
				testFastHandsOver(t, tlsOn, tc.raw, tc.want)
			})
		}
	}
}

func testFastHandsOver(t *testing.T, tlsOn bool, raw string, wantBodies []string) {
	e := &engines{}
	_, dial, _ := startFast(t, e, tlsOn, nil)
	c, err := dial()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	for i, want := range wantBodies {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("answer %d: %v (engines saw %q)", i, err, e.seen())
		}
		if resp.StatusCode == http.StatusContinue {
			resp, err = http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
		}
		b, _ := io.ReadAll(resp.Body)
		if string(b) != want {
			t.Errorf("answer %d: %q, want %q", i, b, want)
		}
	}
}

// A client that waits for 100 Continue before its body gets it from
// net/http, after the fast engine's answer to the request before.
func TestFastHandsOverAnExpectThatWaits(t *testing.T) {
	e := &engines{}
	_, dial, _ := startFast(t, e, false, nil)
	c, err := dial()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	_, _ = io.WriteString(c, "GET /first HTTP/1.1\r\nHost: a\r\n\r\nPOST /expect HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
	br := bufio.NewReader(c)
	var got []string
	for range 3 {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("after %q: %v", got, err)
		}
		b, _ := io.ReadAll(resp.Body)
		got = append(got, strconv.Itoa(resp.StatusCode)+" "+string(b))
		if resp.StatusCode == http.StatusContinue {
			_, _ = io.WriteString(c, "hello")
		}
	}
	if want := []string{"200 fast 0", "100 ", "200 net 5"}; !slices.Equal(got, want) {
		t.Fatalf("answers %q, want %q", got, want)
	}
}

// A WebSocket-style upgrade pipelined after a GET: the GET is answered by
// the fast engine, the upgrade by net/http's handler, which takes the
// connection over and echoes what follows.
func TestFastHandsOverAnUpgrade(t *testing.T) {
	for _, tlsOn := range []bool{false, true} {
		t.Run(map[bool]string{false: "cleartext", true: "TLS"}[tlsOn], func(t *testing.T) {
			e := &engines{}
			_, dial, _ := startFast(t, e, tlsOn, nil)
			c, err := dial()
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			const frames = "\x00\x01 not http\r\n\n\r\x7f"
			_, _ = io.WriteString(c, "GET /before HTTP/1.1\r\nHost: a\r\n\r\n"+
				"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: echo\r\n\r\n"+frames)
			br := bufio.NewReader(c)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			if b, _ := io.ReadAll(resp.Body); string(b) != "fast 0" {
				t.Fatalf("first answer %q", b)
			}
			resp, err = http.ReadResponse(br, nil)
			if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
				t.Fatalf("second answer %v, %v", resp, err)
			}
			got := make([]byte, len(frames))
			if _, err := io.ReadFull(br, got); err != nil || string(got) != frames {
				t.Fatalf("echo %q, %v", got, err)
			}
			if want := "fast GET /before|net GET /ws"; strings.Join(e.seen(), "|") != want {
				t.Errorf("engines saw %q, want %q", e.seen(), want)
			}
		})
	}
}

// exchangeOn sends one request on c and reads its answer.
func exchangeOn(t *testing.T, c net.Conn, br *bufio.Reader, raw string) (*http.Response, string) {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// closedWithin reports whether the server closes c within d, reading
// nothing more from it.
func closedWithin(c net.Conn, br *bufio.Reader, d time.Duration) bool {
	_ = c.SetReadDeadline(time.Now().Add(d))
	_, err := br.ReadByte()
	var ne net.Error
	return err != nil && !(errors.As(err, &ne) && ne.Timeout())
}

// A draining server's fast answers carry the draining mark and end their
// connections, as its net/http ones do.
func TestFastDrainMarksAnswers(t *testing.T) {
	e := &engines{}
	srv, dial, _ := startFast(t, e, false, nil)
	c, err := dial()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	resp, _ := exchangeOn(t, c, br, "GET /a HTTP/1.1\r\nHost: a\r\n\r\n")
	if resp.Header.Get(httpx.DrainingHeader) != "" || resp.Close {
		t.Fatalf("before draining: %s=%q, close=%v", httpx.DrainingHeader, resp.Header.Get(httpx.DrainingHeader), resp.Close)
	}
	if err := srv.Drain(context.Background()); err != nil { // no delay: it returns at once
		t.Fatal(err)
	}
	resp, body := exchangeOn(t, c, br, "GET /b HTTP/1.1\r\nHost: a\r\n\r\n")
	if body != "fast 0" || resp.Header.Get(httpx.DrainingHeader) != "1" || !resp.Close {
		t.Fatalf("while draining: %q, %s=%q, close=%v; want the mark and Connection: close", body, httpx.DrainingHeader, resp.Header.Get(httpx.DrainingHeader), resp.Close)
	}
	if !closedWithin(c, br, 5*time.Second) {
		t.Fatal("the connection stayed open after a draining answer")
	}
}

// A keep-alive connection is closed after IdleTimeout without a request,
// and kept while requests come.
func TestFastIdleTimeout(t *testing.T) {
	const idle = 300 * time.Millisecond
	e := &engines{}
	_, dial, _ := startFast(t, e, false, &http.Server{ReadHeaderTimeout: 5 * time.Second, IdleTimeout: idle})
	c, err := dial()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	exchangeOn(t, c, br, "GET /a HTTP/1.1\r\nHost: a\r\n\r\n")
	start := time.Now()
	if !closedWithin(c, br, 5*time.Second) {
		t.Fatal("an idle connection still open after 5 s")
	}
	if d := time.Since(start); d < idle*2/3 {
		t.Fatalf("closed after %s, before IdleTimeout %s", d, idle)
	}
}

// A request head over MaxHeaderBytes is answered 431 as a problem, and
// the connection closes.
func TestFastHeadTooLarge(t *testing.T) {
	for _, tlsOn := range []bool{false, true} {
		t.Run(map[bool]string{false: "cleartext", true: "TLS"}[tlsOn], func(t *testing.T) {
			e := &engines{}
			_, dial, _ := startFast(t, e, tlsOn, &http.Server{ReadHeaderTimeout: 5 * time.Second, MaxHeaderBytes: 4 << 10})
			raw := "GET /big HTTP/1.1\r\nHost: a\r\nX-Big: " + strings.Repeat("x", 8<<10) + "\r\n\r\n"
			answers, bodies, closed := framingtest.Answers(t, dial, raw, 10*time.Second)
			if len(answers) != 1 || answers[0].StatusCode != http.StatusRequestHeaderFieldsTooLarge {
				t.Fatalf("answers %v %q, want one 431", answers, bodies)
			}
			if ct := answers[0].Header.Get("Content-Type"); ct != tier.ContentTypeProblem {
				t.Errorf("Content-Type %q, want %s", ct, tier.ContentTypeProblem)
			}
			if !closed {
				t.Error("the connection stayed open")
			}
			if len(e.seen()) != 0 {
				t.Errorf("engines saw %q", e.seen())
			}
		})
	}
}

// Over TLS, the fast handler sees ctx.IsTLS, and HTTP/2 is served by the
// http.Server's handler.
func TestFastTLSAndHTTP2(t *testing.T) {
	e := &engines{}
	var sawTLS atomic.Bool
	fast := e.fast
	hs := &http.Server{ReadHeaderTimeout: 5 * time.Second}
	srv, dial, roots := startFastWith(t, e, func(ctx *fasthttp.RequestCtx) {
		sawTLS.Store(ctx.IsTLS() && ctx.TLSConnectionState() != nil)
		fast(ctx)
	}, true, hs)
	answers, bodies, _ := framingtest.Answers(t, dial, "GET /h1 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", 10*time.Second)
	if len(answers) != 1 || bodies[0] != "fast 0" || !sawTLS.Load() {
		t.Fatalf("HTTP/1.1 over TLS: %q, IsTLS %v", bodies, sawTLS.Load())
	}
	addr := srv.Addr()
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots}, ForceAttemptHTTP2: true}}
	defer client.CloseIdleConnections()
	resp, err := client.Get("https://" + addr + "/h2")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.ProtoMajor != 2 || string(b) != "net 0" {
		t.Fatalf("over HTTP/2: %s %q, want net/http's answer", resp.Proto, b)
	}
}

// The fast handler may write an interim answer straight to the
// connection: every answer before it is out, and its own follows.
func TestFastInterimAnswer(t *testing.T) {
	e := &engines{}
	_, dial, _ := startFastWith(t, e, func(ctx *fasthttp.RequestCtx) {
		if string(ctx.Path()) == "/hint" {
			_, _ = io.WriteString(ctx.Conn(), "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n")
		}
		e.fast(ctx)
	}, false, nil)
	c, err := dial()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	_, _ = io.WriteString(c, "GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /hint HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n")
	br := bufio.NewReader(c)
	var got []int
	for range 4 {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("after %v: %v", got, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		got = append(got, resp.StatusCode)
	}
	if want := []int{200, 103, 200, 200}; !slices.Equal(got, want) {
		t.Fatalf("answers %v, want %v", got, want)
	}
}

// A Stop whose context ends before a fast request does closes the
// connection under it, as for net/http.
func TestFastStopTimeoutClosesStuckRequests(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	defer close(release)
	e := &engines{}
	srv, dial, _ := startFastWith(t, e, func(ctx *fasthttp.RequestCtx) {
		close(entered)
		<-release // the handler cannot see its connection go
	}, false, nil)
	c, err := dial()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, _ = io.WriteString(c, "GET /stuck HTTP/1.1\r\nHost: a\r\n\r\n")
	<-entered
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := srv.Stop(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Stop = %v, want deadline exceeded", err)
	}
	if !closedWithin(c, bufio.NewReader(c), 5*time.Second) {
		t.Fatal("the stuck request's connection is still open after Stop")
	}
}

// A head that starts on a keep-alive connection must end within
// ReadHeaderTimeout, not the longer IdleTimeout.
func TestFastHeadTimeoutOnKeepAlive(t *testing.T) {
	const head = 300 * time.Millisecond
	e := &engines{}
	_, dial, _ := startFast(t, e, false, &http.Server{ReadHeaderTimeout: head, IdleTimeout: time.Minute})
	c, err := dial()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	exchangeOn(t, c, br, "GET /a HTTP/1.1\r\nHost: a\r\n\r\n")
	start := time.Now()
	_, _ = io.WriteString(c, "GET /b HTTP/1.1\r\nHost: a\r\n")
	// The client may get a 408 first; then the connection closes.
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err = io.Copy(io.Discard, br)
	if d := time.Since(start); err != nil || d > 10*head {
		t.Fatalf("a stalled head held for %s (%v), over ReadHeaderTimeout %s", d, err, head)
	}
}

// Bodies are read as the framer reads them, whatever the method: the
// bytes of a GET's body are never taken for a request.
func TestFastReadsBodiesAsTheFramerDoes(t *testing.T) {
	const hidden = "GET /smuggled HTTP/1.1\r\nH: a\r\n"
	raw := "GET /a HTTP/1.1\r\nHost: a\r\nContent-Length: " + strconv.Itoa(len(hidden)) + "\r\n\r\n" + hidden +
		"DELETE /b HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello" +
		"GET /c HTTP/1.0\r\n\r\n"
	testFastHandsOver(t, false, raw, []string{"fast " + strconv.Itoa(len(hidden)), "fast 5", "fast 0"})
}

// A Stop right after Start returns: the fast engine's listener closes even
// if fasthttp had not begun to serve it.
func TestFastStopRightAfterStart(t *testing.T) {
	for range 50 {
		srv := tier.NewHTTPServer("fast", &http.Server{Addr: "127.0.0.1:0", Handler: &engines{}}, tier.WithFastHTTP1((&engines{}).fast))
		if err := srv.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := srv.Stop(ctx)
		cancel()
		if err != nil {
			t.Fatalf("Stop: %v", err)
		}
	}
}

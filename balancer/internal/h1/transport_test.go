package h1

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/textproto"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/threetier/threetier/internal/wait"
)

// h1Server is an http.Server on 127.0.0.1 that counts the connections
// made to it and the ones closed.
type h1Server struct {
	url           string
	opened, ended atomic.Int64
}

func newH1Server(t *testing.T, h http.HandlerFunc, configure ...func(*http.Server)) *h1Server {
	t.Helper()
	s := &h1Server{}
	ts := httptest.NewUnstartedServer(h)
	ts.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		switch st {
		case http.StateNew:
			s.opened.Add(1)
		case http.StateClosed, http.StateHijacked:
			s.ended.Add(1)
		}
	}
	for _, f := range configure {
		f(ts.Config)
	}
	ts.Start()
	t.Cleanup(ts.Close)
	s.url = ts.URL
	return s
}

// rawServer answers each request on a connection with answer, which
// writes the raw response and says whether to keep the connection.
type rawServer struct {
	addr   string
	opened atomic.Int64
}

func newRawServer(t *testing.T, answer func(r *http.Request, w io.Writer) (keep bool)) *rawServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &rawServer{addr: ln.Addr().String()}
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := map[net.Conn]bool{}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.opened.Add(1)
			mu.Lock()
			conns[c] = true
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					r, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					_, _ = io.Copy(io.Discard, r.Body)
					if !answer(r, c) {
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		for c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return s
}

// idempotentMethod is the tests' rule for a request that may be sent
// twice: its method is idempotent (RFC 9110).
func idempotentMethod(r *http.Request) bool {
	switch r.Method {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	return false
}

func newTestH1(t *testing.T) *Transport {
	fallback := http.DefaultTransport.(*http.Transport).Clone()
	tr := NewTransport(fallback, 5*time.Second, idempotentMethod)
	t.Cleanup(tr.CloseIdleConnections)
	return tr
}

// idle is how many connections tr keeps for addr ("127.0.0.1:port").
func (t *Transport) idle(addr string) int {
	v, ok := t.hosts.Load(addr)
	if !ok {
		return 0
	}
	h := v.(*hostConns)
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.idle)
}

func hostOf(url string) string { return strings.TrimPrefix(url, "http://") }

// do sends a request through rt and returns the status and the whole body.
func do(t *testing.T, rt http.RoundTripper, r *http.Request) (int, string) {
	t.Helper()
	resp, err := rt.RoundTrip(r)
	if err != nil {
		t.Fatalf("%s %s: %v", r.Method, r.URL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: body: %v", r.Method, r.URL, err)
	}
	return resp.StatusCode, string(b)
}

func newReq(t *testing.T, method, url string, body io.Reader) *http.Request {
	t.Helper()
	r, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestH1ReusesOneConnectionForSequentialRequests(t *testing.T) {
	s := newH1Server(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "hello "+r.URL.RequestURI())
	})
	tr := newTestH1(t)
	for i := range 100 {
		uri := fmt.Sprintf("/p/%d?q=%d", i, i)
		if code, body := do(t, tr, newReq(t, "GET", s.url+uri, nil)); code != 200 || body != "hello "+uri {
			t.Fatalf("request %d: %d %q", i, code, body)
		}
	}
	if n := s.opened.Load(); n != 1 {
		t.Fatalf("%d connections for 100 sequential requests, want 1", n)
	}
	if n := tr.idle(hostOf(s.url)); n != 1 {
		t.Fatalf("%d idle connections, want 1", n)
	}
}

func TestH1ConcurrentRequests(t *testing.T) {
	s := newH1Server(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, r.URL.Query().Get("n"))
	})
	tr := newTestH1(t)
	const workers, each = 8, 50
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				n := fmt.Sprint(w*each + i)
				resp, err := tr.RoundTrip(newReq(t, "GET", s.url+"/?n="+n, nil))
				if err != nil {
					errs <- err
					return
				}
				b, err := io.ReadAll(resp.Body)
				_ = resp.Body.Close()
				if err != nil || string(b) != n {
					errs <- fmt.Errorf("got %q %v, want %q", b, err, n)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := s.opened.Load(); n > workers {
		t.Fatalf("%d connections for %d workers", n, workers)
	}
}

func TestH1RequestBodiesArriveIntact(t *testing.T) {
	type seen struct {
		length int64
		te     []string
		sum    string
	}
	got := make(chan seen, 1)
	s := newH1Server(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- seen{r.ContentLength, r.TransferEncoding, string(b)}
	})
	tr := newTestH1(t)
	payload := func(n int) string {
		var b strings.Builder
		for i := 0; b.Len() < n; i++ {
			fmt.Fprintf(&b, "%07d,", i)
		}
		return b.String()[:n]
	}
	for _, c := range []struct {
		name    string
		size    int
		unknown bool // sent chunked, through the fallback
		lean    bool
	}{
		{"small", 10, false, true},
		{"several-buffers", 20 << 10, false, true},
		{"largest-lean", maxBody, false, true},
		{"over-lean", maxBody + 1, false, false},
		{"chunked", 30 << 10, true, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			tr.CloseIdleConnections()
			want := payload(c.size)
			var body io.Reader = strings.NewReader(want)
			if c.unknown {
				body = io.MultiReader(body) // hides the length
			}
			r := newReq(t, "POST", s.url+"/", body)
			if code, _ := do(t, tr, r); code != 200 {
				t.Fatalf("status %d", code)
			}
			g := <-got
			if g.sum != want {
				t.Fatalf("body of %d bytes arrived as %d bytes", len(want), len(g.sum))
			}
			if c.unknown != (len(g.te) == 1 && g.te[0] == "chunked") || !c.unknown && g.length != int64(c.size) {
				t.Fatalf("framing: Content-Length %d, Transfer-Encoding %q", g.length, g.te)
			}
			if lean := tr.idle(hostOf(s.url)) == 1; lean != c.lean {
				t.Fatalf("lean path %v, want %v", lean, c.lean)
			}
		})
	}
}

func TestH1ResponseFramings(t *testing.T) {
	s := newH1Server(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/length":
			w.Header().Set("Content-Length", "5")
			_, _ = io.WriteString(w, "12345")
		case "/chunked":
			_, _ = io.WriteString(w, "part1-")
			w.(http.Flusher).Flush()
			_, _ = io.WriteString(w, "part2")
		case "/trailer":
			w.Header().Set("Trailer", "X-Sum")
			_, _ = io.WriteString(w, "body")
			w.Header().Set("X-Sum", "42")
		case "/204":
			w.WriteHeader(http.StatusNoContent)
		case "/304":
			w.WriteHeader(http.StatusNotModified)
		default:
			w.Header().Set("Content-Length", "4")
			_, _ = io.WriteString(w, "head")
		}
	})
	tr := newTestH1(t)
	for _, c := range []struct{ method, path, body string }{
		{"GET", "/length", "12345"},
		{"GET", "/chunked", "part1-part2"},
		{"GET", "/trailer", "body"},
		{"GET", "/204", ""},
		{"GET", "/304", ""},
		{"HEAD", "/head", ""},
	} {
		for range 3 {
			resp, err := tr.RoundTrip(newReq(t, c.method, s.url+c.path, nil))
			if err != nil {
				t.Fatalf("%s %s: %v", c.method, c.path, err)
			}
			b, err := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			if err != nil || string(b) != c.body {
				t.Fatalf("%s %s: %q %v, want %q", c.method, c.path, b, err, c.body)
			}
			if c.path == "/trailer" && resp.Trailer.Get("X-Sum") != "42" {
				t.Fatalf("trailer %v", resp.Trailer)
			}
			if c.path == "/head" && resp.ContentLength != 4 {
				t.Fatalf("HEAD Content-Length %d", resp.ContentLength)
			}
		}
	}
	if n := s.opened.Load(); n != 1 {
		t.Fatalf("%d connections, want 1: every framing leaves the connection clean", n)
	}
}

func TestH1CloseDelimitedAndConnectionClose(t *testing.T) {
	s := newRawServer(t, func(r *http.Request, w io.Writer) bool {
		if r.URL.Path == "/eof" {
			_, _ = io.WriteString(w, "HTTP/1.1 200 OK\r\n\r\nuntil the end")
			return false
		}
		_, _ = io.WriteString(w, "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 5\r\n\r\nbye!!")
		return false
	})
	tr := newTestH1(t)
	for i := range 3 {
		if _, body := do(t, tr, newReq(t, "GET", "http://"+s.addr+"/eof", nil)); body != "until the end" {
			t.Fatalf("close-delimited body %q", body)
		}
		if _, body := do(t, tr, newReq(t, "GET", "http://"+s.addr+"/close", nil)); body != "bye!!" {
			t.Fatalf("Connection: close body %q", body)
		}
		if n := tr.idle(s.addr); n != 0 {
			t.Fatalf("round %d: %d idle connections kept after Connection: close", i, n)
		}
	}
	if n := s.opened.Load(); n != 6 {
		t.Fatalf("%d connections for 6 requests answered with close", n)
	}
}

func TestH1EarlyCloseDoesNotReuseADirtyConnection(t *testing.T) {
	big := strings.Repeat("x", 1<<20)
	s := newH1Server(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/big" {
			_, _ = io.WriteString(w, big)
			return
		}
		_, _ = io.WriteString(w, "small")
	})
	tr := newTestH1(t)

	resp, err := tr.RoundTrip(newReq(t, "GET", s.url+"/big", nil))
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 10)
	if _, err := io.ReadFull(resp.Body, buf); err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if _, err := resp.Body.Read(buf); err == nil {
		t.Fatal("read after close succeeded")
	}
	if n := tr.idle(hostOf(s.url)); n != 0 {
		t.Fatalf("%d idle connections after closing a body early", n)
	}
	wait.For(t, 5*time.Second, "the dirty connection to close", func() bool { return s.ended.Load() == 1 })
	if _, body := do(t, tr, newReq(t, "GET", s.url+"/small", nil)); body != "small" {
		t.Fatalf("next response %q", body)
	}
	if n := s.opened.Load(); n != 2 {
		t.Fatalf("%d connections, want 2", n)
	}

	// A body that has all arrived can be closed unread: the connection
	// stays.
	resp, err = tr.RoundTrip(newReq(t, "GET", s.url+"/small", nil))
	if err != nil {
		t.Fatal(err)
	}
	// Peek, so that the body is surely in the buffer.
	if _, err := resp.Body.Read(buf[:1]); err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if _, body := do(t, tr, newReq(t, "GET", s.url+"/small", nil)); body != "small" {
		t.Fatalf("next response %q", body)
	}
	if n := s.opened.Load(); n != 2 {
		t.Fatalf("%d connections, want 2: a body closed at its end keeps its connection", n)
	}
}

// TestH1RetriesConnectionsClosedWhileIdle: a server that closes every
// connection after one response, without saying so, costs no request.
func TestH1RetriesConnectionsClosedWhileIdle(t *testing.T) {
	s := newRawServer(t, func(_ *http.Request, w io.Writer) bool {
		_, _ = io.WriteString(w, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		return false
	})
	tr := newTestH1(t)
	for i := range 200 {
		method := "GET"
		if i%2 == 1 {
			method = "DELETE"
		}
		resp, err := tr.RoundTrip(newReq(t, method, "http://"+s.addr+"/", nil))
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
	}
	if n := s.opened.Load(); n != 200 {
		t.Fatalf("%d connections for 200 requests, each on a new one", n)
	}
}

func TestH1ServerIdleTimeout(t *testing.T) {
	s := newH1Server(t, func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok")
	}, func(srv *http.Server) { srv.IdleTimeout = 10 * time.Millisecond })
	tr := newTestH1(t)
	for i := range 5 {
		if _, body := do(t, tr, newReq(t, "GET", s.url+"/", nil)); body != "ok" {
			t.Fatalf("request %d: %q", i, body)
		}
		// The connection kept is now closed by the server.
		wait.For(t, 5*time.Second, "the server to close the idle connection", func() bool { return s.ended.Load() == int64(i+1) })
	}
	if n := s.opened.Load(); n != 5 {
		t.Fatalf("%d connections, want 5", n)
	}
}

// TestH1NoRetryOfAnUnsafeRequest: a POST that was written on a kept
// connection is not sent again when no answer comes: the server may have
// acted on it.
func TestH1NoRetryOfAnUnsafeRequest(t *testing.T) {
	var posts atomic.Int64
	s := newRawServer(t, func(r *http.Request, w io.Writer) bool {
		if r.Method == "POST" {
			posts.Add(1)
			return false // no answer
		}
		_, _ = io.WriteString(w, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		return true
	})
	tr := newTestH1(t)
	do(t, tr, newReq(t, "GET", "http://"+s.addr+"/", nil))
	if _, err := tr.RoundTrip(newReq(t, "POST", "http://"+s.addr+"/", nil)); err == nil {
		t.Fatal("POST without an answer succeeded")
	}
	if n := posts.Load(); n != 1 {
		t.Fatalf("POST sent %d times", n)
	}
}

func TestH1ContextCancelAbortsAHungBackend(t *testing.T) {
	got := make(chan struct{}, 1)
	s := newH1Server(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/body" {
			_, _ = io.WriteString(w, "start")
			w.(http.Flusher).Flush()
		}
		got <- struct{}{}
		<-r.Context().Done() // hangs until the client goes
	})
	tr := newTestH1(t)

	t.Run("header", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		go func() { <-got; cancel() }()
		start := time.Now()
		_, err := tr.RoundTrip(newReq(t, "GET", s.url+"/head", nil).WithContext(ctx))
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err %v, want context.Canceled", err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("took %s", d)
		}
	})
	t.Run("body", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		resp, err := tr.RoundTrip(newReq(t, "GET", s.url+"/body", nil).WithContext(ctx))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		<-got
		buf := make([]byte, 5)
		if _, err := io.ReadFull(resp.Body, buf); err != nil || string(buf) != "start" {
			t.Fatalf("%q %v", buf, err)
		}
		cancel()
		_, err = resp.Body.Read(buf)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("body read err %v, want context.Canceled", err)
		}
	})
	t.Run("deadline", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		go func() { <-got }()
		_, err := tr.RoundTrip(newReq(t, "GET", s.url+"/head", nil).WithContext(ctx))
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err %v, want context.DeadlineExceeded", err)
		}
	})
	if n := tr.idle(hostOf(s.url)); n != 0 {
		t.Fatalf("%d aborted connections kept", n)
	}
}

func TestH1DialFailureIsADialOpError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	tr := newTestH1(t)
	_, err = tr.RoundTrip(newReq(t, "POST", "http://"+addr+"/", strings.NewReader("body")))
	// Op "dial" is what tells the pool that the request was never sent.
	var op *net.OpError
	if !errors.As(err, &op) || op.Op != "dial" {
		t.Fatalf("err %#v, want a *net.OpError with Op dial", err)
	}
}

func TestH1PassesEarlyHints(t *testing.T) {
	s := newH1Server(t, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Link", "</app.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Del("Link")
		_, _ = io.WriteString(w, "final")
	})
	tr := newTestH1(t)
	var hints []string
	trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
		hints = append(hints, fmt.Sprint(code, " ", h.Get("Link")))
		return nil
	}}
	r := newReq(t, "GET", s.url+"/", nil)
	r = r.WithContext(httptrace.WithClientTrace(r.Context(), trace))
	if code, body := do(t, tr, r); code != 200 || body != "final" {
		t.Fatalf("%d %q", code, body)
	}
	if len(hints) != 1 || hints[0] != "103 </app.css>; rel=preload" {
		t.Fatalf("hints %q", hints)
	}
	if n := tr.idle(hostOf(s.url)); n != 1 {
		t.Fatal("not sent on the lean path")
	}
}

func TestH1UpgradeAndExpectGoThroughTheFallback(t *testing.T) {
	s := newH1Server(t, func(w http.ResponseWriter, r *http.Request) {
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
		b, _ := io.ReadAll(r.Body)
		_, _ = fmt.Fprintf(w, "%s:%s", r.Header.Get("Expect"), b)
	})
	tr := newTestH1(t)

	r := newReq(t, "GET", s.url+"/ws", nil)
	r.Header.Set("Connection", "Upgrade")
	r.Header.Set("Upgrade", "echo")
	resp, err := tr.RoundTrip(r)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %d", resp.StatusCode)
	}
	rw, ok := resp.Body.(io.ReadWriteCloser)
	if !ok {
		t.Fatalf("101 body %T is not writable", resp.Body)
	}
	if _, err := io.WriteString(rw, "ping"); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(rw, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("echo %q %v", buf, err)
	}
	_ = rw.Close()

	r = newReq(t, "PUT", s.url+"/up", strings.NewReader("payload"))
	r.Header.Set("Expect", "100-continue")
	if code, body := do(t, tr, r); code != 200 || body != "100-continue:payload" {
		t.Fatalf("%d %q", code, body)
	}
	if n := tr.idle(hostOf(s.url)); n != 0 {
		t.Fatalf("%d lean connections for requests the fallback takes", n)
	}
}

func TestH1HeadersAsSent(t *testing.T) {
	got := make(chan http.Header, 1)
	hosts := make(chan string, 1)
	s := newH1Server(t, func(_ http.ResponseWriter, r *http.Request) {
		got <- r.Header.Clone()
		hosts <- r.Host
	})
	tr := newTestH1(t)

	r := newReq(t, "GET", s.url+"/", nil)
	r.Header.Add("X-Many", "one")
	r.Header.Add("X-Many", "two")
	do(t, tr, r)
	h := <-got
	if <-hosts != hostOf(s.url) {
		t.Fatal("Host is not the URL's")
	}
	if v := h.Values("X-Many"); len(v) != 2 || v[0] != "one" || v[1] != "two" {
		t.Fatalf("X-Many %q", v)
	}
	if _, ok := h["User-Agent"]; ok {
		t.Fatalf("User-Agent %q added", h["User-Agent"])
	}

	r = newReq(t, "GET", s.url+"/", nil)
	r.Host = "app.example"
	r.Header.Set("User-Agent", "mine/1")
	do(t, tr, r)
	if h := <-got; h.Get("User-Agent") != "mine/1" {
		t.Fatalf("User-Agent %q", h.Get("User-Agent"))
	}
	if host := <-hosts; host != "app.example" {
		t.Fatalf("Host %q", host)
	}

	r = newReq(t, "GET", s.url+"/", nil)
	r.Header["X-Evil"] = []string{"a\r\nX-Smuggled: yes"}
	if _, err := tr.RoundTrip(r); err == nil {
		t.Fatal("a header value with CRLF was sent")
	}
	select {
	case h := <-got:
		t.Fatalf("the server got %v", h)
	default:
	}
}

func TestH1CloseIdleConnections(t *testing.T) {
	s := newH1Server(t, func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") })
	tr := newTestH1(t)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			resp, err := tr.RoundTrip(newReq(t, "GET", s.url+"/", nil))
			if err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
			}
		})
	}
	wg.Wait()
	opened := s.opened.Load()
	tr.CloseIdleConnections()
	if n := tr.idle(hostOf(s.url)); n != 0 {
		t.Fatalf("%d idle after CloseIdleConnections", n)
	}
	wait.For(t, 5*time.Second, "the server to see every connection close", func() bool { return s.ended.Load() == opened })
}

// TestH1UnsafeRequestsAvoidLongIdleConnections: a request that could not
// be sent again goes on a connection used a moment ago, or a new one.
func TestH1UnsafeRequestsAvoidLongIdleConnections(t *testing.T) {
	s := newH1Server(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		_, _ = w.Write(b)
	})
	tr := newTestH1(t)
	tr.unsafeIdle = 0 // every idle connection is too old for it
	do(t, tr, newReq(t, "GET", s.url+"/", nil))
	if _, body := do(t, tr, newReq(t, "POST", s.url+"/", strings.NewReader("once"))); body != "once" {
		t.Fatalf("POST body %q", body)
	}
	if n := s.opened.Load(); n != 2 {
		t.Fatalf("%d connections, want 2: the POST takes a new one", n)
	}
	do(t, tr, newReq(t, "GET", s.url+"/", nil))
	do(t, tr, newReq(t, "GET", s.url+"/", nil))
	if n := s.opened.Load(); n != 2 {
		t.Fatalf("%d connections, want 2: GETs take the kept ones", n)
	}
}

// TestH1UnsolicitedBytesAreNotTheNextAnswer: an upstream that sends bytes
// nobody asked for on an idle connection (a body after a HEAD answer, a 408
// before closing) must not have them taken as the next request's answer.
func TestH1UnsolicitedBytesAreNotTheNextAnswer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var conns sync.WaitGroup
	defer conns.Wait()
	stray := make(chan struct{}) // the test says when the connection is idle
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Go(func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					switch req.URL.Path {
					case "/head": // a buggy app: a body after a HEAD answer
						_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n")
						<-stray
						_, _ = io.WriteString(c, "oops")
					case "/then-408": // an answer, then a 408 on the idle connection
						_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
						<-stray
						_, _ = io.WriteString(c, "HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\n\r\n")
					default:
						_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ngood")
					}
				}
			})
		}
	}()
	addr := ln.Addr().String()
	tr := NewTransport(http.DefaultTransport.(*http.Transport).Clone(), time.Second, idempotentMethod)
	defer tr.CloseIdleConnections()
	do := func(method, path string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, "http://"+addr+path, nil)
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, string(b)
	}
	// idleDirty has the server send its stray bytes once the connection is
	// idle, and waits until they are on it.
	idleDirty := func(backdate time.Duration) {
		t.Helper()
		h := tr.host(addr)
		idle := func() *Conn {
			h.mu.Lock()
			defer h.mu.Unlock()
			if len(h.idle) != 1 {
				return nil
			}
			h.idle[0].idleAt = h.idle[0].idleAt.Add(-backdate)
			return h.idle[0]
		}
		pc := idle()
		if pc == nil {
			t.Fatal("the connection was not kept")
		}
		stray <- struct{}{}
		wait.For(t, 5*time.Second, "stray bytes on the idle connection", func() bool { return !idleConnClean(pc.conn) })
	}

	if code, _ := do("HEAD", "/head"); code != 200 {
		t.Fatalf("HEAD: %d", code)
	}
	idleDirty(0) // a bodyless answer: looked at however briefly it was idle
	if code, body := do("GET", "/"); code != 200 || body != "good" {
		t.Fatalf("after a HEAD with a stray body: %d %q", code, body)
	}

	if code, body := do("GET", "/then-408"); code != 200 || body != "ok" {
		t.Fatalf("first: %d %q", code, body)
	}
	idleDirty(time.Second) // idle long enough to be looked at
	if code, body := do("GET", "/"); code != 200 || body != "good" {
		t.Fatalf("after a stray 408: %d %q", code, body)
	}
}

package balancer

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/textproto"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/websocket"

	"github.com/threetier/threetier/internal/httpx"
	"github.com/threetier/threetier/tier"
)

// newProxyFrontOn serves a Proxy on engine over one pool of the given
// handlers' servers, and returns the front's URL.
func newProxyFrontOn(t *testing.T, engine string, cfg ProxyConfig, pcfg Config, handlers ...http.Handler) (string, *Proxy, *Pool) {
	t.Helper()
	for _, h := range handlers {
		srv := httptest.NewServer(h)
		t.Cleanup(srv.Close)
		pcfg.Endpoints = append(pcfg.Endpoints, srv.URL)
	}
	pool := newPool(t, pcfg)
	px, url := startProxyOn(t, engine, cfg, []*Pool{pool})
	return url, px, pool
}

// rawExchange sends req on a fresh connection and returns everything the
// server writes until it closes or goes quiet for a moment after answer
// contains final.
func rawExchange(t *testing.T, addr, req string, final string) string {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(addr, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var got strings.Builder
	buf := make([]byte, 4096)
	for !strings.Contains(got.String(), final) {
		n, err := c.Read(buf)
		got.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return got.String()
}

func TestProxyForwardsHeaders(t *testing.T) {
	forEngine(t, func(t *testing.T, engine string) {
		var seen atomic.Pointer[http.Request]
		backend := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			seen.Store(r.Clone(context.Background()))
			w.Header().Set("Connection", "X-Secret")
			w.Header().Set("X-Secret", "hop")
			w.Header().Set("Keep-Alive", "timeout=5")
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"ok":true}`)
		})
		url, _, _ := newProxyFrontOn(t, engine, ProxyConfig{}, Config{}, backend)

		req, _ := http.NewRequest("GET", url+"/a/b?q=1", nil)
		req.Host = "shop.example.com"
		req.Header.Set("X-Forwarded-For", "6.6.6.6")
		req.Header.Set("Forwarded", "for=6.6.6.6")
		req.Header.Set("Connection", "X-Drop-Me")
		req.Header.Set("X-Drop-Me", "1")
		req.Header.Set("Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
		req.Header.Set(tier.HeaderRequestID, "abc-123")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != `{"ok":true}` {
			t.Fatalf("got %d %q", resp.StatusCode, body)
		}
		if resp.Header.Get("X-Secret") != "" || resp.Header.Get("Keep-Alive") != "" {
			t.Errorf("hop-by-hop response headers passed: %v", resp.Header)
		}
		if got := resp.Header.Get(tier.HeaderRequestID); got != "abc-123" {
			t.Errorf("response request ID %q", got)
		}
		in := seen.Load()
		checks := map[string]string{
			"X-Forwarded-For":       "127.0.0.1",
			"X-Forwarded-Proto":     "http",
			"X-Forwarded-Host":      "shop.example.com",
			"Forwarded":             "for=127.0.0.1;host=shop.example.com;proto=http",
			"Traceparent":           "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
			tier.HeaderRequestID:    "abc-123",
			"X-Drop-Me":             "",
			"Proxy-Connection":      "",
			"Te":                    "",
			"X-Forwarded-Forwarded": "",
		}
		for k, want := range checks {
			if got := strings.Join(in.Header[k], ","); got != want {
				t.Errorf("upstream %s = %q, want %q", k, got, want)
			}
		}
		if in.Host != "shop.example.com" || in.URL.RequestURI() != "/a/b?q=1" {
			t.Errorf("upstream Host %q URI %q", in.Host, in.URL.RequestURI())
		}

		// A bad request ID is replaced, not passed on.
		req, _ = http.NewRequest("GET", url+"/", nil)
		req.Header.Set(tier.HeaderRequestID, "bad id; with spaces")
		resp, err = http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if id := seen.Load().Header.Get(tier.HeaderRequestID); !httpx.ValidRequestID(id) || id != resp.Header.Get(tier.HeaderRequestID) {
			t.Errorf("request ID upstream %q, to client %q", id, resp.Header.Get(tier.HeaderRequestID))
		}
	})
}

func TestProxyTrustsForwardedHeadersOnlyFromTrustedNetworks(t *testing.T) {
	forEngine(t, func(t *testing.T, engine string) {
		var xff, fwd atomic.Value
		backend := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			xff.Store(r.Header.Get("X-Forwarded-For"))
			fwd.Store(r.Header.Get("Forwarded"))
		})
		for _, tc := range []struct {
			trusted []string
			xff     string
			fwd     string
		}{
			{nil, "127.0.0.1", "for=127.0.0.1;host=front;proto=http"},
			{[]string{"10.0.0.0/8"}, "127.0.0.1", "for=127.0.0.1;host=front;proto=http"},
			{[]string{"127.0.0.0/8"}, "203.0.113.9, 127.0.0.1", "for=203.0.113.9, for=127.0.0.1;host=front;proto=http"},
			{[]string{"127.0.0.1"}, "203.0.113.9, 127.0.0.1", "for=203.0.113.9, for=127.0.0.1;host=front;proto=http"},
		} {
			url, _, _ := newProxyFrontOn(t, engine, ProxyConfig{TrustedProxies: tc.trusted}, Config{}, backend)
			req, _ := http.NewRequest("GET", url+"/", nil)
			req.Host = "front"
			req.Header.Set("X-Forwarded-For", "203.0.113.9")
			req.Header.Set("Forwarded", "for=203.0.113.9")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if xff.Load() != tc.xff || fwd.Load() != tc.fwd {
				t.Errorf("trusted %v: X-Forwarded-For %q, Forwarded %q; want %q, %q", tc.trusted, xff.Load(), fwd.Load(), tc.xff, tc.fwd)
			}
		}
	})
}

func TestProxyExpectContinue(t *testing.T) {
	forEngine(t, func(t *testing.T, engine string) {
		backend := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/reject" {
				w.WriteHeader(http.StatusUnprocessableEntity) // without reading the body
				return
			}
			b, _ := io.ReadAll(r.Body)
			w.WriteHeader(http.StatusCreated)
			_, _ = w.Write(b)
		})
		url, _, _ := newProxyFrontOn(t, engine, ProxyConfig{}, Config{}, backend)

		// The upstream reads the body: the client gets 100 Continue, sends the
		// body, and gets the upstream's 201.
		c, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		_, _ = io.WriteString(c, "POST /accept HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
		br := bufio.NewReader(c)
		line, err := br.ReadString('\n')
		if err != nil || !strings.HasPrefix(line, "HTTP/1.1 100 ") {
			t.Fatalf("first line %q %v, want 100 Continue", line, err)
		}
		if blank, _ := br.ReadString('\n'); blank != "\r\n" {
			t.Fatalf("100 Continue not followed by a blank line: %q", blank)
		}
		_, _ = io.WriteString(c, "hello")
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusCreated || string(b) != "hello" {
			t.Fatalf("final answer %d %q, want 201 hello", resp.StatusCode, b)
		}

		// The upstream refuses at once: the client gets the 422 as the final
		// status, with no 100 before it.
		got := rawExchange(t, url, "POST /reject HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n", "\r\n\r\n")
		if !strings.HasPrefix(got, "HTTP/1.1 422 ") {
			t.Fatalf("got %q, want a final 422", got)
		}
	})
}

func TestProxyEarlyHints(t *testing.T) {
	forEngine(t, func(t *testing.T, engine string) {
		backend := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Link", "</app.css>; rel=preload; as=style")
			w.WriteHeader(http.StatusEarlyHints)
			w.Header().Del("Link")
			w.Header().Set("Content-Type", "text/plain")
			_, _ = io.WriteString(w, "page")
		})
		url, _, _ := newProxyFrontOn(t, engine, ProxyConfig{}, Config{}, backend)
		var hints []string
		trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
			hints = append(hints, fmt.Sprintf("%d %s", code, h.Get("Link")))
			return nil
		}}
		req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "GET", url+"/", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(b) != "page" || resp.Header.Get("Link") != "" {
			t.Fatalf("final %d %q %v", resp.StatusCode, b, resp.Header)
		}
		if len(hints) != 1 || hints[0] != "103 </app.css>; rel=preload; as=style" {
			t.Fatalf("1xx seen by the client: %q", hints)
		}
	})
}

// TestProxyStreamsUploadsFullDuplex sends a body that the client has not
// finished when it waits for the answer: the proxy must send what arrived
// at once, and pass the upstream's early answer back while the upload is
// still open.
func TestProxyStreamsUploadsFullDuplex(t *testing.T) {
	forEngine(t, func(t *testing.T, engine string) {
		backend := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_ = http.NewResponseController(w).EnableFullDuplex()
			buf := make([]byte, 4)
			if _, err := io.ReadFull(r.Body, buf); err != nil {
				http.Error(w, err.Error(), 400)
				return
			}
			_, _ = fmt.Fprintf(w, "got:%s\n", buf)
			_ = http.NewResponseController(w).Flush()
			rest, _ := io.ReadAll(r.Body)
			_, _ = fmt.Fprintf(w, "rest:%s\n", rest)
		})
		for _, attempts := range []int{1, 3} { // retries on: the body is kept while it streams
			t.Run(fmt.Sprint("attempts=", attempts), func(t *testing.T) {
				url, _, _ := newProxyFrontOn(t, engine, ProxyConfig{}, Config{Retry: RetryConfig{Attempts: attempts}}, backend)
				pr, pw := io.Pipe()
				req, _ := http.NewRequest("POST", url+"/up", pr)
				req.Header.Set("Idempotency-Key", "k1")
				type result struct {
					resp *http.Response
					err  error
				}
				done := make(chan result, 1)
				go func() {
					resp, err := http.DefaultClient.Do(req)
					done <- result{resp, err}
				}()
				if _, err := io.WriteString(pw, "ping"); err != nil {
					t.Fatal(err)
				}
				var res result
				select {
				case res = <-done:
				case <-time.After(5 * time.Second):
					t.Fatal("no response while the upload is open: the body was held back")
				}
				if res.err != nil {
					t.Fatal(res.err)
				}
				defer res.resp.Body.Close()
				br := bufio.NewReader(res.resp.Body)
				if line, err := br.ReadString('\n'); err != nil || line != "got:ping\n" {
					t.Fatalf("first line %q %v", line, err)
				}
				_, _ = io.WriteString(pw, "-and-more")
				_ = pw.Close()
				if line, _ := br.ReadString('\n'); line != "rest:-and-more\n" {
					t.Fatalf("second line %q", line)
				}
			})
		}
	})
}

// TestProxyRetriesStreamedBodyOnRefusedConnection: the first endpoint is
// down (connection refused), so the body, already being streamed, goes to
// the next endpoint whole.
func TestProxyRetriesStreamedBodyOnRefusedConnection(t *testing.T) {
	forEngine(t, func(t *testing.T, engine string) {
		dead := newBackend(t)
		dead.kill()
		live := newBackend(t)
		pool := newPool(t, Config{Endpoints: []string{dead.url, live.url}, Policy: PolicyFirst})
		_, front := startProxyOn(t, engine, ProxyConfig{}, []*Pool{pool})
		pr, pw := io.Pipe()
		go func() {
			for i := range 50 {
				_, _ = fmt.Fprintf(pw, "chunk-%02d;", i)
			}
			_ = pw.Close()
		}()
		resp, err := http.Post(front+"/echo", "text/plain", pr) // POST: retried because never sent
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var want strings.Builder
		for i := range 50 {
			fmt.Fprintf(&want, "chunk-%02d;", i)
		}
		if resp.StatusCode != 200 || string(b) != want.String() {
			t.Fatalf("got %d %q", resp.StatusCode, b)
		}
	})
}

func TestProxyWebSocket(t *testing.T) {
	forEngine(t, func(t *testing.T, engine string) {
		echo := websocket.Handler(func(ws *websocket.Conn) {
			for {
				var msg string
				if websocket.Message.Receive(ws, &msg) != nil || websocket.Message.Send(ws, msg) != nil {
					return
				}
			}
		})
		url, px, _ := newProxyFrontOn(t, engine, ProxyConfig{}, Config{}, echo)
		wsURL := "ws" + strings.TrimPrefix(url, "http") + "/ws"
		ws, err := websocket.Dial(wsURL, "", url)
		if err != nil {
			t.Fatal(err)
		}
		defer ws.Close()
		for _, msg := range []string{"hello", strings.Repeat("x", 100<<10)} {
			if err := websocket.Message.Send(ws, msg); err != nil {
				t.Fatal(err)
			}
			var got string
			_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
			if err := websocket.Message.Receive(ws, &got); err != nil || got != msg {
				t.Fatalf("echo of %d bytes: got %d bytes, %v", len(msg), len(got), err)
			}
		}
		// Stop closes the tunnel: the client sees its connection end.
		if err := px.Stop(context.Background()); err != nil {
			t.Fatal(err)
		}
		var got string
		if err := websocket.Message.Receive(ws, &got); err == nil {
			t.Fatal("tunnel still open after Stop")
		}
	})
}

func TestProxyUpgradeRefusedIsNotTunnelled(t *testing.T) {
	forEngine(t, func(t *testing.T, engine string) {
		backend := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusForbidden) // refuses to switch
		})
		url, _, _ := newProxyFrontOn(t, engine, ProxyConfig{}, Config{}, backend)
		got := rawExchange(t, url, "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", "\r\n\r\n")
		if !strings.HasPrefix(got, "HTTP/1.1 403 ") {
			t.Fatalf("got %q", got)
		}
	})
}

func TestProxyFlushesEventStreams(t *testing.T) {
	forEngine(t, func(t *testing.T, engine string) {
		next := make(chan struct{})
		backend := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/event-stream")
			_, _ = io.WriteString(w, "data: one\n\n")
			_ = http.NewResponseController(w).Flush()
			select {
			case <-next:
			case <-r.Context().Done():
				return
			}
			_, _ = io.WriteString(w, "data: two\n\n")
		})
		url, _, _ := newProxyFrontOn(t, engine, ProxyConfig{}, Config{}, backend)
		resp, err := http.Get(url + "/events")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		br := bufio.NewReader(resp.Body)
		line, err := br.ReadString('\n') // arrives before the second event exists
		if err != nil || line != "data: one\n" {
			t.Fatalf("first event %q %v", line, err)
		}
		close(next)
		_, _ = br.ReadString('\n')
		if line, _ := br.ReadString('\n'); line != "data: two\n" {
			t.Fatalf("second event %q", line)
		}
	})
}

func TestProxyLimits(t *testing.T) {
	forEngine(t, func(t *testing.T, engine string) {
		backend := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, err := io.Copy(io.Discard, r.Body)
			if err != nil {
				w.WriteHeader(499)
			}
		})
		url, _, _ := newProxyFrontOn(t, engine, ProxyConfig{MaxBodyBytes: 1000}, Config{}, backend)

		resp, err := http.Post(url+"/", "text/plain", strings.NewReader(strings.Repeat("x", 1001)))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge || resp.Header.Get("Content-Type") != tier.ContentTypeProblem {
			t.Fatalf("declared oversized body: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		// A chunked body that grows past the limit on the way.
		resp, err = http.Post(url+"/", "text/plain", io.MultiReader(strings.NewReader(strings.Repeat("x", 600)), strings.NewReader(strings.Repeat("y", 600))))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Fatalf("streamed oversized body: %d", resp.StatusCode)
		}
	})
}

func TestProxyUpstreamFailuresAreProblems(t *testing.T) {
	forEngine(t, func(t *testing.T, engine string) {
		slow := make(chan struct{})
		defer close(slow)
		backend := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/slow" {
				select {
				case <-slow:
				case <-r.Context().Done():
				}
			}
		})
		url, _, pool := newProxyFrontOn(t, engine, ProxyConfig{}, Config{Retry: RetryConfig{Attempts: 1, AttemptTimeout: 100 * time.Millisecond}}, backend)
		problemOf := func(path string) (int, tier.Problem, http.Header) {
			t.Helper()
			resp, err := http.Get(url + path)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var p tier.Problem
			if ct := resp.Header.Get("Content-Type"); ct != tier.ContentTypeProblem {
				t.Fatalf("%s: content type %q", path, ct)
			}
			if err := json.NewDecoder(resp.Body).Decode(&p); err != nil {
				t.Fatal(err)
			}
			return resp.StatusCode, p, resp.Header
		}
		if code, p, _ := problemOf("/slow"); code != http.StatusGatewayTimeout || p.Status != code || p.RequestID == "" {
			t.Fatalf("slow upstream: %d %+v", code, p)
		}
		ep := pool.Snapshot()[0].URL
		if err := pool.Drain(context.Background(), ep); err != nil {
			t.Fatal(err)
		}
		if code, _, h := problemOf("/x"); code != http.StatusServiceUnavailable || h.Get("Retry-After") == "" {
			t.Fatalf("no endpoint: %d Retry-After %q", code, h.Get("Retry-After"))
		}
		if err := pool.Undrain(ep); err != nil {
			t.Fatal(err)
		}

		dead := newBackend(t)
		dead.kill()
		deadPool := newPool(t, Config{Name: "dead", Endpoints: []string{dead.url}, Retry: RetryConfig{Attempts: 1}})
		_, front := startProxyOn(t, engine, ProxyConfig{}, []*Pool{deadPool})
		resp, err := http.Get(front + "/x")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadGateway || resp.Header.Get("Content-Type") != tier.ContentTypeProblem {
			t.Fatalf("unreachable upstream: %d", resp.StatusCode)
		}
		// A browser gets the same problem as a page.
		req, _ := http.NewRequest(http.MethodGet, front+"/x?<q>", nil)
		req.Header.Set("Accept", "text/html,application/xhtml+xml,*/*;q=0.8")
		if resp, err = http.DefaultClient.Do(req); err != nil {
			t.Fatal(err)
		}
		page, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadGateway || resp.Header.Get("Content-Type") != "text/html; charset=utf-8" ||
			!strings.Contains(string(page), "<h1>502 Bad Gateway</h1>") || !strings.Contains(string(page), resp.Header.Get(tier.HeaderRequestID)) {
			t.Fatalf("unreachable upstream, to a browser: %d %q %s", resp.StatusCode, resp.Header.Get("Content-Type"), page)
		}

		// The response timeout bounds the wait for headers, retries
		// included: 504 in time, though each attempt alone has longer.
		slowPool := newPool(t, Config{Name: "slow", Endpoints: []string{newBackendServer(t, backend), newBackendServer(t, backend)},
			Retry: RetryConfig{Attempts: 3, AttemptTimeout: time.Minute}})
		_, front = startProxyOn(t, engine, ProxyConfig{ResponseTimeout: 200 * time.Millisecond}, []*Pool{slowPool})
		start := time.Now()
		resp, err = http.Get(front + "/slow")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if took := time.Since(start); resp.StatusCode != http.StatusGatewayTimeout || took > 5*time.Second {
			t.Fatalf("response timeout: %d after %s", resp.StatusCode, took)
		}
	})
}

func TestProxyRoutes(t *testing.T) {
	forEngine(t, func(t *testing.T, engine string) {
		named := func(name string) (*Pool, *atomic.Value) {
			var seen atomic.Value
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				seen.Store(r.Host + " " + r.URL.RequestURI())
				_, _ = io.WriteString(w, name)
			}))
			t.Cleanup(srv.Close)
			return newPool(t, Config{Name: name, Endpoints: []string{srv.URL}}), &seen
		}
		web, _ := named("web")
		api, apiSeen := named("api")
		admin, adminSeen := named("admin")
		_, front := startProxyOn(t, engine, ProxyConfig{Routes: []Route{
			{Host: "admin.example.com", Pool: "admin", HostHeader: "admin.internal"},
			{PathPrefix: "/api/", Pool: "api", StripPrefix: true, HostHeader: HostEndpoint},
			{Host: "*.example.com", PathPrefix: "/static/", Pool: "web"},
		}, DefaultPool: "web"}, []*Pool{web, api, admin})
		for _, tc := range []struct{ host, path, want string }{
			{"admin.example.com", "/api/x", "admin"},
			{"ADMIN.example.com:8080", "/", "admin"},
			{"shop.example.com", "/api/orders?id=1", "api"},
			{"shop.example.com", "/api", "api"},
			{"shop.example.com", "/apix", "web"},
			{"x.example.com", "/static/a.css", "web"},
			{"other.org", "/static/a.css", "web"},
			// The path as sent, decoded, not cleaned: as net/http reads it.
			{"shop.example.com", "/api/../static/x", "api"},
			{"shop.example.com", "/%61pi/x", "api"},
		} {
			req, _ := http.NewRequest("GET", front+tc.path, nil)
			req.Host = tc.host
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(b) != tc.want {
				t.Errorf("%s%s went to %q, want %q", tc.host, tc.path, b, tc.want)
			}
		}
		if got := apiSeen.Load().(string); !strings.HasSuffix(got, " /x") || strings.HasPrefix(got, "shop.") {
			t.Errorf("api saw %q: want the endpoint's host and the prefix stripped", got)
		}
		if got := adminSeen.Load().(string); !strings.HasPrefix(got, "admin.internal ") {
			t.Errorf("admin saw %q, want the fixed Host", got)
		}

		_, none := startProxyOn(t, engine, ProxyConfig{DefaultPool: "-", Routes: []Route{{PathPrefix: "/api/", Pool: "api"}}}, []*Pool{api})
		resp, err := http.Get(none + "/other")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound || resp.Header.Get("Content-Type") != tier.ContentTypeProblem {
			t.Fatalf("no route: %d", resp.StatusCode)
		}
	})
}

func TestProxyConfigErrors(t *testing.T) {
	p := newPool(t, Config{Name: "app", Endpoints: []string{"http://127.0.0.1:1"}})
	for _, tc := range []struct {
		cfg  ProxyConfig
		want string
	}{
		{ProxyConfig{Routes: []Route{{Pool: "nope"}}}, "Routes[0].Pool"},
		{ProxyConfig{Routes: []Route{{Pool: "app", PathPrefix: "api"}}}, "Routes[0].PathPrefix"},
		{ProxyConfig{Routes: []Route{{Pool: "app", Host: "a.com:80"}}}, "Routes[0].Host"},
		{ProxyConfig{Routes: []Route{{Pool: "app", StripPrefix: true}}}, "Routes[0].StripPrefix"},
		{ProxyConfig{TrustedProxies: []string{"10.0.0.0/33"}}, "TrustedProxies[0]"},
		{ProxyConfig{TLSCert: "c.pem"}, "TLSCert"},
		{ProxyConfig{RedirectListen: ":80"}, "RedirectListen"},
		{ProxyConfig{DefaultPool: "nope"}, "DefaultPool"},
		{ProxyConfig{Limits: tier.Limits{MaxConns: -1}}, "MaxConns"},
	} {
		_, err := NewProxy(tc.cfg, []*Pool{p})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: err %v, want one naming %s", tc.cfg, err, tc.want)
		}
	}
	if _, err := NewProxy(ProxyConfig{}, nil); err == nil {
		t.Error("no pools: no error")
	}
}

// TestProxyEndless1xx: an upstream that sends informational responses
// without end gets cut off after a few, and the client gets a final
// answer; the transport's goroutine stops touching the response first
// (run with -race).
func TestProxyEndless1xx(t *testing.T) {
	forEngine(t, func(t *testing.T, engine string) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go func() {
					defer c.Close()
					_, _ = http.ReadRequest(bufio.NewReader(c))
					for {
						if _, err := io.WriteString(c, "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"); err != nil {
							return
						}
					}
				}()
			}
		}()
		for _, chunked := range []bool{false, true} { // the lean transport, and http.Transport
			url, _, _ := newProxyFrontOn(t, engine, ProxyConfig{ResponseTimeout: 2 * time.Second}, Config{Endpoints: []string{"http://" + ln.Addr().String()}, Retry: RetryConfig{Attempts: 1}})
			var body io.Reader = strings.NewReader("x")
			pr, pw := io.Pipe()
			if chunked {
				body = pr
				go func() { _, _ = io.WriteString(pw, "x"); _ = pw.Close() }()
			}
			resp, err := http.Post(url+"/", "text/plain", body)
			_ = pw.Close()
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode < 500 {
				t.Fatalf("chunked=%v: got %d, want a 5xx", chunked, resp.StatusCode)
			}
		}
	})
}

package tier

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/threetier/threetier/internal/wait"
)

// A connection handed over to net/http stays one connection under the
// server's limits, in the state net/http gives it, until it closes.
func TestFastHandOverCountsOneConnection(t *testing.T) {
	srv := NewHTTPServer("fast", &http.Server{Addr: "127.0.0.1:0", ReadHeaderTimeout: 5 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			_, _ = io.WriteString(w, "net")
		})},
		WithFastHTTP1(func(ctx *fasthttp.RequestCtx) { ctx.SetBodyString("fast") }))
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Stop(context.Background()) })
	c, err := net.Dial("tcp", srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	for i, raw := range []string{
		"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
	} {
		if _, err := io.WriteString(c, raw); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		if want := []string{"fast", "net", "net"}[i]; string(b) != want {
			t.Fatalf("answer %d: %q, want %q", i, b, want)
		}
		if n := srv.conns.open(); n != 1 {
			t.Fatalf("after answer %d: %d connections open, want 1", i, n)
		}
	}
	wait.For(t, 5*time.Second, "net/http to see the connection idle", func() bool {
		srv.conns.mu.Lock()
		defer srv.conns.mu.Unlock()
		return len(srv.conns.conns) == 1 && http.ConnState(srv.conns.conns[0].state.Load()) == http.StateIdle
	})
	_ = c.Close()
	wait.For(t, 5*time.Second, "the connection to close", func() bool { return srv.conns.open() == 0 })
}

// The fast engine's state hook passes fasthttp's states on as net/http's.
func TestFastStatesAreNetHTTPs(t *testing.T) {
	for fast, std := range map[fasthttp.ConnState]http.ConnState{
		fasthttp.StateNew: http.StateNew, fasthttp.StateActive: http.StateActive, fasthttp.StateIdle: http.StateIdle,
		fasthttp.StateHijacked: http.StateHijacked, fasthttp.StateClosed: http.StateClosed,
	} {
		if http.ConnState(fast) != std {
			t.Errorf("fasthttp's %v is net/http's %v, not %v", fast, http.ConnState(fast), std)
		}
	}
}

// The framer sums up each head for the fast engine's hand-over.
func TestFramerSumsUpHeads(t *testing.T) {
	for _, tc := range []struct {
		head string
		want headSummary
		full bool
	}{
		{"GET / HTTP/1.1\r\nHost: a\r\n\r\n", headSummary{contentLength: -1}, false},
		{"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 65536\r\n\r\n", headSummary{contentLength: FastMaxBody}, false},
		{"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 65537\r\n\r\n", headSummary{contentLength: FastMaxBody + 1}, true},
		{"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", headSummary{contentLength: -1, chunked: true}, true},
		{"POST / HTTP/1.1\r\nHost: a\r\nexpect: 100-continue\r\nContent-Length: 1\r\n\r\n", headSummary{contentLength: 1, expect: true}, true},
		{"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n", headSummary{contentLength: -1, upgrade: true}, true},
		{"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n", headSummary{contentLength: -1}, false},
		{"GET / HTTP/1.1\r\nHost: a\r\nExpectation: x\r\n\r\n", headSummary{contentLength: -1}, false},
	} {
		f := newFramer()
		if _, ev, err := f.scan([]byte(tc.head)); err != nil || ev&evHead == 0 {
			t.Fatalf("%q: %v %v", tc.head, ev, err)
		}
		if f.last != tc.want || needsFullEngine(f.last) != tc.full {
			t.Errorf("%q: %+v (full engine %v), want %+v (%v)", tc.head, f.last, needsFullEngine(f.last), tc.want, tc.full)
		}
	}
}

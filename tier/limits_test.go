package tier_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/threetier/threetier/internal/syncbuf"
	"github.com/threetier/threetier/internal/wait"
	"github.com/threetier/threetier/tier"
)

// startLimited serves h under l on a loopback port and returns the
// address and the server's log.
func startLimited(t *testing.T, l tier.Limits, h http.Handler) (string, *syncbuf.Buffer) {
	t.Helper()
	return startLimitedServer(t, l, &http.Server{Addr: "127.0.0.1:0", Handler: h})
}

func startLimitedServer(t *testing.T, l tier.Limits, hs *http.Server, opts ...tier.ServerOption) (string, *syncbuf.Buffer) {
	t.Helper()
	logs := &syncbuf.Buffer{}
	srv := tier.NewHTTPServer("limited", hs, append([]tier.ServerOption{
		tier.WithLimits(l), tier.WithServerLogger(slog.New(slog.NewTextHandler(logs, nil)))}, opts...)...)
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Stop(ctx)
	})
	return srv.Addr(), logs
}

// limitEngines are the engines a server's HTTP/1.x connections may be
// served on, for the limits that hold alike on both: each either serves
// readBody or, on fasthttp, its equivalent.
var limitEngines = []struct {
	name string
	opts []tier.ServerOption
}{
	{"net-http", nil},
	{"fasthttp", []tier.ServerOption{tier.WithFastHTTP1(func(ctx *fasthttp.RequestCtx) {
		fmt.Fprintf(ctx, "read %d", len(ctx.Request.Body()))
	})}},
}

// readBody answers with the bytes it read, or with the body error as the
// problem it is.
var readBody = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	b, err := io.ReadAll(r.Body)
	var p *tier.Problem
	switch {
	case errors.As(err, &p):
		tier.WriteProblem(w, p)
	case err != nil:
		http.Error(w, err.Error(), http.StatusBadRequest)
	default:
		fmt.Fprintf(w, "read %d", len(b))
	}
})

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestBodyTimeoutLetsASlowUploadThrough(t *testing.T) {
	for _, engine := range limitEngines {
		t.Run(engine.name, func(t *testing.T) { testBodyTimeoutLetsASlowUploadThrough(t, engine.opts...) })
	}
}

func testBodyTimeoutLetsASlowUploadThrough(t *testing.T, opts ...tier.ServerOption) {
	addr, _ := startLimitedServer(t, tier.Limits{BodyTimeout: 300 * time.Millisecond}, &http.Server{Addr: "127.0.0.1:0", Handler: readBody}, opts...)
	c := dial(t, addr)
	fmt.Fprintf(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n")
	for range 10 { // 1 s in all, three times the timeout, never 300 ms without a byte
		time.Sleep(100 * time.Millisecond)
		if _, err := c.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(b) != "read 10" {
		t.Fatalf("got %d %q", resp.StatusCode, b)
	}
}

func TestBodyTimeoutCutsAStalledUpload(t *testing.T) {
	for _, engine := range limitEngines {
		t.Run(engine.name, func(t *testing.T) { testBodyTimeoutCutsAStalledUpload(t, engine.opts...) })
	}
}

func testBodyTimeoutCutsAStalledUpload(t *testing.T, opts ...tier.ServerOption) {
	addr, logs := startLimitedServer(t, tier.Limits{BodyTimeout: 300 * time.Millisecond}, &http.Server{Addr: "127.0.0.1:0", Handler: readBody}, opts...)
	c := dial(t, addr)
	fmt.Fprintf(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nx")
	start := time.Now()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatal("stalled upload still held after 5s")
		}
		t.Logf("closed without an answer after %s: %v", time.Since(start), err)
	} else {
		if resp.StatusCode != http.StatusRequestTimeout || resp.Header.Get("Content-Type") != tier.ContentTypeProblem {
			t.Fatalf("got %d %s, want 408 problem+json", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		// The connection goes after the answer: the rest cannot come in time.
		if _, err := io.Copy(io.Discard, c); err != nil {
			t.Fatalf("connection after the 408: %v", err)
		}
	}
	if d := time.Since(start); d < 250*time.Millisecond {
		t.Fatalf("cut after %s, before the timeout", d)
	}
	wait.For(t, 5*time.Second, "the warning with the count", func() bool {
		return strings.Contains(logs.String(), "body_timeouts=1")
	})
}

// TestBodyTimeoutUnreadBodyIsBounded: a handler that answers without
// reading (a 405, say) leaves net/http to discard the body before the
// answer goes; that read is bounded too.
func TestBodyTimeoutUnreadBodyIsBounded(t *testing.T) {
	addr, logs := startLimited(t, tier.Limits{BodyTimeout: 300 * time.Millisecond}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tier.WriteProblem(w, tier.NewProblem(http.StatusMethodNotAllowed, "no"))
	}))
	c := dial(t, addr)
	fmt.Fprintf(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nx")
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("connection with an unread body still held after 5s")
	}
	// The discard that timed out is a body timeout like any other.
	wait.For(t, 5*time.Second, "the warning with the count", func() bool {
		return strings.Contains(logs.String(), "body_timeouts=1")
	})
}

// TestBodyTimeoutCountsADiscardDuringTheHandler: a handler that flushes
// its answer before it is done, the body unread, has net/http discard the
// body then; a timeout there is counted once, as any other.
func TestBodyTimeoutCountsADiscardDuringTheHandler(t *testing.T) {
	done := make(chan struct{})
	release := sync.OnceFunc(func() { close(done) })
	defer release()
	addr, logs := startLimited(t, tier.Limits{BodyTimeout: 300 * time.Millisecond}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "early")
		_ = http.NewResponseController(w).Flush()
		<-done
	}))
	c := dial(t, addr)
	fmt.Fprintf(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nx")
	wait.For(t, 5*time.Second, "the warning with the count", func() bool {
		return strings.Contains(logs.String(), "body_timeouts=1")
	})
	release()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, _ = io.Copy(io.Discard, c)
	if n := strings.Count(logs.String(), "body_timeouts="); n != 1 || !strings.Contains(logs.String(), "body_timeouts=1") {
		t.Fatalf("one timeout logged as:\n%s", logs)
	}
}

// TestBodyTimeoutSparesTheContextAfterTheBody: net/http reads the
// connection in the background once the body is read; the body's deadline
// must not cancel the request while the handler works on.
func TestBodyTimeoutSparesTheContextAfterTheBody(t *testing.T) {
	addr, _ := startLimited(t, tier.Limits{BodyTimeout: 200 * time.Millisecond}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.ReadAll(r.Body); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		select {
		case <-r.Context().Done():
			http.Error(w, "cancelled", http.StatusInternalServerError)
		case <-time.After(800 * time.Millisecond):
			_, _ = io.WriteString(w, "finished")
		}
	}))
	for _, body := range []string{"Content-Length: 3\r\n\r\nabc", "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"} {
		c := dial(t, addr)
		fmt.Fprintf(c, "POST / HTTP/1.1\r\nHost: x\r\n%s", body)
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		if string(b) != "finished" {
			t.Fatalf("%q: got %d %q, want the handler to finish", body, resp.StatusCode, b)
		}
	}
}

// download writes size bytes and reports how its writing ended.
func download(size int, ended chan<- error) http.Handler {
	chunk := bytes.Repeat([]byte("0123456789abcdef"), 4096)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(size))
		var err error
		for sent := 0; sent < size && err == nil; sent += len(chunk) {
			_, err = w.Write(chunk[:min(len(chunk), size-sent)])
		}
		ended <- err
	})
}

func TestSendTimeoutLetsASlowDownloadThrough(t *testing.T) {
	const size = 2 << 20
	ended := make(chan error, 1)
	addr, _ := startLimited(t, tier.Limits{SendTimeout: 300 * time.Millisecond}, download(size, ended))
	c := dial(t, addr)
	fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	// 64 KiB every 30 ms: slow, about 2 MB/s, but never 300 ms without progress.
	var got int64
	buf := make([]byte, 64<<10)
	for {
		time.Sleep(30 * time.Millisecond)
		n, err := io.ReadFull(resp.Body, buf)
		got += int64(n)
		if err != nil {
			break
		}
	}
	if got != size {
		t.Fatalf("read %d of %d bytes", got, size)
	}
	if err := <-ended; err != nil {
		t.Fatalf("handler's writes: %v", err)
	}
}

func TestSendTimeoutCutsAStalledReader(t *testing.T) {
	ended := make(chan error, 1)
	addr, logs := startLimited(t, tier.Limits{SendTimeout: 300 * time.Millisecond}, download(64<<20, ended))
	c := dial(t, addr)
	fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n") // and never read
	select {
	case err := <-ended:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("handler's writes ended with %v, want a deadline", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a client that reads nothing still held after 10s")
	}
	wait.For(t, 5*time.Second, "the warning with the count", func() bool {
		return strings.Contains(logs.String(), "send_timeouts=1")
	})
}

// The fast engine's answers are held to SendTimeout by the same
// connection: a client that takes nothing is cut.
func TestSendTimeoutCutsAStalledReaderOnFastHTTP(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<20) // 16 MiB, far over what the kernel buffers
	addr, logs := startLimitedServer(t, tier.Limits{SendTimeout: 300 * time.Millisecond}, &http.Server{Addr: "127.0.0.1:0"},
		tier.WithFastHTTP1(func(ctx *fasthttp.RequestCtx) { ctx.SetBody(big) }))
	c := dial(t, addr)
	fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n") // and never read
	wait.For(t, 10*time.Second, "the warning with the count", func() bool {
		return strings.Contains(logs.String(), "send_timeouts=1")
	})
}

// TestMaxConnsShedsIdleFirst: at the cap, a new connection is served and
// an idle keep-alive connection makes room, before one that is busy
// however stalled.
func TestMaxConnsShedsIdleFirst(t *testing.T) {
	for _, engine := range limitEngines {
		t.Run(engine.name, func(t *testing.T) { testMaxConnsShedsIdleFirst(t, engine.opts...) })
	}
}

func testMaxConnsShedsIdleFirst(t *testing.T, opts ...tier.ServerOption) {
	var idled atomic.Int64 // the server's own view: the client reading the answer may come first
	addr, logs := startLimitedServer(t, tier.Limits{MaxConns: 2, BodyTimeout: time.Minute}, &http.Server{
		Addr: "127.0.0.1:0", Handler: readBody,
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateIdle {
				idled.Add(1)
			}
		},
	}, opts...)
	idle := dial(t, addr)
	fmt.Fprintf(idle, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	idleR := bufio.NewReader(idle)
	resp, err := http.ReadResponse(idleR, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	wait.For(t, 5*time.Second, "the server to see the connection idle", func() bool { return idled.Load() == 1 })
	stalled := dial(t, addr)
	fmt.Fprintf(stalled, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nx")

	start := time.Now()
	resp, err = (&http.Client{Timeout: 5 * time.Second}).Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	t.Logf("served in %s at the cap", time.Since(start))

	_ = idle.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := idleR.ReadByte(); err != io.EOF {
		t.Fatalf("idle connection: %v, want it closed", err)
	}
	_ = stalled.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	var ne net.Error
	if _, err := stalled.Read(make([]byte, 1)); !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("stalled connection: %v, want it still open", err)
	}
	wait.For(t, 5*time.Second, "the warning with the count", func() bool {
		return strings.Contains(logs.String(), "shed_idle=1")
	})
}

// TestMaxConnsShedsTheLongestStalled: with no idle connection, the one
// that has gone longest without progress makes room.
func TestMaxConnsShedsTheLongestStalled(t *testing.T) {
	for _, engine := range limitEngines {
		t.Run(engine.name, func(t *testing.T) { testMaxConnsShedsTheLongestStalled(t, engine.opts...) })
	}
}

func testMaxConnsShedsTheLongestStalled(t *testing.T, opts ...tier.ServerOption) {
	addr, logs := startLimitedServer(t, tier.Limits{MaxConns: 2, BodyTimeout: time.Minute}, &http.Server{Addr: "127.0.0.1:0", Handler: readBody}, opts...)
	var stalled []net.Conn
	for range 2 {
		c := dial(t, addr)
		fmt.Fprintf(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nx")
		stalled = append(stalled, c)
		time.Sleep(20 * time.Millisecond) // the first one is the older
	}
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	_ = stalled[0].SetReadDeadline(time.Now().Add(5 * time.Second))
	var ne net.Error
	if _, err := io.Copy(io.Discard, stalled[0]); errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("oldest stalled connection still open, want it closed")
	}
	wait.For(t, 5*time.Second, "the warning with the count", func() bool {
		return strings.Contains(logs.String(), "shed_stalled=1")
	})
}

func TestLimitsOff(t *testing.T) {
	srv := tier.NewHTTPServer("x", &http.Server{Handler: http.NotFoundHandler()},
		tier.WithLimits(tier.Limits{BodyTimeout: -1, SendTimeout: -1}))
	if l := srv.Limits(); l.BodyTimeout >= 0 || l.SendTimeout >= 0 || l.MaxConns != tier.DefaultMaxConns {
		t.Fatalf("Limits() = %+v", l)
	}
	if _, ok := srv.Server().Handler.(http.HandlerFunc); !ok {
		t.Fatal("handler wrapped with BodyTimeout off")
	}
	def := tier.NewHTTPServer("y", &http.Server{Handler: http.NotFoundHandler()}).Limits()
	if def.BodyTimeout != tier.DefaultBodyTimeout || def.SendTimeout != tier.DefaultSendTimeout {
		t.Fatalf("defaults without the option: %+v", def)
	}
}

func TestLimitsFromEnvironment(t *testing.T) {
	var cfg struct {
		tier.Limits
	}
	env := []string{"THREETIER_X_BODY_TIMEOUT=5s", "THREETIER_X_SEND_TIMEOUT=7s", "THREETIER_X_MAX_CONNS=300"}
	if err := tier.LoadEnvFrom(env, "THREETIER_X_", &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.BodyTimeout != 5*time.Second || cfg.SendTimeout != 7*time.Second || cfg.MaxConns != 300 {
		t.Fatalf("got %+v", cfg.Limits)
	}
}

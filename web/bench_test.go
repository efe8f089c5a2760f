package web

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/valyala/fasthttp"
)

// discardWriter is a reusable ResponseWriter, so that the benchmarks
// measure the handler, not the recorder.
type discardWriter struct{ h http.Header }

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) WriteHeader(int)             {}
func (w *discardWriter) Write(b []byte) (int, error) { return len(b), nil }

func benchRoot(b *testing.B) string {
	b.Helper()
	dir := b.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "1k.bin"), bytes.Repeat([]byte{7}, 1024), 0o644); err != nil {
		b.Fatal(err)
	}
	return dir
}

func benchServe(b *testing.B, h http.Handler, header ...string) {
	req, _ := http.NewRequest("GET", "http://x/1k.bin", nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	w := &discardWriter{h: http.Header{}}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		clear(w.h)
		h.ServeHTTP(w, req)
	}
}

// BenchmarkFilesSmall: a 1 KiB file from the cache, the handler alone.
func BenchmarkFilesSmall(b *testing.B) {
	f, err := NewFiles(FilesConfig{Root: benchRoot(b)})
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	benchServe(b, f)
}

// BenchmarkFiles304: a revalidation that matches.
func BenchmarkFiles304(b *testing.B) {
	f, err := NewFiles(FilesConfig{Root: benchRoot(b)})
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	e, err := f.lookup("1k.bin")
	if err != nil {
		b.Fatal(err)
	}
	benchServe(b, f, "If-None-Match", e.etag)
}

// BenchmarkServerSmall: the same file through the whole web tier
// (Echo, request ID, metrics, security headers).
func BenchmarkServerSmall(b *testing.B) {
	s, err := New(Config{Files: FilesConfig{Root: benchRoot(b)}})
	if err != nil {
		b.Fatal(err)
	}
	defer s.files.Close()
	benchServe(b, s.Echo())
}

// BenchmarkFilesSmallCacheRules: the 1 KiB file with Cache-Control rules
// to match, as a real site has.
func BenchmarkFilesSmallCacheRules(b *testing.B) {
	f, err := NewFiles(FilesConfig{Root: benchRoot(b), CacheControl: CacheRules{
		{Pattern: "/assets/*", Value: "public, max-age=31536000, immutable"},
		{Pattern: "*.html", Value: "no-cache"},
		{Pattern: "*.bin", Value: "public, max-age=3600"},
	}})
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	benchServe(b, f)
}

// BenchmarkServer304: a matching revalidation through the whole web tier.
func BenchmarkServer304(b *testing.B) {
	s, err := New(Config{Files: FilesConfig{Root: benchRoot(b)}})
	if err != nil {
		b.Fatal(err)
	}
	defer s.files.Close()
	e, err := s.files.lookup("1k.bin")
	if err != nil {
		b.Fatal(err)
	}
	benchServe(b, s.Echo(), "If-None-Match", e.etag)
}

// pipeListener hands net/http connections made with net.Pipe, so that a
// benchmark measures the whole server path (request parsing, header
// writing, the handler) without the kernel's loopback, whose cost swamps
// and blurs the difference on a shared machine.
type pipeListener struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func newPipeListener() *pipeListener {
	return &pipeListener{conns: make(chan net.Conn), done: make(chan struct{})}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *pipeListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }

// dial opens a client connection to the server behind l.
func (l *pipeListener) dial(b *testing.B) net.Conn {
	client, server := net.Pipe()
	select {
	case l.conns <- server:
	case <-time.After(10 * time.Second):
		b.Fatal("server did not accept")
	}
	return client
}

// benchWire sends GET /1k.bin over one keep-alive connection to the server
// on l, b.N times, and checks that each answer is the whole file.
func benchWire(b *testing.B, l *pipeListener) { benchGet(b, l, "/1k.bin", 1024) }

// benchGet sends GET target over one keep-alive connection to the server
// on l, b.N times, and checks that each answer is 200 with size bytes.
func benchGet(b *testing.B, l *pipeListener, target string, size int64) {
	conn := l.dial(b)
	defer conn.Close()
	req := []byte("GET " + target + " HTTP/1.1\r\nHost: bench\r\nUser-Agent: wrk\r\n\r\n")
	br := bufio.NewReader(conn)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := conn.Write(req); err != nil {
			b.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			b.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || n != size {
			b.Fatalf("status %d with %d bytes, want 200 with %d", resp.StatusCode, n, size)
		}
	}
}

// BenchmarkWireSmall puts the web tier beside a bare net/http handler that
// writes the same headers and 1 KiB body from memory: the ceiling any
// net/http server reaches, and what the tier costs on top of it.
func BenchmarkWireSmall(b *testing.B) {
	root := benchRoot(b)
	body, err := os.ReadFile(filepath.Join(root, "1k.bin"))
	if err != nil {
		b.Fatal(err)
	}
	b.Run("impl=bare", func(b *testing.B) {
		l := newPipeListener()
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h := w.Header()
			h["Accept-Ranges"] = []string{"bytes"}
			h["Content-Type"] = []string{"application/octet-stream"}
			h["Etag"] = []string{`"PUKGT4rhDAwAAeYC0W6_2w"`}
			h["Last-Modified"] = []string{"Fri, 02 Jan 2026 03:04:05 GMT"}
			h["Referrer-Policy"] = []string{"strict-origin-when-cross-origin"}
			h["X-Content-Type-Options"] = []string{"nosniff"}
			h["X-Frame-Options"] = []string{"SAMEORIGIN"}
			h["X-Request-Id"] = []string{"1410d4d9525699ef682e404ab2b477ec"}
			_, _ = w.Write(body)
		})}
		go func() { _ = srv.Serve(l) }()
		defer srv.Close()
		benchWire(b, l)
	})
	b.Run("impl=server", func(b *testing.B) {
		s, err := New(Config{Files: FilesConfig{Root: root}})
		if err != nil {
			b.Fatal(err)
		}
		l := newPipeListener()
		if err := s.main.Serve(l); err != nil {
			b.Fatal(err)
		}
		defer func() { _ = s.Stop(context.Background()) }()
		benchWire(b, l)
	})
}

// BenchmarkEchoRoute measures what a route added on Echo costs on each
// engine: bare Echo on net/http (the reference), the web tier on net/http,
// and the web tier on fasthttp, where the route goes through the adapter
// to net/http's handler.
func BenchmarkEchoRoute(b *testing.B) {
	hello := func(c echo.Context) error { return c.String(http.StatusOK, "hello from a route") }
	const size = int64(len("hello from a route"))
	b.Run("impl=echo", func(b *testing.B) {
		e := echo.New()
		e.GET("/hello", hello)
		l := newPipeListener()
		srv := &http.Server{Handler: e}
		go func() { _ = srv.Serve(l) }()
		defer srv.Close()
		benchGet(b, l, "/hello", size)
	})
	for _, eng := range []string{EngineStd, EngineFast} {
		b.Run("impl=server/engine="+eng, func(b *testing.B) {
			s, err := New(Config{Engine: eng})
			if err != nil {
				b.Fatal(err)
			}
			s.Echo().GET("/hello", hello)
			l := newPipeListener()
			if err := s.main.Serve(l); err != nil {
				b.Fatal(err)
			}
			defer func() { _ = s.Stop(context.Background()) }()
			benchGet(b, l, "/hello", size)
		})
	}
}

// BenchmarkFastServerSmall: the 1 KiB file through the web tier's fast
// handler alone (routing, edge steps, the file rules), no connection.
func BenchmarkFastServerSmall(b *testing.B) {
	s, err := New(Config{Files: FilesConfig{Root: benchRoot(b)}})
	if err != nil {
		b.Fatal(err)
	}
	defer s.files.Close()
	fast := s.fast
	var req fasthttp.Request
	req.SetRequestURI("/1k.bin")
	req.Header.Set("Host", "bench")
	var ctx fasthttp.RequestCtx
	ctx.Init(&req, nil, nil)
	b.ReportAllocs()
	for b.Loop() {
		ctx.Response.Reset()
		fast.serve(&ctx)
		if ctx.Response.StatusCode() != http.StatusOK || len(ctx.Response.Body()) != 1024 {
			b.Fatalf("status %d with %d bytes", ctx.Response.StatusCode(), len(ctx.Response.Body()))
		}
	}
}

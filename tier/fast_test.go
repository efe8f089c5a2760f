package tier_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/threetier/threetier/internal/framingtest"
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
	if hs == nil {
		hs = &http.Server{ReadHeaderTimeout: 5 * time.Second, MaxHeaderBytes: 8 << 10}
	}
	hs.Addr, hs.Handler = "127.0.0.1:0", e
	var roots *x509.CertPool
	if tlsOn {
		dir := t.TempDir()
		certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
		roots = testcert.Write(t, certFile, keyFile, 1)
		certs, err := tier.NewCertReloader(certFile, keyFile)
		if err != nil {
			t.Fatal(err)
		}
		hs.TLSConfig = certs.TLSConfig()
	}
	srv := tier.NewHTTPServer("fast", hs, append([]tier.ServerOption{tier.WithFastHTTP1(e.fast)}, opts...)...)
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
		t.Run(tc.name, func(t *testing.T) {
			e := &engines{}
			_, dial, _ := startFast(t, e, false, nil)
			c, err := dial()
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			if _, err := io.WriteString(c, tc.raw); err != nil {
				t.Fatal(err)
			}
			br := bufio.NewReader(c)
			for i, want := range tc.want {
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
		})
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


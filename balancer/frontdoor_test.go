package balancer

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/threetier/threetier/internal/testcert"
	"github.com/threetier/threetier/internal/wait"
	"github.com/threetier/threetier/tier"
)

// startProxy starts a front-door node on 127.0.0.1:0 over pool and stops it
// when the test ends.
func startProxy(t *testing.T, cfg ProxyConfig, pools ...*Pool) *Proxy {
	t.Helper()
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	px, err := NewProxy(cfg, pools)
	if err != nil {
		t.Fatal(err)
	}
	if err := px.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = px.Stop(ctx)
	})
	return px
}

func TestFrontDoorBackendKilledUnderLoad(t *testing.T) {
	forEngine(t, func(t *testing.T, engine string) {
		a, b := newBackend(t), newBackend(t)
		close(a.hold)
		close(b.hold)
		pool := newPool(t, Config{Endpoints: []string{a.url, b.url}, Health: HealthConfig{Path: "/healthz", Interval: 100 * time.Millisecond}})
		if err := pool.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		px := startProxy(t, ProxyConfig{Engine: engine}, pool)
		tr := benchTransport()
		defer tr.CloseIdleConnections()
		stop := make(chan struct{})
		sent, failed, done := load(t, &http.Client{Transport: tr, Timeout: 10 * time.Second}, "http://"+px.Addr()+"/", 8, stop)
		wait.For(t, 10*time.Second, "load to get going", func() bool { return sent.Load() > 200 })
		a.kill()
		before := sent.Load()
		wait.For(t, 10*time.Second, "load to go on after the kill", func() bool { return sent.Load() > before+500 })
		close(stop)
		done()
		if n := failed.Load(); n != 0 {
			t.Fatalf("%d failed GETs of %d", n, sent.Load())
		}
		t.Logf("%d GETs, none failed, across the kill", sent.Load())
	})
}

const (
	nodeEnv       = "THREETIER_BALANCER_TEST_NODE"
	nodeTLSEnv    = "THREETIER_BALANCER_TEST_NODE_TLS" // "cert.pem,key.pem"
	nodeEngineEnv = "THREETIER_BALANCER_TEST_NODE_ENGINE"
)

// serveTestNode runs a front-door node over the backends in $nodeEnv, with
// TLS when $nodeTLSEnv names a key pair, prints its address, and serves
// until killed.
func serveTestNode() {
	cfg := ProxyConfig{Listen: "127.0.0.1:0", Engine: os.Getenv(nodeEngineEnv)}
	cfg.TLSCert, cfg.TLSKey, _ = strings.Cut(os.Getenv(nodeTLSEnv), ",")
	pool, err := New(Config{Endpoints: strings.Split(os.Getenv(nodeEnv), ",")})
	if err == nil {
		var px *Proxy
		if px, err = NewProxy(cfg, []*Pool{pool}); err == nil {
			if err = px.Start(context.Background()); err == nil {
				fmt.Println(px.Addr())
				select {}
			}
		}
	}
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}

// startProxyProcess starts a front-door node as its own process and returns its
// address and the process, killed by its PID when the test ends.
func startProxyProcess(t *testing.T, engine string, backends ...string) (string, *os.Process) {
	return startChild(t, []string{"-test.run=^$"}, nodeEnv+"="+strings.Join(backends, ","), nodeEngineEnv+"="+engine)
}

// TestFrontDoorNodeKilledUnderLoad: a Go client balancing over two
// front-door processes loses none of its GETs when one of them is killed.
func TestFrontDoorNodeKilledUnderLoad(t *testing.T) {
	forEngine(t, func(t *testing.T, engine string) {
		a, b := newBackend(t), newBackend(t)
		close(a.hold)
		close(b.hold)
		addrA, procA := startProxyProcess(t, engine, a.url, b.url)
		addrB, _ := startProxyProcess(t, engine, a.url, b.url)
		nodes := newPool(t, Config{Name: "front-doors", Endpoints: []string{"http://" + addrA, "http://" + addrB}})
		stop := make(chan struct{})
		sent, failed, done := load(t, &http.Client{Transport: nodes, Timeout: 10 * time.Second}, "http://front/", 8, stop)
		wait.For(t, 10*time.Second, "load to get going", func() bool { return sent.Load() > 200 })
		if err := procA.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		before := sent.Load()
		wait.For(t, 10*time.Second, "load to go on after the kill", func() bool { return sent.Load() > before+500 })
		close(stop)
		done()
		if n := failed.Load(); n != 0 {
			t.Fatalf("%d failed GETs of %d", n, sent.Load())
		}
		if st := statusOf(nodes, "http://"+addrA); st.Failures == 0 {
			t.Errorf("the killed node was never tried after the kill: %+v", st)
		}
		t.Logf("%d GETs, none failed, across the kill of a node", sent.Load())
	})
}

// TestFrontDoorSlowloris: connections that send their headers a byte at a
// time are cut off after ReadHeaderTimeout, and meanwhile a normal client
// is served even with the connection cap reached.
func TestFrontDoorSlowloris(t *testing.T) {
	forEngine(t, func(t *testing.T, engine string) {
		a := newBackend(t)
		close(a.hold)
		pool := newPool(t, Config{Endpoints: []string{a.url}})
		px := startProxy(t, ProxyConfig{Engine: engine, ReadHeaderTimeout: 300 * time.Millisecond, Limits: tier.Limits{MaxConns: 50}}, pool)
		var slow []net.Conn
		for range 80 { // more than MaxConns: the longest stalled make room
			c, err := net.Dial("tcp", px.Addr())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
			slow = append(slow, c)
		}
		start := time.Now()
		resp, err := (&http.Client{Timeout: 10 * time.Second}).Get("http://" + px.Addr() + "/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("normal client got %d", resp.StatusCode)
		}
		t.Logf("normal request served after %s beside %d slow connections", time.Since(start), len(slow))
		for i, c := range slow {
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, err := io.ReadAll(c) // the server answers 408 or just closes
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("slow connection %d still open after 5s", i)
			}
		}
	})
}

func TestFrontDoorOversizedHeaders(t *testing.T) {
	forEngine(t, func(t *testing.T, engine string) {
		a := newBackend(t)
		pool := newPool(t, Config{Endpoints: []string{a.url}})
		px := startProxy(t, ProxyConfig{Engine: engine, MaxHeaderBytes: 4 << 10}, pool)
		req, _ := http.NewRequest("GET", "http://"+px.Addr()+"/", nil)
		req.Header.Set("X-Big", strings.Repeat("b", 16<<10))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Fatalf("got %d, want 431", resp.StatusCode)
		}
		if a.hits.Load() != 0 {
			t.Fatal("the oversized request reached the backend")
		}
	})
}

// writeCert writes a self-signed certificate for 127.0.0.1 with the given
// serial number to certFile and keyFile, and returns a pool trusting it.
func writeCert(t *testing.T, certFile, keyFile string, serial int64) *x509.CertPool {
	return testcert.Write(t, certFile, keyFile, serial)
}

func TestFrontDoorTLSWithHTTP2ReloadAndRedirect(t *testing.T) {
	forEngine(t, func(t *testing.T, engine string) {
		a := newBackend(t)
		dir := t.TempDir()
		certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
		roots := writeCert(t, certFile, keyFile, 1)
		pool := newPool(t, Config{Endpoints: []string{a.url}})
		px := startProxy(t, ProxyConfig{Engine: engine, TLSCert: certFile, TLSKey: keyFile, RedirectListen: "127.0.0.1:0"}, pool)

		// serial connects anew and returns the serial of the node's certificate
		// and the protocol of the exchange.
		serial := func() (int64, string) {
			tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, InsecureSkipVerify: true}, ForceAttemptHTTP2: true}
			defer tr.CloseIdleConnections()
			resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get("https://" + px.Addr() + "/x")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("status %d", resp.StatusCode)
			}
			return resp.TLS.PeerCertificates[0].SerialNumber.Int64(), resp.Proto
		}
		if s, proto := serial(); s != 1 || proto != "HTTP/2.0" {
			t.Fatalf("serial %d over %s, want 1 over HTTP/2.0", s, proto)
		}
		// Reload (SIGHUP in examples/lb) takes a new pair at once.
		writeCert(t, certFile, keyFile, 2)
		if err := px.Reload(); err != nil {
			t.Fatal(err)
		}
		if s, _ := serial(); s != 2 {
			t.Fatalf("after Reload: serial %d", s)
		}
		// A changed file is noticed on its own.
		writeCert(t, certFile, keyFile, 3)
		future := time.Now().Add(time.Minute)
		_ = os.Chtimes(certFile, future, future)
		wait.For(t, 5*time.Second, "the new certificate to be served", func() bool { s, _ := serial(); return s == 3 })
		// A broken pair is refused and the current one stays.
		_ = os.WriteFile(keyFile, []byte("not a key"), 0o600)
		if err := px.Reload(); err == nil {
			t.Fatal("Reload accepted a broken key")
		}
		if s, _ := serial(); s != 3 {
			t.Fatalf("after a failed reload: serial %d", s)
		}

		c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := c.Get("http://" + px.RedirectAddr() + "/a?b=c")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if want := "https://127.0.0.1:" + px.Addr()[strings.LastIndexByte(px.Addr(), ':')+1:] + "/a?b=c"; resp.StatusCode != http.StatusPermanentRedirect || resp.Header.Get("Location") != want {
			t.Fatalf("redirect %d %q, want 308 %q", resp.StatusCode, resp.Header.Get("Location"), want)
		}
	})
}

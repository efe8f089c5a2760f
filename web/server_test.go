package web

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/threetier/threetier/internal/httpedge"
	"github.com/threetier/threetier/internal/syncbuf"
	"github.com/threetier/threetier/internal/wait"
	"github.com/threetier/threetier/tier"
)

// startServer starts the web tier on eng, with cfg and opts.
func startServer(t *testing.T, eng engine, cfg Config, opts ...Option) *Server {
	t.Helper()
	cfg.Engine = string(eng)
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	s, err := New(cfg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Stop(ctx); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	return s
}

func TestServerServesFilesAndRoutes(t *testing.T) {
	forEachEngine(t, func(t *testing.T, eng engine) {
		tr := newTree(t)
		reg := prometheus.NewRegistry()
		var logs syncbuf.Buffer
		log, _ := tier.NewLogger(tier.LogConfig{Format: "json"}, &logs)
		s := startServer(t, eng, Config{Files: FilesConfig{Root: tr.root}}, WithRegistry(reg), WithLogger(log))
		s.Echo().GET("/api/hello", func(c echo.Context) error { return c.String(200, "hello") })
		s.Echo().GET("/api/teapot", func(c echo.Context) error { return echo.NewHTTPError(http.StatusTeapot, "short and stout") })
		s.Echo().GET("/api/panic", func(c echo.Context) error { panic("boom") })
		c := client(t)
		url := "http://" + s.Addr()

		r := do(t, c, "GET", url+"/small.txt", "X-Request-Id: abc-123")
		if r.status != 200 || !bytes.Equal(r.body, tr.small) {
			t.Fatalf("file: %d", r.status)
		}
		for k, want := range map[string]string{
			"X-Content-Type-Options": "nosniff", "X-Frame-Options": "SAMEORIGIN",
			"Referrer-Policy": "strict-origin-when-cross-origin", "X-Request-Id": "abc-123",
		} {
			if got := r.header.Get(k); got != want {
				t.Errorf("%s: %q, want %q", k, got, want)
			}
		}
		if r.header.Get("Strict-Transport-Security") != "" {
			t.Error("HSTS over plain HTTP")
		}
		if r := do(t, c, "GET", url+"/tiny.txt", "X-Request-Id: bad id with spaces/and{braces}"); len(r.header.Get("X-Request-Id")) != 32 {
			t.Errorf("hostile request ID kept: %q", r.header.Get("X-Request-Id"))
		}
		if r := do(t, c, "GET", url+"/api/hello"); r.status != 200 || string(r.body) != "hello" {
			t.Fatalf("route: %d %q", r.status, r.body)
		}
		r = do(t, c, "GET", url+"/api/teapot")
		wantProblem(t, r, http.StatusTeapot)
		if !strings.Contains(string(r.body), "short and stout") || !strings.Contains(string(r.body), r.header.Get("X-Request-Id")) {
			t.Errorf("problem lacks detail or request ID: %s", r.body)
		}
		wantProblem(t, do(t, c, "GET", url+"/api/panic"), 500)
		wantProblem(t, do(t, c, "POST", url+"/small.txt"), 405)
		if r := do(t, c, "GET", url+"/healthz"); r.status != 200 {
			t.Errorf("/healthz: %d", r.status)
		}
		big := do(t, c, "GET", url+"/big.bin")
		if !bytes.Equal(big.body, tr.big) {
			t.Fatal("big file through Echo differs")
		}

		// Logs and metrics are written once the handler returns, which may be
		// after the client has the whole body.
		wait.For(t, 20*time.Second, "access log lines", func() bool { return strings.Contains(logs.String(), `"bytes":307200`) })
		if n := metricValue(t, reg, "threetier_web_requests_total"); n < 7 {
			t.Errorf("requests_total %v", n)
		}
		if n := metricValue(t, reg, "threetier_web_response_bytes_total"); n < float64(len(tr.big)) {
			t.Errorf("response_bytes_total %v: sendfile bytes not counted", n)
		}
		out := logs.String()
		for _, want := range []string{`"msg":"access"`, `"request_id":"abc-123"`, `"uri":"/small.txt"`, `"status":418`, `"bytes":307200`} {
			if !strings.Contains(out, want) {
				t.Errorf("access log lacks %s:\n%s", want, out)
			}
		}
	})
}

// selfSigned writes a certificate and key for 127.0.0.1 and returns the
// paths and a pool that trusts it.
func selfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	_ = os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	_ = os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

func TestServerTLSWithHTTP2AndRedirect(t *testing.T) {
	forEachEngine(t, func(t *testing.T, eng engine) {
		tr := newTree(t)
		certFile, keyFile, pool := selfSigned(t)
		s := startServer(t, eng, Config{
			TLSCert: certFile, TLSKey: keyFile, RedirectListen: "127.0.0.1:0", HSTS: 24 * time.Hour,
			Files: FilesConfig{Root: tr.root},
		})
		transport := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true, DisableCompression: true}
		t.Cleanup(transport.CloseIdleConnections)
		c := &http.Client{Transport: transport, Timeout: 30 * time.Second}
		resp, err := c.Get("https://" + s.Addr() + "/big.bin")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.ProtoMajor != 2 || !bytes.Equal(body, tr.big) {
			t.Fatalf("HTTPS: %s, %d bytes", resp.Proto, len(body))
		}
		if got := resp.Header.Get("Strict-Transport-Security"); got != "max-age=86400; includeSubDomains" {
			t.Fatalf("HSTS %q", got)
		}
		// A small cached file leaves its Content-Length to the HTTP/2 server.
		resp, err = c.Get("https://" + s.Addr() + "/tiny.txt")
		if err != nil {
			t.Fatal(err)
		}
		body, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.ProtoMajor != 2 || string(body) != "tiny\n" || resp.Header.Get("Content-Length") != "5" {
			t.Fatalf("HTTPS tiny.txt: %s, %q, Content-Length %q", resp.Proto, body, resp.Header.Get("Content-Length"))
		}

		_, port, _ := net.SplitHostPort(s.Addr())
		r := do(t, client(t), "POST", "http://"+s.RedirectAddr()+"/a/b?c=d")
		if r.status != http.StatusPermanentRedirect || r.header.Get("Location") != "https://127.0.0.1:"+port+"/a/b?c=d" {
			t.Fatalf("redirect: %d %q", r.status, r.header.Get("Location"))
		}
	})
}

func TestServerLimitsSlowAndHugeHeaders(t *testing.T) {
	forEachEngine(t, func(t *testing.T, eng engine) {
		s := startServer(t, eng, Config{ReadHeaderTimeout: 300 * time.Millisecond, MaxHeaderBytes: 4096})
		// Headers beyond the limit: 431.
		conn, err := net.Dial("tcp", s.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
		_, _ = io.WriteString(conn, "GET / HTTP/1.1\r\nHost: x\r\nX-Big: "+strings.Repeat("a", 64<<10)+"\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil || resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Fatalf("huge headers: %v %v", resp, err)
		}
		resp.Body.Close()

		// A client that never finishes its headers is cut off.
		slow, err := net.Dial("tcp", s.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer slow.Close()
		_, _ = io.WriteString(slow, "GET / HTTP/1.1\r\nHost: x\r\n")
		_ = slow.SetReadDeadline(time.Now().Add(20 * time.Second))
		start := time.Now()
		got, err := io.ReadAll(slow)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("slow client not cut off (err %v after %v)", err, time.Since(start))
		}
		// net/http closes the connection; the fast engine answers 408
		// first.
		if len(got) > 0 && !bytes.HasPrefix(got, []byte("HTTP/1.1 408 ")) {
			t.Fatalf("slow client answered %q", got)
		}
	})
}

func TestServerConfigErrors(t *testing.T) {
	for _, cfg := range []Config{
		{TLSCert: "cert.pem"},
		{RedirectListen: ":80"},
		{Files: FilesConfig{Prefix: "static"}},
		{FrameOptions: "DENY\r\nX-Evil: 1"},
		{Files: FilesConfig{Index: "../x"}},
		{Files: FilesConfig{CacheControl: CacheRules{{Pattern: "[", Value: "x"}}}},
		{Engine: "fast"},
	} {
		_, err := New(cfg)
		var ce *tier.ConfigError
		if !errors.As(err, &ce) {
			t.Errorf("%+v: err %v, want a ConfigError", cfg, err)
		}
	}
	if _, err := New(Config{TLSCert: "/nonexistent/c.pem", TLSKey: "/nonexistent/k.pem"}); err == nil {
		t.Error("missing key pair accepted")
	}
	if _, err := New(Config{Files: FilesConfig{Root: "/nonexistent/root"}}); err == nil {
		t.Error("missing root accepted")
	}
	if _, err := NewFiles(FilesConfig{}); !errors.Is(err, ErrNoRoot) {
		t.Errorf("no root: %v", err)
	}
}

func TestConfigErrorsNameTheVariableUnderTheLoadedPrefix(t *testing.T) {
	err := tier.LoadEnvFrom([]string{
		"THREETIER_WEB_ADMIN_MAX_CONNS=-1",
		"THREETIER_WEB_ADMIN_FILES_PREFIX=static",
		"THREETIER_WEB_ADMIN_HSTS=-1s",
	}, EnvPrefix+"ADMIN_", &Config{})
	for _, want := range []string{
		`THREETIER_WEB_ADMIN_MAX_CONNS="-1"`,
		`THREETIER_WEB_ADMIN_FILES_PREFIX="static"`,
		`THREETIER_WEB_ADMIN_HSTS="-1s"`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v lacks %s", err, want)
		}
	}
	// Validated alone, the errors name the fields.
	err = Config{Files: FilesConfig{Prefix: "static"}}.Validate()
	var ce *tier.ConfigError
	if !errors.As(err, &ce) || ce.Field != "Files.Prefix" || ce.Var != "" {
		t.Errorf("Validate: %#v", ce)
	}
}

func TestConfigFromEnv(t *testing.T) {
	var cfg Config
	err := tier.LoadEnvFrom([]string{
		"THREETIER_WEB_LISTEN=127.0.0.1:9000",
		"THREETIER_WEB_ENGINE=net/http",
		"THREETIER_WEB_HSTS=1h",
		"THREETIER_WEB_FILES_ROOT=/srv/www",
		"THREETIER_WEB_FILES_SPA=true",
		"THREETIER_WEB_FILES_CACHE_CONTROL=/assets/*=public, max-age=31536000, immutable;*.html=no-cache",
	}, EnvPrefix, &cfg)
	if err != nil {
		t.Fatal(err)
	}
	want := CacheRules{{"/assets/*", "public, max-age=31536000, immutable"}, {"*.html", "no-cache"}}
	if cfg.Listen != "127.0.0.1:9000" || cfg.Engine != EngineStd || cfg.HSTS != time.Hour || cfg.Files.Root != "/srv/www" || !cfg.Files.SPA ||
		len(cfg.Files.CacheControl) != 2 || cfg.Files.CacheControl[0] != want[0] || cfg.Files.CacheControl[1] != want[1] {
		t.Fatalf("%+v", cfg)
	}
	var bad Config
	err = tier.LoadEnvFrom([]string{"THREETIER_WEB_FILES_CACHE_CONTROL=nonsense"}, EnvPrefix, &bad)
	if err == nil || !strings.Contains(err.Error(), "pattern=value") || strings.Count(err.Error(), "THREETIER_WEB_FILES_CACHE_CONTROL") != 1 {
		t.Fatalf("bad rule: %v", err)
	}
}

// readFromRecorder is a ResponseWriter that reports whether ReadFrom (the
// path to sendfile) was used.
type readFromRecorder struct {
	header   http.Header
	status   int
	body     bytes.Buffer
	readFrom bool
}

func (w *readFromRecorder) Header() http.Header         { return w.header }
func (w *readFromRecorder) WriteHeader(code int)        { w.status = code }
func (w *readFromRecorder) Write(b []byte) (int, error) { return w.body.Write(b) }
func (w *readFromRecorder) ReadFrom(r io.Reader) (int64, error) {
	w.readFrom = true
	return w.body.ReadFrom(r)
}

func TestEchoHandlerKeepsSendfilePath(t *testing.T) {
	tr := newTree(t)
	f, err := NewFiles(FilesConfig{Root: tr.root})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	e := echo.New()
	e.GET("/*", f.EchoHandler())
	for _, tc := range []struct {
		path, rng string
		want      []byte
	}{{"/big.bin", "", tr.big}, {"/big.bin", "bytes=10-99", tr.big[10:100]}} {
		w := &readFromRecorder{header: http.Header{}}
		req, _ := http.NewRequest("GET", tc.path, nil)
		if tc.rng != "" {
			req.Header.Set("Range", tc.rng)
		}
		e.ServeHTTP(w, req)
		if !w.readFrom || !bytes.Equal(w.body.Bytes(), tc.want) {
			t.Errorf("%s %s: ReadFrom used %v, %d bytes", tc.path, tc.rng, w.readFrom, w.body.Len())
		}
	}
}

func TestServerSecurityHeaderSettings(t *testing.T) {
	forEachEngine(t, func(t *testing.T, eng engine) {
		deny := startServer(t, eng, Config{FrameOptions: "DENY"})
		off := startServer(t, eng, Config{NoSecurityHeaders: true})
		c := client(t)
		if r := do(t, c, "GET", "http://"+deny.Addr()+"/healthz"); r.header.Get("X-Frame-Options") != "DENY" || r.header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("frame options: %v", r.header)
		}
		if r := do(t, c, "GET", "http://"+off.Addr()+"/healthz"); r.header.Get("X-Frame-Options") != "" || r.header.Get("X-Content-Type-Options") != "" || r.header.Get("X-Request-Id") == "" {
			t.Errorf("security headers off: %v", r.header)
		}
	})
}

// The public listener serves no metrics unless a path asks for them: the
// series name the app tier's instances.
func TestServerMetricsPath(t *testing.T) {
	forEachEngine(t, func(t *testing.T, eng engine) {
		tr := newTree(t)
		c := client(t)
		for _, tc := range []struct {
			name, path, get string
			reg             bool
			want            int
		}{
			{"default", "", "/metrics", true, 404},
			{"asked", "/metrics", "/metrics", true, 200},
			{"custom", "/internal/metrics", "/internal/metrics", true, 200},
			{"custom leaves /metrics alone", "/internal/metrics", "/metrics", true, 404},
			{"off", "-", "/metrics", true, 404},
			{"no registry", "/metrics", "/metrics", false, 404},
		} {
			t.Run(tc.name, func(t *testing.T) {
				var opts []Option
				if tc.reg {
					opts = append(opts, WithRegistry(prometheus.NewRegistry()))
				}
				s := startServer(t, eng, Config{MetricsPath: tc.path, Files: FilesConfig{Root: tr.root}}, opts...)
				base := "http://" + s.Addr()
				do(t, c, "GET", base+"/tiny.txt")
				r := do(t, c, "GET", base+tc.get)
				if r.status != tc.want {
					t.Fatalf("GET %s: %d, want %d", tc.get, r.status, tc.want)
				}
				if tc.want == 200 && !strings.Contains(string(r.body), `threetier_web_requests_total{code="200",method="GET",route="/*"}`) {
					t.Errorf("metrics page lacks the request counter:\n%s", r.body)
				}
			})
		}
		if _, err := New(Config{MetricsPath: "metrics"}); err == nil || !strings.Contains(err.Error(), "MetricsPath") {
			t.Errorf("relative metrics path: %v", err)
		}
	})
}

func TestRedirectLocation(t *testing.T) {
	certFile, keyFile, _ := selfSigned(t)
	for _, tc := range []struct{ listen, host, want string }{
		{"127.0.0.1:8443", "example.com", "https://example.com:8443/a?b=c"},
		{"127.0.0.1:8443", "example.com:80", "https://example.com:8443/a?b=c"},
		{"127.0.0.1:8443", "[::1]", "https://[::1]:8443/a?b=c"},
		{"127.0.0.1:8443", "[::1]:80", "https://[::1]:8443/a?b=c"},
		{"127.0.0.1:443", "[::1]", "https://[::1]/a?b=c"},
		{"127.0.0.1:443", "[::1]:80", "https://[::1]/a?b=c"},
		{"127.0.0.1:443", "example.com:80", "https://example.com/a?b=c"},
	} {
		s, err := New(Config{Listen: tc.listen, TLSCert: certFile, TLSKey: keyFile})
		if err != nil {
			t.Fatal(err)
		}
		req := httptest.NewRequest("GET", "http://x/a?b=c", nil)
		req.Host = tc.host
		w := httptest.NewRecorder()
		httpedge.RedirectHTTPS(s.Addr).ServeHTTP(w, req)
		if got := w.Header().Get("Location"); w.Code != http.StatusPermanentRedirect || got != tc.want {
			t.Errorf("listen %s, Host %s: %d %q, want %q", tc.listen, tc.host, w.Code, got, tc.want)
		}
	}
}

func TestLimitsFromEnv(t *testing.T) {
	var cfg Config
	err := tier.LoadEnvFrom([]string{"THREETIER_WEB_BODY_TIMEOUT=5s", "THREETIER_WEB_SEND_TIMEOUT=7s", "THREETIER_WEB_MAX_CONNS=300"}, EnvPrefix, &cfg)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.BodyTimeout != 5*time.Second || cfg.SendTimeout != 7*time.Second || cfg.MaxConns != 300 {
		t.Fatalf("%+v", cfg.Limits)
	}
	err = tier.LoadEnvFrom([]string{"THREETIER_WEB_MAX_CONNS=-1"}, EnvPrefix, &Config{})
	var ce *tier.ConfigError
	if !errors.As(err, &ce) || ce.Var != "THREETIER_WEB_MAX_CONNS" {
		t.Fatalf("negative MaxConns: %v", err)
	}
}

// Routes match the escaped path, so /api%2Fx is not the route for /api/;
// nor do the files serve it as api/x.
func TestEncodedSlashReachesNeitherRouteNorFile(t *testing.T) {
	forEachEngine(t, func(t *testing.T, eng engine) {
		tr := newTree(t)
		if err := os.MkdirAll(filepath.Join(tr.root, "api"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(tr.root, "api", "x"), []byte("FILE"), 0o644); err != nil {
			t.Fatal(err)
		}
		s := startServer(t, eng, Config{Files: FilesConfig{Root: tr.root}})
		s.Echo().Any("/api/*", func(c echo.Context) error { return c.String(200, "ROUTE") })
		url := "http://" + s.Addr()
		if status, body := rawRequest(t, url, "/api/x"); status != 200 || body != "ROUTE" {
			t.Fatalf("/api/x: %d %q", status, body)
		}
		for _, target := range []string{"/api%2Fx", "/api%2fx", "/dir%2Findex.html"} {
			if status, body := rawRequest(t, url, target); status != 400 || strings.Contains(body, "FILE") || strings.Contains(body, "ROUTE") {
				t.Errorf("%s: %d %q", target, status, body)
			}
		}
	})
}

// Middleware a user puts on Echo before Start runs for the files too, on
// both engines: an authentication check is never skipped because the fast
// engine serves the files beside Echo.
func TestEchoMiddlewareRunsForFiles(t *testing.T) {
	forEachEngine(t, func(t *testing.T, eng engine) {
		tr := newTree(t)
		s, err := New(Config{Listen: "127.0.0.1:0", Engine: string(eng), Files: FilesConfig{Root: tr.root}})
		if err != nil {
			t.Fatal(err)
		}
		s.Echo().Use(func(next echo.HandlerFunc) echo.HandlerFunc {
			return func(c echo.Context) error {
				if c.Request().Header.Get("Authorization") != "Bearer yes" {
					return echo.NewHTTPError(http.StatusUnauthorized, "who are you")
				}
				return next(c)
			}
		})
		if err := s.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Stop(context.Background()) })
		c := client(t)
		url := "http://" + s.Addr() + "/big.bin"
		if r := do(t, c, "GET", url); r.status != http.StatusUnauthorized {
			t.Fatalf("without credentials: %d, want 401", r.status)
		}
		if r := do(t, c, "GET", url, "Authorization: Bearer yes"); r.status != http.StatusOK || !bytes.Equal(r.body, tr.big) {
			t.Fatalf("with credentials: %d, %d bytes", r.status, len(r.body))
		}
	})
}

// Config.Name names the server in the lifecycle logs: two web servers of
// one process tell apart.
func TestServerName(t *testing.T) {
	for name, want := range map[string]string{"": "web", "web-2": "web-2"} {
		s, err := New(Config{Name: name, Listen: "127.0.0.1:0"})
		if err != nil {
			t.Fatal(err)
		}
		if s.Name() != want {
			t.Errorf("Name() = %q, want %q", s.Name(), want)
		}
	}
}

package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/threetier/threetier/balancer"
	"github.com/threetier/threetier/balancer/stats"
	"github.com/threetier/threetier/internal/child"
	"github.com/threetier/threetier/internal/leaks"
	"github.com/threetier/threetier/internal/syncbuf"
	"github.com/threetier/threetier/internal/wait"
)

// lbProcessEnv makes the test binary the command itself, in a process of
// its own (see startLBProcess): its arguments are the command's, and it
// prints where it listens, as JSON, on its standard output once serving.
const lbProcessEnv = "THREETIER_TEST_LB_PROCESS"

func TestMain(m *testing.M) {
	if os.Getenv(lbProcessEnv) != "" {
		ready := make(chan listening, 1)
		go func() { _ = json.NewEncoder(os.Stdout).Encode(<-ready) }()
		os.Exit(serve(os.Args[1:], ready))
	}
	goleak.VerifyTestMain(m, leaks.FastHTTP()...)
}

// lbProcess is the command running in a child process, with its log.
type lbProcess struct {
	listening
	cmd    *exec.Cmd
	stderr *syncbuf.Buffer
}

// startLBProcess runs the command with args in a process of its own and
// returns once it serves; the process is killed when the test ends.
func startLBProcess(t *testing.T, args ...string) *lbProcess {
	t.Helper()
	p := &lbProcess{cmd: exec.Command(os.Args[0], args...), stderr: &syncbuf.Buffer{}}
	p.cmd.Env = append(os.Environ(), lbProcessEnv+"=1")
	p.cmd.Stderr = p.stderr
	if err := json.Unmarshal([]byte(child.Start(t, p.cmd)), &p.listening); err != nil {
		t.Fatal(err)
	}
	return p
}

// exitCode waits for the process to end and returns its status; one still
// running after 30 seconds is killed and fails the test.
func (p *lbProcess) exitCode(t *testing.T) int {
	t.Helper()
	timer := time.AfterFunc(30*time.Second, func() { _ = p.cmd.Process.Kill() })
	err := p.cmd.Wait()
	if !timer.Stop() {
		t.Fatalf("%s still running 30s after SIGTERM", p.Proxy)
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0
}

// startLB runs the command in the test process and returns its addresses;
// the node is stopped, and run's error checked, when the test ends.
func startLB(t *testing.T, args ...string) listening {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan listening, 1)
	done := make(chan error, 1)
	go func() { done <- run(ctx, args, io.Discard, ready) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	select {
	case l := <-ready:
		return l
	case err := <-done:
		done <- nil // for the cleanup
		t.Fatalf("ended before serving: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("not serving within 30s")
	}
	return listening{}
}

// backend is an upstream that answers its name and counts the health
// checks it gets, by path.
type backend struct {
	*httptest.Server
	name   string
	mu     sync.Mutex
	checks map[string]int
}

func newBackend(t *testing.T, name string) *backend {
	b := &backend{name: name, checks: map[string]int{}}
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Forwarded-For") == "" { // not through the proxy: a health check
			b.mu.Lock()
			b.checks[r.URL.Path]++
			b.mu.Unlock()
		}
		_, _ = io.WriteString(w, name)
	}))
	t.Cleanup(b.Close)
	return b
}

func (b *backend) checked(path string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.checks[path]
}

// kill closes the backend's connections, in-flight requests included, and
// its listener, as a crashed process would.
func (b *backend) kill() {
	b.CloseClientConnections()
	b.Close()
}

func getJSON(t *testing.T, c *http.Client, url string, v any) int {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if v != nil {
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			t.Fatalf("%s: %v", url, err)
		}
	}
	return resp.StatusCode
}

// TestLBBalancesAndSurvivesAKilledBackend runs the node over two real
// backends: requests alternate, a backend killed under concurrent load
// costs no request, and /readyz on the stats listener says what
// keepalived needs to know. The flags win over variables set for the same
// settings.
func TestLBBalancesAndSurvivesAKilledBackend(t *testing.T) {
	a, b := newBackend(t, "a"), newBackend(t, "b")
	t.Setenv("THREETIER_BALANCER_HEALTH_PATH", "/from-env")
	t.Setenv("THREETIER_BALANCER_HEALTH_RISE", "1") // a variable no flag sets: it stays
	t.Setenv("THREETIER_PROXY_LISTEN", "127.0.0.1:1")
	t.Setenv("THREETIER_STATS_TOKEN", "s3cret")
	l := startLB(t, "-listen", "127.0.0.1:0", "-backends", a.URL+","+b.URL, "-stats", "127.0.0.1:0",
		"-check-path", "/healthz", "-check-interval", "50ms")

	tr := &http.Transport{MaxIdleConnsPerHost: 16}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	get := func(path string) (string, error) {
		resp, err := c.Get("http://" + l.Proxy + path)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err == nil && resp.StatusCode != http.StatusOK {
			err = &statusError{resp.StatusCode, string(body)}
		}
		return string(body), err
	}
	seen := map[string]int{}
	for range 20 {
		body, err := get("/hello")
		if err != nil {
			t.Fatal(err)
		}
		seen[body]++
	}
	if seen["a"] != 10 || seen["b"] != 10 {
		t.Fatalf("20 requests over two backends by round robin: %v", seen)
	}
	wait.For(t, 10*time.Second, "health checks on -check-path", func() bool { return a.checked("/healthz") > 0 && b.checked("/healthz") > 0 })
	if n := a.checked("/from-env"); n != 0 {
		t.Fatalf("%d checks on the variable's path: the flag must win", n)
	}
	if code := getJSON(t, c, "http://"+l.Stats+"/readyz", nil); code != http.StatusOK {
		t.Fatalf("/readyz with both backends up: %d", code)
	}
	if code := getJSON(t, c, "http://"+l.Stats+"/healthz", nil); code != http.StatusOK {
		t.Fatalf("/healthz: %d", code)
	}
	// The node's metrics are on the stats listener; on the public port,
	// /metrics is the backends' path like any other.
	if body, err := get("/metrics"); err != nil || strings.Contains(body, "threetier_") {
		t.Fatalf("public /metrics: %v %.200s", err, body)
	}
	metrics, err := c.Get("http://" + l.Stats + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	series, _ := io.ReadAll(metrics.Body)
	metrics.Body.Close()
	if metrics.StatusCode != 200 || !strings.Contains(string(series), "threetier_balancer_") {
		t.Fatalf("stats /metrics: %d %.200s", metrics.StatusCode, series)
	}
	page, err := c.Get("http://" + l.Stats + "/")
	if err != nil {
		t.Fatal(err)
	}
	html, _ := io.ReadAll(page.Body)
	page.Body.Close()
	if page.StatusCode != 200 || !strings.Contains(string(html), b.URL) {
		t.Fatalf("stats page: %d, names backend b: %v", page.StatusCode, strings.Contains(string(html), b.URL))
	}

	// The runtime API takes the token from the environment: drained, b
	// takes no request; undrained, it takes its share again.
	action := func(name, token string) int {
		req, _ := http.NewRequest("POST", "http://"+l.Stats+"/api/pools/backend/endpoints/"+name, strings.NewReader(`{"url":"`+b.URL+`"}`))
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := action("drain", "wrong"); code != http.StatusUnauthorized {
		t.Fatalf("drain with a wrong token: %d, want 401", code)
	}
	if code := action("drain", "s3cret"); code != http.StatusOK {
		t.Fatalf("drain: %d", code)
	}
	for range 10 {
		if body, err := get("/hello"); err != nil || body != "a" {
			t.Fatalf("with b drained: %q %v", body, err)
		}
	}
	if code := action("undrain", "s3cret"); code != http.StatusOK {
		t.Fatalf("undrain: %d", code)
	}
	wait.For(t, 10*time.Second, "b back in rotation", func() bool { body, _ := get("/hello"); return body == "b" })

	// Concurrent load, then b dies in the middle of it.
	var ok, failed atomic.Int64
	var firstErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := get("/hello"); err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
				} else {
					ok.Add(1)
				}
			}
		})
	}
	wait.For(t, 10*time.Second, "load before the kill", func() bool { return ok.Load() > 200 })
	b.kill()
	killedAt := ok.Load()
	wait.For(t, 20*time.Second, "load after the kill", func() bool { return ok.Load() > killedAt+1000 })
	close(stop)
	wg.Wait()
	if n := failed.Load(); n != 0 {
		t.Fatalf("%d of %d GETs failed after a backend was killed; first: %v", n, n+ok.Load(), firstErr.Load())
	}

	var status struct{ Pools []balancer.Status }
	wait.For(t, 10*time.Second, "the killed backend out of rotation on the stats listener", func() bool {
		getJSON(t, c, "http://"+l.Stats+"/api/status", &status)
		for _, e := range status.Pools[0].Endpoints {
			if e.URL == b.URL && e.State != balancer.StateUp {
				return true
			}
		}
		return false
	})
	if code := getJSON(t, c, "http://"+l.Stats+"/readyz", nil); code != http.StatusOK {
		t.Fatalf("/readyz with one backend of two up: %d", code)
	}
	a.kill()
	wait.For(t, 10*time.Second, "/readyz 503 with no backend up", func() bool {
		return getJSON(t, c, "http://"+l.Stats+"/readyz", nil) == http.StatusServiceUnavailable
	})
}

// TestLBTwoNodesAsACluster runs two nodes over the same backends, joined
// by gossip with the key from the environment, and a Go client that
// balances over both: each node serves, and what one node learns of a
// killed backend the other shows on its stats page.
func TestLBTwoNodesAsACluster(t *testing.T) {
	a, b := newBackend(t, "a"), newBackend(t, "b")
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	t.Setenv("THREETIER_CLUSTER_KEY", base64.StdEncoding.EncodeToString(key))
	common := []string{"-listen", "127.0.0.1:0", "-backends", a.URL + "," + b.URL, "-stats", "127.0.0.1:0", "-check-interval", "50ms"}
	n1 := startLB(t, append(common, "-cluster-listen", "127.0.0.1:0", "-node", "lb-1")...)
	n2 := startLB(t, append(common, "-cluster-listen", "127.0.0.1:0", "-peers", n1.Cluster, "-node", "lb-2")...)

	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	report := func(node listening) (r stats.Report) {
		getJSON(t, c, "http://"+node.Stats+"/api/status", &r)
		return r
	}
	for _, node := range []listening{n1, n2} {
		wait.For(t, 10*time.Second, "two members alive on "+node.Stats, func() bool {
			alive := 0
			for _, m := range report(node).Members {
				if m.State == "alive" {
					alive++
				}
			}
			return alive == 2
		})
	}

	// A Go client needs no virtual IP: it balances over the nodes.
	nodes, err := balancer.New(balancer.Config{Name: "front-doors", Endpoints: []string{"http://" + n1.Proxy, "http://" + n2.Proxy}})
	if err != nil {
		t.Fatal(err)
	}
	if err := nodes.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = nodes.Stop(context.Background()) }()
	client := nodes.Client()
	for range 20 {
		resp, err := client.Get("http://front-doors/hello")
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("through the nodes: %d", resp.StatusCode)
		}
	}
	for _, node := range []listening{n1, n2} {
		var served uint64
		for _, e := range report(node).Pools[0].Endpoints {
			served += e.Requests
		}
		if served == 0 {
			t.Fatalf("node %s served none of the client's requests", node.Proxy)
		}
	}

	b.kill()
	wait.For(t, 10*time.Second, "lb-2's view of the killed backend on lb-1's stats", func() bool {
		for _, v := range report(n1).PeerViews {
			if v.Node == "lb-2" && v.Endpoint == b.URL && v.State != balancer.StateUp {
				return true
			}
		}
		return false
	})
	if code := getJSON(t, c, "http://"+n1.Stats+"/readyz", nil); code != http.StatusOK {
		t.Fatalf("/readyz of a clustered node with a backend up: %d", code)
	}
}

// TestLBRateLimit: over -rate-limit a client gets 429 with Retry-After,
// and the stats show it among the clients limited.
func TestLBRateLimit(t *testing.T) {
	a := newBackend(t, "a")
	n := startLB(t, "-listen", "127.0.0.1:0", "-backends", a.URL, "-stats", "127.0.0.1:0", "-rate-limit", "1", "-rate-burst", "2", "-conn-limit", "8")
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	var codes []int
	for range 3 {
		resp, err := c.Get("http://" + n.Proxy + "/hello")
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		codes = append(codes, resp.StatusCode)
		if resp.StatusCode == http.StatusTooManyRequests && resp.Header.Get("Retry-After") == "" {
			t.Fatal("a 429 without Retry-After")
		}
	}
	if codes[0] != 200 || codes[1] != 200 || codes[2] != http.StatusTooManyRequests {
		t.Fatalf("statuses %v, want 200 200 429", codes)
	}
	var r stats.Report
	getJSON(t, c, "http://"+n.Stats+"/api/status", &r)
	if r.RateLimits == nil || r.RateLimits.Limited != 1 || r.RateLimits.ConnLimit != 8 || len(r.RateLimits.Top) == 0 || r.RateLimits.Top[0].Key != "127.0.0.1" {
		t.Fatalf("rate limits on the stats: %+v", r.RateLimits)
	}
}

// TestLBPairStoppedTogether stops both nodes of a cluster at once, as an
// orchestrator does, in processes of their own: a node leaving while its
// peer leaves too is a normal stop, exit status 0 with nothing worse than
// an info line, well within the stop timeout.
func TestLBPairStoppedTogether(t *testing.T) {
	be := newBackend(t, "a")
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	t.Setenv("THREETIER_CLUSTER_KEY", base64.StdEncoding.EncodeToString(key))
	common := []string{"-listen", "127.0.0.1:0", "-backends", be.URL, "-stats", "127.0.0.1:0", "-cluster-listen", "127.0.0.1:0"}
	n1 := startLBProcess(t, append(common, "-node", "lb-1")...)
	n2 := startLBProcess(t, append(common, "-node", "lb-2", "-peers", n1.Cluster)...)
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	for _, n := range []*lbProcess{n1, n2} {
		wait.For(t, 10*time.Second, "two members alive on "+n.Stats, func() bool {
			var r stats.Report
			getJSON(t, c, "http://"+n.Stats+"/api/status", &r)
			alive := 0
			for _, m := range r.Members {
				if m.State == "alive" {
					alive++
				}
			}
			return alive == 2
		})
	}

	start := time.Now()
	for _, n := range []*lbProcess{n1, n2} {
		if err := n.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range []*lbProcess{n1, n2} {
		code := n.exitCode(t)
		logs := n.stderr.String()
		if code != 0 || strings.Contains(logs, "level=ERROR") || strings.Contains(logs, "level=WARN") {
			t.Errorf("%s stopped with its peer: exit %d, log:\n%s", n.Proxy, code, logs)
		}
		if !strings.Contains(logs, "cluster node stopped") {
			t.Errorf("%s: no line of the cluster's stop:\n%s", n.Proxy, logs)
		}
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("the pair took %v to stop", took)
	}
}

type statusError struct {
	code int
	body string
}

func (e *statusError) Error() string { return http.StatusText(e.code) + ": " + e.body }

// writeCert writes a fresh self-signed certificate for 127.0.0.1 and its
// key to dir/cert.pem and dir/key.pem, and returns the certificate.
func writeCert(t *testing.T, dir string, serial int64) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(serial),
		Subject:               pkix.Name{CommonName: "lb test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "cert.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "key.pem"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return cert
}

// setMtimes gives both files the same modification time.
func setMtimes(t *testing.T, dir string, at time.Time) {
	t.Helper()
	for _, name := range []string{"cert.pem", "key.pem"} {
		if err := os.Chtimes(filepath.Join(dir, name), at, at); err != nil {
			t.Fatal(err)
		}
	}
}

// TestLBTLSReloadAndRedirect serves HTTPS with HTTP/2, redirects plain
// HTTP to it, and swaps the certificate on SIGHUP and when the files
// change.
func TestLBTLSReloadAndRedirect(t *testing.T) {
	app := newBackend(t, "app")
	dir := t.TempDir()
	roots := x509.NewCertPool()
	first := writeCert(t, dir, 1)
	roots.AddCert(first)
	was := time.Now().Add(-time.Minute).Truncate(time.Second)
	setMtimes(t, dir, was)
	l := startLB(t, "-listen", "127.0.0.1:0", "-backends", app.URL,
		"-tls-cert", filepath.Join(dir, "cert.pem"), "-tls-key", filepath.Join(dir, "key.pem"), "-redirect-http", "127.0.0.1:0")

	tlsCfg := &tls.Config{RootCAs: roots, NextProtos: []string{"h2", "http/1.1"}}
	served := func() (int64, string) {
		conn, err := tls.Dial("tcp", l.Proxy, tlsCfg)
		if err != nil {
			return -1, err.Error() // not trusted yet: the new root is added before the swap
		}
		defer conn.Close()
		st := conn.ConnectionState()
		return st.PeerCertificates[0].SerialNumber.Int64(), st.NegotiatedProtocol
	}
	if serial, proto := served(); serial != 1 || proto != "h2" {
		t.Fatalf("served certificate %d over %q, want 1 over h2", serial, proto)
	}

	tr := &http.Transport{TLSClientConfig: tlsCfg, ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get("https://" + l.Proxy + "/x")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Proto != "HTTP/2.0" || string(body) != "app" {
		t.Fatalf("HTTPS: %d %s %q", resp.StatusCode, resp.Proto, body)
	}

	resp, err = c.Get("http://" + l.Redirect + "/orders?id=7")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if want := "https://" + l.Proxy + "/orders?id=7"; resp.StatusCode != http.StatusPermanentRedirect || resp.Header.Get("Location") != want {
		t.Fatalf("-redirect-http: %d to %q, want 308 to %q", resp.StatusCode, resp.Header.Get("Location"), want)
	}

	// A new pair with the old modification times: only SIGHUP can notice.
	second := writeCert(t, dir, 2)
	setMtimes(t, dir, was)
	roots.AddCert(second)
	if serial, _ := served(); serial != 1 {
		t.Fatalf("certificate %d in service before SIGHUP, want 1", serial)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 10*time.Second, "the certificate reloaded on SIGHUP", func() bool { s, _ := served(); return s == 2 })

	// A pair written with a new modification time is noticed on its own.
	third := writeCert(t, dir, 3)
	setMtimes(t, dir, time.Now().Add(time.Minute))
	roots.AddCert(third)
	wait.For(t, 10*time.Second, "the changed files noticed", func() bool { s, _ := served(); return s == 3 })
}

// TestLBBadFlags runs the built command: each mistake is one line on
// stderr and exit status 2.
func TestLBBadFlags(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the command")
	}
	bin := filepath.Join(t.TempDir(), "lb")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	const be = "http://127.0.0.1:1"
	cases := []struct {
		want string
		env  string
		args []string
	}{
		{"flag needs an argument: -listen", "", []string{"-listen"}},
		{"flag provided but not defined", "", []string{"-nope"}},
		{"no backends", "", nil},
		{"unexpected argument", "", []string{"-backends", be, "extra"}},
		{`-backends[0]="ftp://x"`, "", []string{"-backends", "ftp://x"}},
		{`-policy="fastest": unknown policy`, "", []string{"-backends", be, "-policy", "fastest"}},
		{"invalid value", "", []string{"-backends", be, "-check-interval", "soon"}},
		{`invalid value "2" for flag -check-interval: a duration needs a unit: 2s`, "", []string{"-backends", be, "-check-interval", "2"}},
		{`flag -drain-delay: not a duration: want a number with a unit, such as 2s`, "", []string{"-backends", be, "-drain-delay", "soon"}},
		{"-check-path", "", []string{"-backends", be, "-check-path", "healthz"}},
		{"TLSCert and TLSKey go together", "", []string{"-backends", be, "-tls-cert", "c.pem"}},
		{"-redirect-http", "", []string{"-backends", be, "-redirect-http", ":8080"}},
		{"-trusted-proxies[0]", "", []string{"-backends", be, "-trusted-proxies", "10.0.0.0/99"}},
		{"-max-conns", "", []string{"-backends", be, "-max-conns", "-1"}},
		{"-rate-limit", "", []string{"-backends", be, "-rate-limit", "-1"}},
		{"-conn-limit", "", []string{"-backends", be, "-conn-limit", "-1"}},
		{"THREETIER_PROXY_RATE_KEY", "THREETIER_PROXY_RATE_KEY=query:k", []string{"-backends", be}},
		{"-peers (THREETIER_CLUSTER_PEERS)=", "", []string{"-backends", be, "-peers", "no-port"}},
		{"-cluster-listen (THREETIER_CLUSTER_LISTEN)", "", []string{"-backends", be, "-cluster-listen", "nowhere"}},
		{"-cluster-key (THREETIER_CLUSTER_KEY): not base64", "", []string{"-backends", be, "-peers", "127.0.0.1:7946", "-cluster-key", "short"}},
		{"-cluster-key (THREETIER_CLUSTER_KEY): required", "", []string{"-backends", be, "-cluster-listen", "127.0.0.1:0"}},
		{"-cluster-key (THREETIER_CLUSTER_KEY): not base64", "THREETIER_CLUSTER_KEY=short", []string{"-backends", be, "-peers", "127.0.0.1:7946"}},
		{"-cluster-key needs -cluster-listen or -peers", "", []string{"-backends", be, "-cluster-key", "AAAAAAAAAAAAAAAAAAAAAA=="}},
		{"-stats-token needs -stats", "", []string{"-backends", be, "-stats-token", "t"}},
		{"THREETIER_BALANCER_HEALTH_INTERVAL", "THREETIER_BALANCER_HEALTH_INTERVAL=soon", []string{"-backends", be}},
		{"THREETIER_PROXY_MAX_CONNS", "THREETIER_PROXY_MAX_CONNS=many", []string{"-backends", be}},
		{`THREETIER_BALANCER_POLICY="fastest": unknown policy`, "THREETIER_BALANCER_POLICY=fastest", []string{"-backends", be}},
		{"THREETIER_LOG_LEVEL", "THREETIER_LOG_LEVEL=loud", []string{"-backends", be}},
		{"THREETIER_BALANCER_HEALTH_PATHS: unknown variable; did you mean THREETIER_BALANCER_HEALTH_PATH?", "THREETIER_BALANCER_HEALTH_PATHS=/up", []string{"-backends", be}},
	}
	for _, tc := range cases {
		cmd := exec.Command(bin, tc.args...)
		cmd.Env = os.Environ()
		if tc.env != "" {
			cmd.Env = append(cmd.Env, tc.env)
		}
		var stderr strings.Builder
		cmd.Stderr = &stderr
		err := cmd.Run()
		ee, ok := err.(*exec.ExitError)
		if !ok || ee.ExitCode() != 2 {
			t.Errorf("%v %v: %v, want exit 2", tc.env, tc.args, err)
		}
		out := stderr.String()
		if strings.Count(out, "\n") != 1 || !strings.HasPrefix(out, "lb: ") || !strings.Contains(out, tc.want) {
			t.Errorf("%v %v: stderr %q, want one line with %q", tc.env, tc.args, out, tc.want)
		}
	}
}

// TestLBAccessLogOnByDefault: the node logs every request, as HAProxy
// does, unless -access-log=false turns the lines off.
func TestLBAccessLogOnByDefault(t *testing.T) {
	b := newBackend(t, "a")
	for _, c := range []struct {
		name   string
		args   []string
		logged bool
	}{
		{"default", nil, true},
		{"flag off", []string{"-access-log=false"}, false},
		{"flag on", []string{"-access-log"}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			var logs syncbuf.Buffer
			ctx, cancel := context.WithCancel(context.Background())
			ready := make(chan listening, 1)
			done := make(chan error, 1)
			args := append([]string{"-listen", "127.0.0.1:0", "-backends", b.URL, "-check-path", ""}, c.args...)
			go func() { done <- run(ctx, args, &logs, ready) }()
			stop := sync.OnceFunc(func() {
				cancel()
				if err := <-done; err != nil {
					t.Errorf("shutdown: %v", err)
				}
			})
			t.Cleanup(stop)
			var l listening
			select {
			case l = <-ready:
			case err := <-done:
				done <- nil // for stop
				t.Fatalf("ended before serving: %v", err)
			case <-time.After(30 * time.Second):
				t.Fatal("not serving within 30s")
			}
			tr := &http.Transport{}
			defer tr.CloseIdleConnections()
			if code := getJSON(t, &http.Client{Transport: tr}, "http://"+l.Proxy+"/logged-path", nil); code != 200 {
				t.Fatalf("status %d", code)
			}
			// The line is written once the answer is sent: wait for it
			// where one is expected; where none is, the stop below
			// comes after whatever would have been written.
			if c.logged {
				wait.For(t, 10*time.Second, "the access line", func() bool { return strings.Contains(logs.String(), "uri=/logged-path") })
			}
			stop()
			if got := strings.Contains(logs.String(), "msg=access"); got != c.logged {
				t.Errorf("access line written: %v, want %v:\n%s", got, c.logged, logs.String())
			}
		})
	}
}

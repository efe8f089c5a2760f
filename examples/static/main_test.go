package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// fasthttp's own: the clock of its Date header lives as long as the
		// process, and its worker pool's sweeper ends only at its next
		// round after the server stopped.
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"))
}

// TestStaticServes runs the server over a real socket with SPA and cache
// rules, then stops it.
func TestStaticServes(t *testing.T) {
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "app says "+r.URL.Path)
	}))
	defer app.Close()
	root := t.TempDir()
	_ = os.WriteFile(filepath.Join(root, "index.html"), []byte("<h1>app</h1>\n"), 0o644)
	_ = os.MkdirAll(filepath.Join(root, "assets"), 0o755)
	_ = os.WriteFile(filepath.Join(root, "assets", "app.js"), []byte("console.log(1)\n"), 0o644)
	_ = os.WriteFile(filepath.Join(root, "assets", "big.js"), []byte(strings.Repeat("console.log(2)\n", 4000)), 0o644)

	l := startStatic(t, "-listen", "127.0.0.1:0", "-admin", "127.0.0.1:0", "-root", root, "-spa", "-access-log=false",
		"-cache", "/assets/*=public, max-age=31536000, immutable", "-cache", "*.html=no-cache", "-forward", "/api/="+app.URL,
		"-compress-limit", "2", "-compress-file-max", "1024", "-compress-cache-bytes", "-1")
	addr := l.Site
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr}
	get := func(path, accept string) (*http.Response, string) {
		return getFrom(t, c, "http://"+addr+path, accept)
	}
	if resp, body := get("/assets/app.js", "*/*"); resp.StatusCode != 200 || body != "console.log(1)\n" || resp.Header.Get("Cache-Control") != "public, max-age=31536000, immutable" {
		t.Fatalf("asset: %d %q %q", resp.StatusCode, body, resp.Header.Get("Cache-Control"))
	}
	// Larger than -compress-file-max: compressed while sent.
	req, _ := http.NewRequest("GET", "http://"+addr+"/assets/big.js", nil)
	req.Header.Set("Accept-Encoding", "gzip")
	if resp, err := c.Do(req); err != nil || resp.Header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("compressed: %v %v", err, resp)
	} else {
		resp.Body.Close()
	}
	if resp, body := get("/some/route", "text/html"); resp.StatusCode != 200 || body != "<h1>app</h1>\n" || resp.Header.Get("Cache-Control") != "no-cache" {
		t.Fatalf("SPA route: %d %q %q", resp.StatusCode, body, resp.Header.Get("Cache-Control"))
	}
	if resp, body := get("/api/orders", "application/json"); resp.StatusCode != 200 || body != "app says /api/orders" {
		t.Fatalf("forwarded: %d %q", resp.StatusCode, body)
	}
	// The metrics are on the admin listener, not on the public one (where
	// the SPA fallback leaves a non-navigation 404).
	if resp, body := get("/metrics", "*/*"); resp.StatusCode != 404 || strings.Contains(body, "threetier_") {
		t.Fatalf("public /metrics: %d %q", resp.StatusCode, body)
	}
	if resp, body := getFrom(t, c, "http://"+l.Admin+"/metrics", "*/*"); resp.StatusCode != 200 || !strings.Contains(body, "threetier_web_requests_total") || !strings.Contains(body, "threetier_balancer_") {
		t.Fatalf("admin metrics: %d %q", resp.StatusCode, body)
	}
	if resp, body := getFrom(t, c, "http://"+l.Admin+"/readyz", "*/*"); resp.StatusCode != 200 || !strings.Contains(body, `"ready":true`) {
		t.Fatalf("admin readyz: %d %q", resp.StatusCode, body)
	}
}

// startStatic runs static with args until the test ends (a shutdown that
// fails fails the test), and returns its addresses once it serves.
func startStatic(t *testing.T, args ...string) listening {
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
		done <- err
		t.Fatalf("ended before serving: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("not serving within 30s")
	}
	return listening{}
}

// TestStaticErrorPages: with -error-pages a browser gets the page for the
// error, with its status; curl keeps problem+json, and a status without a
// page gets the built-in page.
func TestStaticErrorPages(t *testing.T) {
	root := t.TempDir()
	_ = os.MkdirAll(filepath.Join(root, ".errors"), 0o755)
	_ = os.WriteFile(filepath.Join(root, ".errors", "404.html"), []byte("<h1>Lost?</h1>\n"), 0o644)
	l := startStatic(t, "-listen", "127.0.0.1:0", "-admin", "-", "-root", root, "-access-log=false", "-error-pages", "/.errors")
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr}
	const browser = "text/html,application/xhtml+xml,*/*;q=0.8"
	if resp, body := getFrom(t, c, "http://"+l.Site+"/nowhere", browser); resp.StatusCode != 404 || body != "<h1>Lost?</h1>\n" {
		t.Errorf("404 page: %d %q", resp.StatusCode, body)
	}
	if resp, body := getFrom(t, c, "http://"+l.Site+"/nowhere", "*/*"); resp.StatusCode != 404 || resp.Header.Get("Content-Type") != "application/problem+json" {
		t.Errorf("404 to curl: %d %q %q", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	req, _ := http.NewRequest("DELETE", "http://"+l.Site+"/nowhere", nil)
	req.Header.Set("Accept", browser)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 405 || !strings.Contains(string(body), "<h1>405 Method Not Allowed</h1>") {
		t.Errorf("405 without a page: %d %q", resp.StatusCode, body)
	}
}

// TestStaticMetricsWhenAsked: -metrics puts them on the public listener
// too, and -admin - leaves the admin listener out.
func TestStaticMetricsWhenAsked(t *testing.T) {
	l := startStatic(t, "-listen", "127.0.0.1:0", "-admin", "-", "-root", t.TempDir(), "-metrics", "/internal/metrics")
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr}
	if resp, body := getFrom(t, c, "http://"+l.Site+"/internal/metrics", "*/*"); resp.StatusCode != 200 || !strings.Contains(body, "threetier_web_") {
		t.Fatalf("asked-for metrics: %d %q", resp.StatusCode, body)
	}
	if l.Admin != "" {
		t.Fatalf("admin listener on %s with -admin -", l.Admin)
	}
}

func getFrom(t *testing.T, c *http.Client, url, accept string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Accept", accept)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

// TestStaticNamesNoFarVariable: a variable meant for another program is
// unknown here, and no name static reads is near enough to suggest.
func TestStaticNamesNoFarVariable(t *testing.T) {
	t.Setenv("THREETIER_WEB_ROOT", t.TempDir())
	err := run(context.Background(), []string{"-root", "."}, io.Discard, nil)
	if want := "THREETIER_WEB_ROOT: unknown variable"; err == nil || err.Error() != want {
		t.Fatalf("run = %v, want %s", err, want)
	}
}

// TestStaticBadFlags runs the built command: each mistake is one line on
// stderr and exit status 2.
func TestStaticBadFlags(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the command")
	}
	bin := filepath.Join(t.TempDir(), "static")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	cases := map[string][]string{
		"flag needs an argument: -listen":                  {"-listen"},
		"not a directory":                                  {"-root", "/nonexistent/dir"},
		"want pattern=value":                               {"-cache", "nonsense"},
		"flag provided but not defined":                    {"-nope"},
		"unexpected argument":                              {"-root", ".", "extra"},
		"want /prefix/=":                                   {"-forward", "api=http://x"},
		"invalid value":                                    {"-hsts", "soon"},
		"flag -body-timeout: a duration needs a unit: 30s": {"-body-timeout", "30"},
		"did you mean THREETIER_LOG_LEVEL?":                {"-root", "."},
		"THREETIER_ADMIN_LISTEN":                           {"-root", "."},
		`-metrics="metrics"`:                               {"-root", ".", "-metrics", "metrics"},
		`-compress-limit="-1"`:                             {"-root", ".", "-compress-limit", "-1"},
		"-tls-cert: TLS needs both":                        {"-root", ".", "-tls-cert", "c.pem"},
		`-engine="fast": unknown engine`:                   {"-root", ".", "-engine", "fast"},
		`-error-pages="../up"`:                             {"-root", ".", "-error-pages", "../up"},
	}
	for want, args := range cases {
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), "THREETIER_LOG_LEVEL=info")
		switch want {
		case "did you mean THREETIER_LOG_LEVEL?":
			cmd.Env = append(os.Environ(), "THREETIER_LOG_LEVL=debug")
		case "THREETIER_ADMIN_LISTEN":
			cmd.Env = append(cmd.Env, "THREETIER_ADMIN_LISTEN=nowhere")
		}
		var stderr strings.Builder
		cmd.Stderr = &stderr
		err := cmd.Run()
		ee, ok := err.(*exec.ExitError)
		if !ok || ee.ExitCode() != 2 {
			t.Errorf("%v: %v, want exit 2", args, err)
		}
		out := stderr.String()
		if strings.Count(out, "\n") != 1 || !strings.HasPrefix(out, "static: ") || !strings.Contains(out, want) {
			t.Errorf("%v: stderr %q, want one line with %q", args, out, want)
		}
	}
}

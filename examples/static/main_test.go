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

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

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

	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	args := []string{"-listen", "127.0.0.1:0", "-root", root, "-spa", "-access-log=false",
		"-cache", "/assets/*=public, max-age=31536000, immutable", "-cache", "*.html=no-cache", "-forward", "/api/=" + app.URL, "-metrics", "/metrics",
		"-compress-limit", "2", "-compress-file-max", "1024", "-compress-cache-bytes", "-1"}
	go func() { done <- run(ctx, args, io.Discard, ready) }()
	var addr string
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatalf("ended before serving: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("not serving within 30s")
	}
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr}
	get := func(path, accept string) (*http.Response, string) {
		req, _ := http.NewRequest("GET", "http://"+addr+path, nil)
		req.Header.Set("Accept", accept)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, string(b)
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
	if resp, body := get("/metrics", "*/*"); resp.StatusCode != 200 || !strings.Contains(body, "threetier_web_requests_total") {
		t.Fatalf("metrics: %d %q", resp.StatusCode, body)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
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
		`-metrics="metrics"`:                               {"-root", ".", "-metrics", "metrics"},
		`-compress-limit="-1"`:                             {"-root", ".", "-compress-limit", "-1"},
		"-tls-cert: TLS needs both":                        {"-root", ".", "-tls-cert", "c.pem"},
	}
	for want, args := range cases {
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), "THREETIER_LOG_LEVEL=info")
		if want == "did you mean THREETIER_LOG_LEVEL?" {
			cmd.Env = append(os.Environ(), "THREETIER_LOG_LEVL=debug")
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

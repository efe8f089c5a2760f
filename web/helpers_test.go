package web

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/zstd"
	"github.com/threetier/threetier/tier"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if os.Getenv(serveEnv) != "" {
		os.Exit(serveChild())
	}
	goleak.VerifyTestMain(m,
		// fasthttp's own: the clock of its Date header lives as long as the
		// process, and its worker pool's sweeper ends only at its next
		// round after the server stopped.
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"))
}

// tree is a served directory with files of every kind the handler treats
// differently, plus a secret just outside it.
type tree struct {
	dir, root string
	small     []byte // text, compressible, cached
	big       []byte // binary, sent from disk
	bigText   []byte // text, too big to cache: compressed on the fly
	css       []byte // has .gz and .br sidecars
}

func newTree(t *testing.T) *tree {
	t.Helper()
	dir := t.TempDir()
	tr := &tree{dir: dir, root: filepath.Join(dir, "public")}
	tr.small = bytes.Repeat([]byte("small text file, compressible. "), 100) // 3100 B
	tr.big = make([]byte, 300<<10)
	_, _ = rand.Read(tr.big)
	tr.bigText = bytes.Repeat([]byte("console.log('a line of javascript');\n"), 8000) // ~300 KiB
	tr.css = bytes.Repeat([]byte("body { color: #333; margin: 0 auto; }\n"), 100)
	files := map[string][]byte{
		"index.html":               []byte("<h1>root index</h1>\n"),
		"small.txt":                tr.small,
		"tiny.txt":                 []byte("tiny\n"),
		"big.bin":                  tr.big,
		"big.js":                   tr.bigText,
		"app.css":                  tr.css,
		"app.css.gz":               gzipBytes(tr.css),
		"app.css.br":               []byte("fake brotli sidecar bytes"),
		"dir/index.html":           []byte("<h1>dir index</h1>\n"),
		"list/b.txt":               []byte("b\n"),
		"list/a <&>\"?#.txt":       []byte("odd name\n"),
		"list/.hidden":             []byte("hidden\n"),
		"list/sub/c.txt":           []byte("c\n"),
		".secret":                  []byte("TOP-SECRET-DOTFILE\n"),
		".git/config":              []byte("TOP-SECRET-GIT\n"),
		".well-known/security.txt": []byte("Contact: mailto:security@example.com\n"),
		"assets/app.1234.js":       []byte("console.log(1)\n"),
		"%2e%2e":                   []byte("literal percent name\n"),
		"empty.txt":                nil,
	}
	for name, data := range files {
		p := filepath.Join(tr.root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	outside := filepath.Join(dir, "outside.txt")
	if err := os.WriteFile(outside, []byte("TOP-SECRET-OUTSIDE\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(tr.root, "link-out")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../outside.txt", filepath.Join(tr.root, "link-rel-out")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(dir, filepath.Join(tr.root, "dirlink-out")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("small.txt", filepath.Join(tr.root, "link-in.txt")); err != nil {
		t.Fatal(err)
	}
	return tr
}

func gzipBytes(b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, _ = zw.Write(b)
	_ = zw.Close()
	return buf.Bytes()
}

// engine names a server engine the tests run on.
type engine string

const (
	engineHTTP engine = "net/http"
	engineFast engine = "fasthttp"
)

// forEachEngine runs test once per engine, as a subtest named after it.
func forEachEngine(t *testing.T, test func(t *testing.T, eng engine)) {
	t.Helper()
	for _, eng := range []engine{engineHTTP, engineFast} {
		t.Run(string(eng), func(t *testing.T) { test(t, eng) })
	}
}

// serveFiles starts a real HTTP server on eng with a Files handler over
// cfg: on net/http, the handler alone; on fasthttp, in a tier server on
// the fast engine.
func serveFiles(t *testing.T, eng engine, cfg FilesConfig, opts ...Option) (*Files, string) {
	t.Helper()
	f, err := NewFiles(cfg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if eng == engineHTTP {
		srv := httptest.NewServer(f)
		t.Cleanup(func() {
			srv.Close()
			_ = f.Close()
		})
		return f, srv.URL
	}
	srv := tier.NewHTTPServer("files", &http.Server{Addr: "127.0.0.1:0", Handler: f}, tier.WithFastHTTP1(f.ServeFast))
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Stop(ctx); err != nil {
			t.Errorf("stop: %v", err)
		}
		_ = f.Close()
	})
	return f, "http://" + srv.Addr()
}

// client never decompresses, so tests see what was sent.
func client(t *testing.T) *http.Client {
	t.Helper()
	tr := &http.Transport{DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

type result struct {
	status int
	header http.Header
	body   []byte
}

// do sends method url with headers ("Key: value") and reads the whole reply.
func do(t *testing.T, c *http.Client, method, url string, headers ...string) result {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ":")
		req.Header.Set(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return result{resp.StatusCode, resp.Header, body}
}

// rawRequest sends target exactly as written (no client-side cleaning)
// over a fresh TCP connection and returns status and body.
func rawRequest(t *testing.T, baseURL, target string) (int, string) {
	t.Helper()
	addr := strings.TrimPrefix(baseURL, "http://")
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(conn, "GET "+target+" HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("%q: %v", target, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// prose returns n bytes of text that compresses as web text does (about
// five to one): words drawn from a small vocabulary by a seeded generator.
func prose(n int, seed uint64) []byte {
	words := strings.Fields("the static tier serves files with validators ranges and compression " +
		"of text while the app tier answers dynamic routes behind a balancer pool of endpoints")
	rng := mrand.New(mrand.NewPCG(seed, seed))
	var b bytes.Buffer
	b.Grow(n + 16)
	for b.Len() < n {
		b.WriteString(words[rng.IntN(len(words))])
		if rng.IntN(12) == 0 {
			b.WriteByte('\n')
		} else {
			b.WriteByte(' ')
		}
	}
	return b.Bytes()[:n]
}

// decode undoes a Content-Encoding ("" is identity).
func decode(coding string, body []byte) ([]byte, error) {
	var r io.Reader
	switch coding {
	case "":
		return body, nil
	case "br":
		r = brotli.NewReader(bytes.NewReader(body))
	case "gzip":
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		r = zr
	case "zstd":
		zr, err := zstd.NewReader(bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		defer zr.Close()
		r = zr
	default:
		return nil, fmt.Errorf("unknown coding %q", coding)
	}
	return io.ReadAll(r)
}

package web

import (
	"bytes"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/threetier/threetier/internal/wait"
	"github.com/threetier/threetier/tier"
)

// holdFS lets the first Open of each held file read freely (the load that
// hashes it) and holds every read of a later Open (a compression, or a
// send) until gate closes. It counts Opens and reads waiting.
type holdFS struct {
	fstest.MapFS
	held    map[string]bool
	gate    chan struct{}
	once    sync.Once
	mu      sync.Mutex
	opens   map[string]int
	waiting atomic.Int32
}

func newHoldFS(files fstest.MapFS, held ...string) *holdFS {
	h := &holdFS{MapFS: files, held: map[string]bool{}, gate: make(chan struct{}), opens: map[string]int{}}
	for _, name := range held {
		h.held[name] = true
	}
	return h
}

func (h *holdFS) Open(name string) (fs.File, error) {
	file, err := h.MapFS.Open(name)
	if err != nil || !h.held[name] {
		return file, err
	}
	h.mu.Lock()
	h.opens[name]++
	later := h.opens[name] > 1
	h.mu.Unlock()
	if later {
		return &heldFile{File: file, h: h}, nil
	}
	return file, nil
}

func (h *holdFS) openCount(name string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.opens[name]
}

type heldFile struct {
	fs.File
	h      *holdFS
	passed bool
}

func (f *heldFile) Read(p []byte) (int, error) {
	if !f.passed {
		f.h.waiting.Add(1)
		<-f.h.gate
		f.h.waiting.Add(-1)
		f.passed = true
	}
	return f.File.Read(p)
}

// Seek keeps ranges working: the handler seeks to a range's start.
func (f *heldFile) Seek(offset int64, whence int) (int64, error) {
	return f.File.(io.Seeker).Seek(offset, whence)
}

// release opens the gate once, also when a test fails before it does.
func (h *holdFS) release() { h.once.Do(func() { close(h.gate) }) }

// get sends a GET with Accept-Encoding coding from a goroutine; the
// result arrives on the returned channel.
func getAsync(c *http.Client, url, coding string) <-chan result {
	done := make(chan result, 1)
	go func() {
		req, _ := http.NewRequest("GET", url, nil)
		req.Header.Set("Accept-Encoding", coding)
		resp, err := c.Do(req)
		if err != nil {
			done <- result{}
			return
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		done <- result{resp.StatusCode, resp.Header, body}
	}()
	return done
}

// wantDecoded fails t unless r is a 200 in coding whose body decodes to want.
func wantDecoded(t *testing.T, what string, r result, coding string, want []byte) {
	t.Helper()
	if r.status != 200 || r.header.Get("Content-Encoding") != coding || !strings.Contains(r.header.Get("Vary"), "Accept-Encoding") {
		t.Fatalf("%s: %d encoding %q vary %q, want 200 %q with Vary", what, r.status, r.header.Get("Content-Encoding"), r.header.Get("Vary"), coding)
	}
	got, err := decode(coding, r.body)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("%s: decoded %d bytes (err %v), want the file's %d", what, len(got), err, len(want))
	}
}

// With every compression slot taken, one more request is answered at
// once in the identity form, Vary included; the held ones then finish
// compressed. Both for forms kept in memory and for files compressed
// while sent.
func TestCompressLimitSendsIdentityBeyondIt(t *testing.T) {
	forEachEngine(t, func(t *testing.T, eng engine) {
		a, b, c := prose(64<<10, 1), prose(64<<10, 2), prose(64<<10, 3)
		for _, tc := range []struct {
			name    string
			fileMax int64
		}{{"kept", 0}, {"streamed", 1024}} {
			t.Run(tc.name, func(t *testing.T) {
				h := newHoldFS(fstest.MapFS{
					"a.js": {Data: a}, "b.js": {Data: b}, "c.js": {Data: c},
				}, "a.js", "b.js")
				t.Cleanup(h.release)
				reg := prometheus.NewRegistry()
				_, url := serveFiles(t, eng, FilesConfig{CacheFileMax: 16, CompressLimit: 2, CompressFileMax: tc.fileMax}, WithFS(h), WithRegistry(reg))
				cl := client(t)
				gotA, gotB := getAsync(cl, url+"/a.js", "gzip"), getAsync(cl, url+"/b.js", "gzip")
				wait.For(t, 20*time.Second, "two compressions holding both slots", func() bool { return h.waiting.Load() == 2 })

				r := do(t, cl, "GET", url+"/c.js", "Accept-Encoding: gzip")
				wantDecoded(t, "beyond the limit", r, "", c)
				if id := do(t, cl, "GET", url+"/c.js"); r.header.Get("ETag") != id.header.Get("ETag") {
					t.Errorf("identity answer tagged %s, the identity form is %s", r.header.Get("ETag"), id.header.Get("ETag"))
				}
				if n := metricValue(t, reg, "threetier_web_compressions_skipped_total"); n != 1 {
					t.Errorf("compressions_skipped_total %v, want 1", n)
				}
				h.release()
				wantDecoded(t, "a.js", <-gotA, "gzip", a)
				wantDecoded(t, "b.js", <-gotB, "gzip", b)
				// Slots are given back: c.js compresses now.
				wantDecoded(t, "c.js after", do(t, cl, "GET", url+"/c.js", "Accept-Encoding: gzip"), "gzip", c)
			})
		}
	})
}

// Concurrent first requests for a form wait for one compression; later
// ones get the cached bytes with their length, ETag, revalidation, and
// ranges of the identity form.
func TestVariantCompressedOnceUnderConcurrency(t *testing.T) {
	data := prose(256<<10, 2)
	h := newHoldFS(fstest.MapFS{"big.js": {Data: data}}, "big.js")
	t.Cleanup(h.release)
	reg := prometheus.NewRegistry()
	f, err := NewFiles(FilesConfig{CacheFileMax: 16}, WithFS(h), WithRegistry(reg))
	if err != nil {
		t.Fatal(err)
	}
	var entered atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered.Add(1)
		f.ServeHTTP(w, r)
	}))
	t.Cleanup(func() { srv.Close(); _ = f.Close() })
	c := client(t)

	const n = 16
	results := make([]<-chan result, n)
	for i := range results {
		results[i] = getAsync(c, srv.URL+"/big.js", "br")
	}
	wait.For(t, 20*time.Second, "every request in the handler and one compression held", func() bool {
		return entered.Load() == n && h.waiting.Load() >= 1
	})
	h.release()
	for i, res := range results {
		wantDecoded(t, "request "+strconv.Itoa(i), <-res, "br", data)
	}
	if opens := h.openCount("big.js"); opens != 2 {
		t.Errorf("big.js opened %d times, want 2 (the load, one compression)", opens)
	}
	if got := metricValue(t, reg, "threetier_web_compressions_total"); got != 1 {
		t.Errorf("compressions_total %v, want 1", got)
	}

	r := do(t, c, "GET", srv.URL+"/big.js", "Accept-Encoding: br")
	wantDecoded(t, "from the cache", r, "br", data)
	if cl := r.header.Get("Content-Length"); cl != strconv.Itoa(len(r.body)) {
		t.Errorf("Content-Length %q, body %d bytes", cl, len(r.body))
	}
	id := do(t, c, "GET", srv.URL+"/big.js")
	if etag := r.header.Get("ETag"); !strings.HasSuffix(etag, `-br"`) || etag == id.header.Get("ETag") {
		t.Errorf("br ETag %s, identity %s", etag, id.header.Get("ETag"))
	}
	if nm := do(t, c, "GET", srv.URL+"/big.js", "Accept-Encoding: br", "If-None-Match: "+r.header.Get("ETag")); nm.status != 304 || nm.header.Get("Vary") == "" {
		t.Errorf("revalidation: %d vary %q", nm.status, nm.header.Get("Vary"))
	}
	if rg := do(t, c, "GET", srv.URL+"/big.js", "Accept-Encoding: br", "Range: bytes=0-9"); rg.status != 206 || rg.header.Get("Content-Encoding") != "" || string(rg.body) != string(data[:10]) {
		t.Errorf("range: %d encoding %q body %q", rg.status, rg.header.Get("Content-Encoding"), rg.body)
	}
	if got := metricValue(t, reg, "threetier_web_compressions_total"); got != 1 {
		t.Errorf("compressions_total %v after cached answers, want 1", got)
	}
}

// replace writes data to path by rename, as deployments do, so that the
// inode changes.
func replace(t *testing.T, path string, data []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// A file replaced on disk is never answered with a compressed form of its
// old contents: a file sent from disk even within CacheCheck, one kept in
// memory from the next check on.
func TestVariantOfReplacedFileIsFresh(t *testing.T) {
	forEachEngine(t, func(t *testing.T, eng engine) {
		dir := t.TempDir()
		big, small := filepath.Join(dir, "big.js"), filepath.Join(dir, "small.js")
		replace(t, big, prose(200<<10, 3))
		replace(t, small, prose(8<<10, 4))
		for _, tc := range []struct {
			name, path string
			cfg        FilesConfig
			seed       uint64
		}{
			{"from disk", big, FilesConfig{Root: dir, CacheFileMax: 64 << 10, CacheCheck: time.Hour}, 5},
			{"in memory", small, FilesConfig{Root: dir, CacheCheck: -1}, 6},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, url := serveFiles(t, eng, tc.cfg)
				c := client(t)
				u := url + "/" + filepath.Base(tc.path)
				old, _ := os.ReadFile(tc.path)
				first := do(t, c, "GET", u, "Accept-Encoding: gzip")
				wantDecoded(t, "before", first, "gzip", old)
				newer := prose(len(old)+100, tc.seed)
				replace(t, tc.path, newer)
				r := do(t, c, "GET", u, "Accept-Encoding: gzip")
				wantDecoded(t, "after the replace", r, "gzip", newer)
				if r.header.Get("ETag") == first.header.Get("ETag") {
					t.Errorf("new contents under the old ETag %s", r.header.Get("ETag"))
				}
			})
		}
	})
}

// The compressed forms held stay within CompressCacheMaxBytes, however
// many files are asked for.
func TestVariantCacheIsBounded(t *testing.T) {
	forEachEngine(t, func(t *testing.T, eng engine) {
		dir := t.TempDir()
		files := make([][]byte, 30)
		for i := range files {
			files[i] = prose(8<<10, uint64(10+i))
			replace(t, filepath.Join(dir, strconv.Itoa(i)+".txt"), files[i])
		}
		const bound = 10000
		reg := prometheus.NewRegistry()
		f, url := serveFiles(t, eng, FilesConfig{Root: dir, CompressCacheMaxBytes: bound}, WithRegistry(reg))
		c := client(t)
		for round := range 3 {
			for i, want := range files {
				wantDecoded(t, "round "+strconv.Itoa(round)+" file "+strconv.Itoa(i), do(t, c, "GET", url+"/"+strconv.Itoa(i)+".txt", "Accept-Encoding: gzip"), "gzip", want)
			}
		}
		n, used := f.variants.stats()
		if used > bound || n == 0 {
			t.Fatalf("variant cache holds %d forms, %d bytes; bound %d", n, used, bound)
		}
		if g := metricValue(t, reg, "threetier_web_compressed_cache_bytes"); g != float64(used) {
			t.Errorf("compressed_cache_bytes %v, cache holds %d", g, used)
		}
	})
}

func TestCompressConfig(t *testing.T) {
	forEachEngine(t, func(t *testing.T, eng engine) {
		var cfg Config
		err := tier.LoadEnvFrom([]string{
			"THREETIER_WEB_FILES_COMPRESS_LIMIT=3",
			"THREETIER_WEB_FILES_COMPRESS_FILE_MAX=1048576",
			"THREETIER_WEB_FILES_COMPRESS_CACHE_MAX_BYTES=-1",
		}, EnvPrefix, &cfg)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Files.CompressLimit != 3 || cfg.Files.CompressFileMax != 1<<20 || cfg.Files.CompressCacheMaxBytes != -1 {
			t.Fatalf("%+v", cfg.Files)
		}
		// No variant cache: every compressed answer is made while sent.
		data := prose(8<<10, 7)
		f, url := serveFiles(t, eng, cfg.Files, WithFS(fstest.MapFS{"a.txt": {Data: data}}))
		if f.variants != nil {
			t.Fatal("variant cache kept with a negative bound")
		}
		wantDecoded(t, "no variant cache", do(t, client(t), "GET", url+"/a.txt", "Accept-Encoding: zstd"), "zstd", data)

		err = FilesConfig{CompressLimit: -1, CompressFileMax: -1}.Validate()
		if err == nil || !strings.Contains(err.Error(), "CompressLimit") || !strings.Contains(err.Error(), "CompressFileMax") {
			t.Fatalf("negative limits: %v", err)
		}
	})
}

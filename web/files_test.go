package web

import (
	"bytes"
	"compress/gzip"
	"embed"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"mime"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/threetier/threetier/internal/syncbuf"
	"github.com/threetier/threetier/internal/wait"
	"github.com/threetier/threetier/tier"
)

//go:embed testdata/embed
var embedded embed.FS

func wantProblem(t *testing.T, r result, status int) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d (body %q)", r.status, status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != tier.ContentTypeProblem {
		t.Fatalf("content type %q, want problem+json", ct)
	}
	var p tier.Problem
	if err := json.Unmarshal(r.body, &p); err != nil || p.Status != status || p.Title == "" {
		t.Fatalf("problem body %q: %v", r.body, err)
	}
}

func TestValidatorsAndPreconditions(t *testing.T) {
	forEachEngine(t, func(t *testing.T, eng engine) {
		tr := newTree(t)
		_, url := serveFiles(t, eng, FilesConfig{Root: tr.root})
		c := client(t)
		for _, name := range []string{"/small.txt", "/big.bin"} { // from memory and from disk
			t.Run(name, func(t *testing.T) {
				u := url + name
				first := do(t, c, "GET", u)
				etag, lm := first.header.Get("ETag"), first.header.Get("Last-Modified")
				if first.status != 200 || !strings.HasPrefix(etag, `"`) || lm == "" {
					t.Fatalf("first GET: %d etag %q last-modified %q", first.status, etag, lm)
				}
				if again := do(t, c, "GET", u); again.header.Get("ETag") != etag {
					t.Fatalf("ETag not stable: %q then %q", etag, again.header.Get("ETag"))
				}
				lmTime, _ := http.ParseTime(lm)
				past := lmTime.Add(-time.Hour).Format(http.TimeFormat)
				future := lmTime.Add(time.Hour).Format(http.TimeFormat)
				cases := []struct {
					name    string
					headers []string
					want    int
				}{
					{"if-none-match hit", []string{"If-None-Match: " + etag}, 304},
					{"if-none-match weak hit", []string{"If-None-Match: W/" + etag}, 304},
					{"if-none-match list", []string{`If-None-Match: "nope", ` + etag}, 304},
					{"if-none-match star", []string{"If-None-Match: *"}, 304},
					{"if-none-match miss", []string{`If-None-Match: "nope"`}, 200},
					{"if-modified-since equal", []string{"If-Modified-Since: " + lm}, 304},
					{"if-modified-since past", []string{"If-Modified-Since: " + past}, 200},
					{"if-modified-since garbage", []string{"If-Modified-Since: yesterday"}, 200},
					{"inm miss beats ims", []string{`If-None-Match: "nope"`, "If-Modified-Since: " + future}, 200},
					{"inm hit beats ims", []string{"If-None-Match: " + etag, "If-Modified-Since: " + past}, 304},
					{"if-match hit", []string{"If-Match: " + etag}, 200},
					{"if-match weak never matches", []string{"If-Match: W/" + etag}, 412},
					{"if-match miss", []string{`If-Match: "nope"`}, 412},
					{"if-match star", []string{"If-Match: *"}, 200},
					{"if-unmodified-since past", []string{"If-Unmodified-Since: " + past}, 412},
					{"if-unmodified-since future", []string{"If-Unmodified-Since: " + future}, 200},
					{"if-match beats ius", []string{"If-Match: " + etag, "If-Unmodified-Since: " + past}, 200},
					{"if-match then inm", []string{"If-Match: " + etag, "If-None-Match: " + etag}, 304},
				}
				for _, tc := range cases {
					r := do(t, c, "GET", u, tc.headers...)
					if r.status != tc.want {
						t.Errorf("%s: status %d, want %d", tc.name, r.status, tc.want)
					}
					switch tc.want {
					case 304:
						if len(r.body) != 0 || r.header.Get("ETag") != etag || r.header.Get("Content-Length") != "" {
							t.Errorf("%s: 304 with body %d bytes, etag %q, length %q", tc.name, len(r.body), r.header.Get("ETag"), r.header.Get("Content-Length"))
						}
					case 412:
						wantProblem(t, r, 412)
					}
				}
			})
		}
	})
}

func TestHEADMatchesGET(t *testing.T) {
	forEachEngine(t, func(t *testing.T, eng engine) {
		tr := newTree(t)
		// The largest body whose Content-Length is left to net/http.
		if err := os.WriteFile(filepath.Join(tr.root, "edge.bin"), bytes.Repeat([]byte{1}, autoLengthMax), 0o644); err != nil {
			t.Fatal(err)
		}
		_, url := serveFiles(t, eng, FilesConfig{Root: tr.root})
		c := client(t)
		for _, name := range []string{"/tiny.txt", "/empty.txt", "/edge.bin", "/small.txt", "/big.bin", "/app.css", "/big.js"} {
			get, head := do(t, c, "GET", url+name), do(t, c, "HEAD", url+name)
			if head.status != 200 || len(head.body) != 0 {
				t.Fatalf("%s HEAD: %d with %d body bytes", name, head.status, len(head.body))
			}
			for _, k := range []string{"ETag", "Last-Modified", "Content-Type", "Content-Length", "Accept-Ranges"} {
				if get.header.Get(k) != head.header.Get(k) {
					t.Errorf("%s %s: GET %q HEAD %q", name, k, get.header.Get(k), head.header.Get(k))
				}
			}
			if get.header.Get("Content-Length") != strconv.Itoa(len(get.body)) {
				t.Errorf("%s: Content-Length %q for %d bytes", name, get.header.Get("Content-Length"), len(get.body))
			}
		}
	})
}

func TestETagWithoutModTimes(t *testing.T) {
	forEachEngine(t, func(t *testing.T, eng engine) {
		fsys := fstest.MapFS{
			"a.txt": {Data: []byte("same bytes")},
			"b.txt": {Data: []byte("same bytes")},
			"c.txt": {Data: []byte("other bytes")},
		}
		_, url := serveFiles(t, eng, FilesConfig{}, WithFS(fsys))
		c := client(t)
		a, b, cc := do(t, c, "GET", url+"/a.txt"), do(t, c, "GET", url+"/b.txt"), do(t, c, "GET", url+"/c.txt")
		if a.header.Get("ETag") == "" || a.header.Get("ETag") != b.header.Get("ETag") || a.header.Get("ETag") == cc.header.Get("ETag") {
			t.Fatalf("ETags a %q b %q c %q: want equal for equal bytes, different otherwise", a.header.Get("ETag"), b.header.Get("ETag"), cc.header.Get("ETag"))
		}
		if lm := a.header.Get("Last-Modified"); lm != "" {
			t.Fatalf("Last-Modified %q without a modification time", lm)
		}
		if r := do(t, c, "GET", url+"/a.txt", "If-None-Match: "+a.header.Get("ETag")); r.status != 304 {
			t.Fatalf("revalidation: %d", r.status)
		}
	})
}

func TestEmbedFS(t *testing.T) {
	forEachEngine(t, func(t *testing.T, eng engine) {
		_, url := serveFiles(t, eng, FilesConfig{Prefix: "/static/"}, WithFS(embedded))
		c := client(t)
		if r := do(t, c, "GET", url+"/static/testdata/embed/hello.txt"); r.status != 200 || string(r.body) != "hello from embed\n" || r.header.Get("ETag") == "" {
			t.Fatalf("embedded file: %d %q etag %q", r.status, r.body, r.header.Get("ETag"))
		}
		if r := do(t, c, "GET", url+"/static/testdata/embed/sub/"); r.status != 200 || !strings.Contains(string(r.body), "embedded index") {
			t.Fatalf("embedded index: %d %q", r.status, r.body)
		}
		if r := do(t, c, "GET", url+"/static/testdata/embed/hello.txt", "Range: bytes=6-9"); r.status != 206 || string(r.body) != "from" {
			t.Fatalf("embedded range: %d %q", r.status, r.body)
		}
		if r := do(t, c, "GET", url+"/other/hello.txt"); r.status != 400 {
			t.Fatalf("outside the prefix: %d", r.status)
		}
		if r := do(t, c, "GET", url+"/static"); r.status != 301 || r.header.Get("Location") != "/static/" {
			t.Fatalf("the prefix without its slash: %d %q", r.status, r.header.Get("Location"))
		}
	})
}

func TestRanges(t *testing.T) {
	forEachEngine(t, func(t *testing.T, eng engine) {
		tr := newTree(t)
		_, url := serveFiles(t, eng, FilesConfig{Root: tr.root})
		c := client(t)
		for _, f := range []struct {
			name string
			data []byte
		}{{"/small.txt", tr.small}, {"/big.bin", tr.big}} {
			size := int64(len(f.data))
			u := url + f.name
			etag := do(t, c, "HEAD", u).header.Get("ETag")
			lm := do(t, c, "HEAD", u).header.Get("Last-Modified")
			single := []struct {
				spec       string
				start, end int64 // inclusive
			}{
				{"bytes=0-9", 0, 9},
				{"bytes=10-", 10, size - 1},
				{"bytes=-100", size - 100, size - 1},
				{"bytes=100-99999999", 100, size - 1},
				{"BYTES=5-5", 5, 5},
				{"bytes=-99999999", 0, size - 1},
			}
			for _, tc := range single {
				r := do(t, c, "GET", u, "Range: "+tc.spec, "Accept-Encoding: gzip, br, zstd")
				want := f.data[tc.start : tc.end+1]
				cr := "bytes " + strconv.FormatInt(tc.start, 10) + "-" + strconv.FormatInt(tc.end, 10) + "/" + strconv.FormatInt(size, 10)
				if r.status != 206 || !bytes.Equal(r.body, want) || r.header.Get("Content-Range") != cr {
					t.Errorf("%s %s: %d, %d bytes, Content-Range %q (want %q)", f.name, tc.spec, r.status, len(r.body), r.header.Get("Content-Range"), cr)
				}
				if ce := r.header.Get("Content-Encoding"); ce != "" {
					t.Errorf("%s %s: range sent with Content-Encoding %q", f.name, tc.spec, ce)
				}
			}
			// Several ranges: multipart/byteranges whose parts carry the bytes.
			r := do(t, c, "GET", u, "Range: bytes=0-4, 20-29, -3")
			mt, params, _ := mime.ParseMediaType(r.header.Get("Content-Type"))
			if r.status != 206 || mt != "multipart/byteranges" {
				t.Fatalf("%s multi: %d %q", f.name, r.status, r.header.Get("Content-Type"))
			}
			if r.header.Get("Content-Length") != strconv.Itoa(len(r.body)) {
				t.Fatalf("%s multi: Content-Length %q for %d bytes", f.name, r.header.Get("Content-Length"), len(r.body))
			}
			mr := multipart.NewReader(bytes.NewReader(r.body), params["boundary"])
			wants := [][2]int64{{0, 4}, {20, 29}, {size - 3, size - 1}}
			for i, w := range wants {
				part, err := mr.NextPart()
				if err != nil {
					t.Fatalf("%s part %d: %v", f.name, i, err)
				}
				got, _ := io.ReadAll(part)
				cr := "bytes " + strconv.FormatInt(w[0], 10) + "-" + strconv.FormatInt(w[1], 10) + "/" + strconv.FormatInt(size, 10)
				if !bytes.Equal(got, f.data[w[0]:w[1]+1]) || part.Header.Get("Content-Range") != cr {
					t.Fatalf("%s part %d: %q, Content-Range %q want %q", f.name, i, got, part.Header.Get("Content-Range"), cr)
				}
			}
			if _, err := mr.NextPart(); err != io.EOF {
				t.Fatalf("%s: extra part: %v", f.name, err)
			}

			// Unsatisfiable: 416 with the size.
			r = do(t, c, "GET", u, "Range: bytes="+strconv.FormatInt(size, 10)+"-")
			wantProblem(t, r, 416)
			if r.header.Get("Content-Range") != "bytes */"+strconv.FormatInt(size, 10) {
				t.Fatalf("416 Content-Range %q", r.header.Get("Content-Range"))
			}
			// Ignored: malformed, other units, too many or overlapping ranges.
			for _, spec := range []string{"bytes=abc", "items=0-1", "bytes=5-1", "bytes=0-0,0-0,0-0,0-0,0-0,0-0,0-0,0-0,0-0,0-0,0-0,0-0,0-0,0-0,0-0,0-0,0-0", "bytes=0-,0-"} {
				if r := do(t, c, "GET", u, "Range: "+spec); r.status != 200 || !bytes.Equal(r.body, f.data) {
					t.Errorf("%s %q: %d, want the whole file", f.name, spec, r.status)
				}
			}
			// If-Range: honoured only for the current strong ETag or exact date.
			for _, tc := range []struct {
				ifRange string
				want    int
			}{{etag, 206}, {`"stale"`, 200}, {"W/" + etag, 200}, {lm, 206}, {"Mon, 02 Jan 2006 15:04:05 GMT", 200}} {
				if r := do(t, c, "GET", u, "Range: bytes=0-1", "If-Range: "+tc.ifRange); r.status != tc.want {
					t.Errorf("%s If-Range %q: %d, want %d", f.name, tc.ifRange, r.status, tc.want)
				}
			}
			// HEAD ignores Range.
			if r := do(t, c, "HEAD", u, "Range: bytes=0-1"); r.status != 200 {
				t.Errorf("HEAD with Range: %d", r.status)
			}
		}
		if r := do(t, c, "GET", url+"/empty.txt", "Range: bytes=0-"); r.status != 200 || len(r.body) != 0 {
			t.Errorf("range of an empty file: %d, want 200 and the empty file", r.status)
		}
	})
}

func TestCompression(t *testing.T) {
	forEachEngine(t, func(t *testing.T, eng engine) {
		tr := newTree(t)
		_, url := serveFiles(t, eng, FilesConfig{Root: tr.root})
		c := client(t)

		sidecars := []struct {
			ae, wantEnc string
		}{
			{"gzip, br", "br"},
			{"gzip;q=1, br;q=0.5", "gzip"},
			{"br;q=0, gzip", "gzip"},
			{"*", "br"},
			{"*;q=0.1, br;q=0", "zstd"}, // no .zst sidecar: made from the cached file
			{"identity", ""},
			{"", ""},
			{"deflate", ""},
		}
		for _, tc := range sidecars {
			r := do(t, c, "GET", url+"/app.css", "Accept-Encoding: "+tc.ae)
			if r.status != 200 || r.header.Get("Content-Encoding") != tc.wantEnc || !strings.Contains(r.header.Get("Vary"), "Accept-Encoding") {
				t.Errorf("app.css with %q: %d encoding %q vary %q, want %q", tc.ae, r.status, r.header.Get("Content-Encoding"), r.header.Get("Vary"), tc.wantEnc)
				continue
			}
			var got []byte
			switch tc.wantEnc {
			case "br":
				got = r.body
				if string(got) != "fake brotli sidecar bytes" {
					t.Errorf("br: not the sidecar: %q", got)
				}
				continue
			case "gzip":
				zr, err := gzip.NewReader(bytes.NewReader(r.body))
				if err != nil {
					t.Fatal(err)
				}
				got, _ = io.ReadAll(zr)
			case "zstd":
				zr, err := zstd.NewReader(bytes.NewReader(r.body))
				if err != nil {
					t.Fatal(err)
				}
				got, _ = io.ReadAll(zr)
				zr.Close()
			default:
				got = r.body
			}
			if !bytes.Equal(got, tr.css) {
				t.Errorf("app.css with %q: decoded body differs", tc.ae)
			}
		}

		// Each representation has its own ETag, and revalidates against it.
		gz := do(t, c, "GET", url+"/app.css", "Accept-Encoding: gzip")
		id := do(t, c, "GET", url+"/app.css")
		if gz.header.Get("ETag") == id.header.Get("ETag") {
			t.Fatal("gzip and identity share an ETag")
		}
		if r := do(t, c, "GET", url+"/app.css", "Accept-Encoding: gzip", "If-None-Match: "+gz.header.Get("ETag")); r.status != 304 || r.header.Get("Vary") == "" {
			t.Fatalf("gzip revalidation: %d vary %q", r.status, r.header.Get("Vary"))
		}

		// Too big to cache: compressed while streaming, no length.
		r := do(t, c, "GET", url+"/big.js", "Accept-Encoding: gzip")
		if cl := r.header.Get("Content-Length"); r.header.Get("Content-Encoding") != "gzip" || (cl != "" && cl != strconv.Itoa(len(r.body))) {
			t.Fatalf("big.js: encoding %q length %q", r.header.Get("Content-Encoding"), r.header.Get("Content-Length"))
		}
		zr, err := gzip.NewReader(bytes.NewReader(r.body))
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := io.ReadAll(zr); !bytes.Equal(got, tr.bigText) || len(r.body) >= len(tr.bigText)/4 {
			t.Fatalf("big.js: decoded %d bytes (want %d), sent %d", len(got), len(tr.bigText), len(r.body))
		}
		for _, name := range []string{"/big.bin", "/tiny.txt"} { // not compressible; too small
			if r := do(t, c, "GET", url+name, "Accept-Encoding: gzip, br"); r.header.Get("Content-Encoding") != "" || r.header.Get("Vary") != "" {
				t.Errorf("%s: encoding %q vary %q", name, r.header.Get("Content-Encoding"), r.header.Get("Vary"))
			}
		}

		_, off := serveFiles(t, eng, FilesConfig{Root: tr.root, DisableCompression: true})
		if r := do(t, c, "GET", off+"/small.txt", "Accept-Encoding: gzip"); r.header.Get("Content-Encoding") != "" {
			t.Errorf("compression off: still %q", r.header.Get("Content-Encoding"))
		}
		if r := do(t, c, "GET", off+"/app.css", "Accept-Encoding: gzip"); r.header.Get("Content-Encoding") != "gzip" {
			t.Errorf("compression off: sidecar not used: %q", r.header.Get("Content-Encoding"))
		}
	})
}

func TestCacheControlRules(t *testing.T) {
	forEachEngine(t, func(t *testing.T, eng engine) {
		tr := newTree(t)
		rules := CacheRules{
			{Pattern: "/assets/*", Value: "public, max-age=31536000, immutable"},
			{Pattern: "*.html", Value: "no-cache"},
		}
		_, url := serveFiles(t, eng, FilesConfig{Root: tr.root, CacheControl: rules})
		c := client(t)
		for path, want := range map[string]string{
			"/assets/app.1234.js": "public, max-age=31536000, immutable",
			"/dir/index.html":     "no-cache",
			"/small.txt":          "",
		} {
			if got := do(t, c, "GET", url+path).header.Get("Cache-Control"); got != want {
				t.Errorf("%s: Cache-Control %q, want %q", path, got, want)
			}
		}
		r := do(t, c, "GET", url+"/assets/app.1234.js")
		if got := do(t, c, "GET", url+"/assets/app.1234.js", "If-None-Match: "+r.header.Get("ETag")); got.header.Get("Cache-Control") == "" {
			t.Error("304 without Cache-Control")
		}
	})
}

func TestDirectories(t *testing.T) {
	forEachEngine(t, func(t *testing.T, eng engine) {
		tr := newTree(t)
		_, url := serveFiles(t, eng, FilesConfig{Root: tr.root})
		c := client(t)
		if r := do(t, c, "GET", url+"/dir?x=1"); r.status != 301 || r.header.Get("Location") != "/dir/?x=1" {
			t.Fatalf("/dir: %d Location %q", r.status, r.header.Get("Location"))
		}
		if r := do(t, c, "GET", url+"/dir/"); r.status != 200 || string(r.body) != "<h1>dir index</h1>\n" {
			t.Fatalf("/dir/: %d %q", r.status, r.body)
		}
		if r := do(t, c, "GET", url+"/"); r.status != 200 || string(r.body) != "<h1>root index</h1>\n" {
			t.Fatalf("/: %d %q", r.status, r.body)
		}
		if r := do(t, c, "GET", url+"/dir/index.html"); r.status != 200 {
			t.Fatalf("/dir/index.html: %d", r.status)
		}
		wantProblem(t, do(t, c, "GET", url+"/list/"), 403)
		wantProblem(t, do(t, c, "GET", url+"/small.txt/"), 404)
		wantProblem(t, do(t, c, "GET", url+"/missing.txt"), 404)

		_, listing := serveFiles(t, eng, FilesConfig{Root: tr.root, Listing: true})
		r := do(t, c, "GET", listing+"/list/")
		body := string(r.body)
		if r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "text/html") {
			t.Fatalf("listing: %d %q", r.status, r.header.Get("Content-Type"))
		}
		for _, want := range []string{`href="sub/"`, `href="b.txt"`, `href="a%20%3C&amp;%3E%22%3F%23.txt"`, "a &lt;&amp;&gt;&#34;?#.txt", `href="../"`} {
			if !strings.Contains(body, want) {
				t.Errorf("listing lacks %s:\n%s", want, body)
			}
		}
		if strings.Contains(body, ".hidden") || strings.Index(body, "sub/") > strings.Index(body, "b.txt") {
			t.Errorf("listing shows dotfiles or puts files before directories:\n%s", body)
		}
		odd := do(t, c, "GET", listing+"/list/a%20%3C&%3E%22%3F%23.txt")
		if odd.status != 200 || string(odd.body) != "odd name\n" {
			t.Errorf("link from the listing: %d %q", odd.status, odd.body)
		}
	})
}

func TestSPAFallback(t *testing.T) {
	forEachEngine(t, func(t *testing.T, eng engine) {
		tr := newTree(t)
		_, url := serveFiles(t, eng, FilesConfig{Root: tr.root, SPA: true})
		c := client(t)
		nav := "Accept: text/html,application/xhtml+xml,*/*;q=0.8"
		if r := do(t, c, "GET", url+"/app/settings/profile", nav); r.status != 200 || string(r.body) != "<h1>root index</h1>\n" {
			t.Fatalf("navigation: %d %q", r.status, r.body)
		}
		// The excluded prefixes answer 404: to a navigation, as a page.
		for _, path := range []string{"/api/users/42", "/api"} {
			if r := do(t, c, "GET", url+path, nav); r.status != 404 || !strings.Contains(string(r.body), "<h1>404 Not Found</h1>") {
				t.Errorf("%s: %d %q", path, r.status, r.body)
			}
		}
		wantProblem(t, do(t, c, "GET", url+"/app/missing.js", "Accept: */*"), 404)
		wantProblem(t, do(t, c, "GET", url+"/app/data", "Accept: application/json"), 404)
		if r := do(t, c, "GET", url+"/.secret", nav); strings.Contains(string(r.body), "TOP-SECRET") {
			t.Fatal("SPA fallback exposed a dotfile")
		}
	})
}

func TestHostilePaths(t *testing.T) {
	forEachEngine(t, func(t *testing.T, eng engine) {
		tr := newTree(t)
		_, url := serveFiles(t, eng, FilesConfig{Root: tr.root, Listing: true})
		targets := []string{
			"/../outside.txt", "/..%2foutside.txt", "/%2e%2e/outside.txt", "/%2e%2e%2foutside.txt",
			"/%2E%2E/outside.txt", "/dir/../../outside.txt", "/dir/%2e%2e/%2e%2e/outside.txt",
			"/..%5coutside.txt", "/%5c..%5coutside.txt", "/..\\outside.txt", "/dir\\..\\..\\outside.txt",
			"/small.txt%00.png", "/%00", "/dir/%00/../../outside.txt",
			"/link-out", "/link-rel-out", "/dirlink-out/outside.txt", "/dirlink-out/",
			"/.secret", "/%2esecret", "/.git/config", "/.git/", "/dir/./index.html", "/./small.txt",
			"//outside.txt", "/dir//index.html", "/%2f%2foutside.txt", "/%252e%252e/outside.txt",
			"/.well-known/../.secret", "/%c0%ae%c0%ae/outside.txt", "/..;/outside.txt",
			"/dir%2findex.html", "/dir%2Findex.html", "/list%2fsub/c.txt", "/%2fsmall.txt",
		}
		for _, target := range targets {
			status, body := rawRequest(t, url, target)
			if status != 400 && status != 404 && status != 403 {
				t.Errorf("%s: status %d", target, status)
			}
			if strings.Contains(body, "TOP-SECRET") {
				t.Errorf("%s: leaked %q", target, body)
			}
		}
		// An encoded slash would be a second URL of the file: refused.
		for _, target := range []string{"/dir%2findex.html", "/list%2Fsub/c.txt"} {
			if status, _ := rawRequest(t, url, target); status != 400 {
				t.Errorf("%s: status %d, want 400", target, status)
			}
		}
		// Decoded exactly once: %252e%252e is the file literally named %2e%2e.
		if status, body := rawRequest(t, url, "/%252e%252e"); status != 200 || body != "literal percent name\n" {
			t.Errorf("double-encoded name: %d %q", status, body)
		}
		if status, _ := rawRequest(t, url, "/.well-known/security.txt"); status != 200 {
			t.Errorf(".well-known: %d", status)
		}
		if status, body := rawRequest(t, url, "/link-in.txt"); status != 200 || body != string(tr.small) {
			t.Errorf("symlink inside the root: %d", status)
		}
	})
}

func TestMethodNotAllowed(t *testing.T) {
	forEachEngine(t, func(t *testing.T, eng engine) {
		tr := newTree(t)
		_, url := serveFiles(t, eng, FilesConfig{Root: tr.root})
		c := client(t)
		for _, m := range []string{"POST", "PUT", "DELETE", "OPTIONS"} {
			r := do(t, c, m, url+"/small.txt")
			wantProblem(t, r, 405)
			if r.header.Get("Allow") != "GET, HEAD" {
				t.Errorf("%s: Allow %q", m, r.header.Get("Allow"))
			}
		}
	})
}

func TestCacheNoticesChanges(t *testing.T) {
	forEachEngine(t, func(t *testing.T, eng engine) {
		tr := newTree(t)
		reg := prometheus.NewRegistry()
		_, url := serveFiles(t, eng, FilesConfig{Root: tr.root, CacheCheck: -1}, WithRegistry(reg))
		c := client(t)
		p := filepath.Join(tr.root, "tiny.txt")
		first := do(t, c, "GET", url+"/tiny.txt")
		do(t, c, "GET", url+"/tiny.txt")
		if hits := metricValue(t, reg, "threetier_web_file_cache_hits_total"); hits < 1 {
			t.Fatalf("second request did not hit the cache (hits %v)", hits)
		}
		// Same size, new content and a new mtime.
		if err := os.WriteFile(p, []byte("TINY\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		_ = os.Chtimes(p, time.Now().Add(time.Hour), time.Now().Add(time.Hour))
		r := do(t, c, "GET", url+"/tiny.txt")
		if string(r.body) != "TINY\n" || r.header.Get("ETag") == first.header.Get("ETag") {
			t.Fatalf("after the change: %q etag %q (was %q)", r.body, r.header.Get("ETag"), first.header.Get("ETag"))
		}
		// Replaced by rename with the same size and mtime: the inode tells.
		st, _ := os.Stat(p)
		tmp := filepath.Join(tr.root, "tiny.tmp")
		if err := os.WriteFile(tmp, []byte("tiny\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		_ = os.Chtimes(tmp, st.ModTime(), st.ModTime())
		if err := os.Rename(tmp, p); err != nil {
			t.Fatal(err)
		}
		if r := do(t, c, "GET", url+"/tiny.txt"); string(r.body) != "tiny\n" {
			t.Fatalf("after rename: %q", r.body)
		}
		// A sidecar that appears is used.
		if err := os.WriteFile(filepath.Join(tr.root, "small.txt.gz"), gzipBytes(tr.small), 0o644); err != nil {
			t.Fatal(err)
		}
		if r := do(t, c, "GET", url+"/small.txt", "Accept-Encoding: gzip"); !bytes.Equal(r.body, gzipBytes(tr.small)) {
			t.Fatal("new sidecar not served")
		}
		// A deleted file is gone.
		_ = os.Remove(p)
		wantProblem(t, do(t, c, "GET", url+"/tiny.txt"), 404)
	})
}

func TestCacheCheckInterval(t *testing.T) {
	forEachEngine(t, func(t *testing.T, eng engine) {
		tr := newTree(t)
		_, url := serveFiles(t, eng, FilesConfig{Root: tr.root, CacheCheck: 50 * time.Millisecond})
		c := client(t)
		do(t, c, "GET", url+"/tiny.txt")
		if err := os.WriteFile(filepath.Join(tr.root, "tiny.txt"), []byte("changed, longer\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		wait.For(t, 20*time.Second, "the change to be noticed", func() bool {
			return string(do(t, c, "GET", url+"/tiny.txt").body) == "changed, longer\n"
		})
	})
}

func TestCacheIsBounded(t *testing.T) {
	forEachEngine(t, func(t *testing.T, eng engine) {
		dir := t.TempDir()
		for i := range 50 {
			if err := os.WriteFile(filepath.Join(dir, strconv.Itoa(i)+".bin"), bytes.Repeat([]byte{byte(i)}, 4000), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		f, url := serveFiles(t, eng, FilesConfig{Root: dir, CacheMaxBytes: 40000})
		c := client(t)
		for round := range 3 {
			for i := range 50 {
				r := do(t, c, "GET", url+"/"+strconv.Itoa(i)+".bin")
				if r.status != 200 || len(r.body) != 4000 || r.body[0] != byte(i) {
					t.Fatalf("round %d file %d: %d", round, i, r.status)
				}
			}
		}
		n, used := f.cache.stats()
		if used > 40000 || n == 0 {
			t.Fatalf("cache holds %d entries, %d bytes; bound 40000", n, used)
		}
	})
}

// metricValue sums the samples of a counter or gauge in reg.
func metricValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	found := false
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		found = true
		for _, m := range mf.GetMetric() {
			sum += m.GetCounter().GetValue() + m.GetGauge().GetValue() + float64(m.GetHistogram().GetSampleCount())
		}
	}
	if !found {
		t.Fatalf("no metric %s", name)
	}
	return sum
}

// A link out of the root (or any odd lookup failure) is logged at warn
// once, not once per request: clients could otherwise flood the logs.
func TestLookupFailuresDoNotFloodTheLog(t *testing.T) {
	forEachEngine(t, func(t *testing.T, eng engine) {
		tr := newTree(t)
		var logs syncbuf.Buffer
		log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
		_, base := serveFiles(t, eng, FilesConfig{Root: tr.root}, WithLogger(log))
		c := client(t)
		for i := range 20 {
			for _, p := range []string{"/link-out", "/dirlink-out/outside.txt", fmt.Sprintf("/dirlink-out/x%d", i)} {
				if r := do(t, c, "GET", base+p); r.status != 404 {
					t.Fatalf("%s: %d", p, r.status)
				}
			}
		}
		if n := strings.Count(logs.String(), "level=WARN"); n != 1 {
			t.Errorf("%d warnings for 60 refused links, want 1:\n%s", n, logs.String())
		}
	})
}

// sizeLiarFS reports every file 100 bytes longer than its contents, as a
// file being rewritten in place between the stat and the read does.
type sizeLiarFS struct{ fstest.MapFS }

func (l sizeLiarFS) Stat(name string) (fs.FileInfo, error) {
	fi, err := l.MapFS.Stat(name)
	if err != nil || fi.IsDir() {
		return fi, err
	}
	return longerInfo{fi}, nil
}

type longerInfo struct{ fs.FileInfo }

func (l longerInfo) Size() int64 { return l.FileInfo.Size() + 100 }

// The length sent is the length of the bytes sent, whatever the stat said
// before the file was read.
func TestFileChangedWhileLoading(t *testing.T) {
	forEachEngine(t, func(t *testing.T, eng engine) {
		data := []byte("0123456789")
		_, url := serveFiles(t, eng, FilesConfig{}, WithFS(sizeLiarFS{fstest.MapFS{"grow.txt": {Data: data}}}))
		c := client(t)
		if r := do(t, c, "GET", url+"/grow.txt"); r.status != 200 || !bytes.Equal(r.body, data) || r.header.Get("Content-Length") != "10" {
			t.Errorf("whole: %d %q length %q", r.status, r.body, r.header.Get("Content-Length"))
		}
		if r := do(t, c, "GET", url+"/grow.txt", "Range: bytes=5-50"); r.status != 206 || string(r.body) != "56789" || r.header.Get("Content-Range") != "bytes 5-9/10" {
			t.Errorf("range: %d %q %q", r.status, r.body, r.header.Get("Content-Range"))
		}
	})
}

func TestCompressibleSkipsCompressedData(t *testing.T) {
	for _, tc := range []struct {
		name, ctype string
		want        bool
	}{
		{"a.css", "text/css; charset=utf-8", true},
		{"a.svg", "image/svg+xml", true},
		{"a.svgz", "image/svg+xml", false},
		{"A.SVGZ", "image/svg+xml", false},
		{"a.svgz", "image/svg+xml-compressed", false},
		{"a.css.gz", "application/gzip", false},
		{"a.woff2", "font/woff2", false},
		{"a.png", "image/png", false},
		{"a.json", "application/json", true},
	} {
		if got := compressible(tc.name, tc.ctype); got != tc.want {
			t.Errorf("compressible(%q, %q) = %v, want %v", tc.name, tc.ctype, got, tc.want)
		}
	}
}

// gateFS holds the first Open of big.bin until gate closes and counts the
// Opens of big.bin.
type gateFS struct {
	fstest.MapFS
	gate  chan struct{}
	mu    sync.Mutex
	opens int
}

func (g *gateFS) Open(name string) (fs.File, error) {
	if name == "big.bin" {
		g.mu.Lock()
		g.opens++
		first := g.opens == 1
		g.mu.Unlock()
		if first {
			<-g.gate
		}
	}
	return g.MapFS.Open(name)
}

func (g *gateFS) count() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.opens
}

// Requests for a file being loaded wait for that load instead of reading
// (and hashing) the whole file once each.
func TestConcurrentMissesLoadOnce(t *testing.T) {
	forEachEngine(t, func(t *testing.T, eng engine) {
		data := bytes.Repeat([]byte("0123456789abcdef"), 256)
		g := &gateFS{MapFS: fstest.MapFS{"big.bin": {Data: data}}, gate: make(chan struct{})}
		_, url := serveFiles(t, eng, FilesConfig{CacheFileMax: 16}, WithFS(g))
		c := client(t)
		const n = 8
		bodies := make(chan []byte, n)
		for range n {
			go func() {
				resp, err := c.Get(url + "/big.bin")
				if err != nil {
					bodies <- nil
					return
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				bodies <- b
			}()
		}
		wait.For(t, 20*time.Second, "the first load", func() bool { return g.count() >= 1 })
		// Give loads that do not wait for the first one time to show; a
		// correct handler never gets past one, whatever the timing.
		deadline := time.Now().Add(time.Second)
		for g.count() == 1 && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		during := g.count()
		close(g.gate)
		for range n {
			if b := <-bodies; !bytes.Equal(b, data) {
				t.Fatalf("body of %d bytes, want %d", len(b), len(data))
			}
		}
		if during != 1 {
			t.Errorf("%d opens while the first load was running, want 1", during)
		}
	})
}

// An entity-tag list may come in several header lines (RFC 9110 §5.3).
func TestETagListOverSeveralLines(t *testing.T) {
	forEachEngine(t, func(t *testing.T, eng engine) {
		tr := newTree(t)
		_, url := serveFiles(t, eng, FilesConfig{Root: tr.root})
		c := client(t)
		etag := do(t, c, "GET", url+"/tiny.txt").header.Get("ETag")
		for _, tc := range []struct {
			header string
			want   int
		}{{"If-None-Match", 304}, {"If-Match", 200}} {
			req, _ := http.NewRequest("GET", url+"/tiny.txt", nil)
			req.Header.Add(tc.header, `"other"`)
			req.Header.Add(tc.header, etag)
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Errorf("%s in two lines, the second matching: %d, want %d", tc.header, resp.StatusCode, tc.want)
			}
		}
	})
}

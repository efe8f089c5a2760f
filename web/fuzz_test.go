package web

import (
	"io/fs"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/valyala/fasthttp"
)

// FuzzCleanPath: whatever the request path, an accepted name is a valid
// fs.FS name with no way up, no NUL and no backslash.
func FuzzCleanPath(f *testing.F) {
	for _, s := range []string{"/", "/a/b.txt", "/../x", "/a/../b", "/a//b", "/a\\b", "/\x00", "/.", "/a/./b", "/static/x", "//", "/%2e%2e"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		name, _, err := cleanPath(p, "/")
		if err != nil {
			return
		}
		if !fs.ValidPath(fsName(name)) || strings.ContainsAny(name, "\\\x00") {
			t.Fatalf("%q accepted as %q", p, name)
		}
		for elem := range strings.SplitSeq(name, "/") {
			if elem == ".." || elem == "." {
				t.Fatalf("%q accepted as %q", p, name)
			}
		}
	})
}

// FuzzParseRange: accepted ranges lie inside the file, are not empty, and
// never add up to more than the file.
func FuzzParseRange(f *testing.F) {
	for _, s := range []string{"bytes=0-9", "bytes=-5", "bytes=5-", "bytes=0-0,2-3", "bytes=9999-", "bytes=a-b", "bytes=--1", "bytes=1-0", "bytes= 1 - 2 ,, 3-4"} {
		f.Add(s, int64(100))
	}
	f.Fuzz(func(t *testing.T, h string, size int64) {
		if size < 0 {
			size = -size
		}
		ranges, err := parseRange(h, size)
		if err != nil {
			return
		}
		var total int64
		for _, r := range ranges {
			if r.start < 0 || r.end > size || r.start >= r.end {
				t.Fatalf("%q size %d: bad range %+v", h, size, r)
			}
			total += r.length()
		}
		if total > size {
			t.Fatalf("%q size %d: ranges add up to %d", h, size, total)
		}
	})
}

// FuzzServePath: no request target reaches a hidden file, answers 5xx,
// or gets past an encoded slash.
func FuzzServePath(f *testing.F) {
	fsys := fstest.MapFS{
		"index.html":      {Data: []byte("index")},
		"a/b.txt":         {Data: []byte("b")},
		".secret":         {Data: []byte("SECRET")},
		"a/.env":          {Data: []byte("SECRET")},
		".git/HEAD":       {Data: []byte("SECRET")},
		"a/index.html":    {Data: []byte("a index")},
		"%2e%2e/evil.txt": {Data: []byte("literal")},
	}
	h, err := NewFiles(FilesConfig{Listing: true, SPA: true}, WithFS(fsys))
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{"/", "/a/b.txt", "/.secret", "/a/%2eenv", "/%2egit/HEAD", "/a/../.secret", "/a%2f..%2f.secret", "/a", "/a/", "/a%2fb.txt", "/a%2Fb.txt", "/api%2Fx", "/%2F"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, target string) {
		if !strings.HasPrefix(target, "/") {
			target = "/" + target
		}
		req, err := http.NewRequest("GET", "http://x"+target, nil)
		if err != nil {
			return
		}
		req.Header.Set("Accept", "text/html")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if strings.Contains(w.Body.String(), "SECRET") {
			t.Fatalf("%q leaked a hidden file", target)
		}
		if w.Code >= 500 {
			t.Fatalf("%q: %d", target, w.Code)
		}
		if hasEncodedSlash(req.URL.RawPath) && w.Code != http.StatusBadRequest {
			t.Fatalf("%q with an encoded slash: %d", target, w.Code)
		}

		// The same target on the fast engine.
		var ctx fasthttp.RequestCtx
		ctx.Request.SetRequestURI(target)
		ctx.Request.Header.Set("Accept", "text/html")
		h.ServeFast(&ctx)
		code := ctx.Response.StatusCode()
		if strings.Contains(string(ctx.Response.Body()), "SECRET") {
			t.Fatalf("%q leaked a hidden file on the fast engine", target)
		}
		if code >= 500 {
			t.Fatalf("%q on the fast engine: %d", target, code)
		}
		if hasEncodedSlash(string(ctx.URI().PathOriginal())) && code != http.StatusBadRequest {
			t.Fatalf("%q with an encoded slash on the fast engine: %d", target, code)
		}
	})
}

// FuzzNegotiate: the chosen coding is always one on offer, or identity.
func FuzzNegotiate(f *testing.F) {
	for _, s := range []string{"gzip, br", "br;q=0", "*;q=0.5, gzip;q=1", "zstd;q=abc", ";;;,,,", "gzip;q=1.5"} {
		f.Add(s, true, false, true)
	}
	f.Fuzz(func(t *testing.T, ae string, br, zst, gz bool) {
		avail := [numEncodings]bool{encBrotli: br, encZstd: zst, encGzip: gz}
		if e := negotiate(ae, avail); e != identity && !avail[e] {
			t.Fatalf("%q chose %s, not on offer", ae, e.token())
		}
	})
}

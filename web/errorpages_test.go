package web

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"
)

// browser is the Accept header of a browser's navigation.
const browser = "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"

// A browser gets a page for a problem, on either engine; API clients and
// curl keep problem+json.
func TestProblemsArePagesForBrowsers(t *testing.T) {
	forEachEngine(t, func(t *testing.T, eng engine) {
		tr := newTree(t)
		s := startServer(t, eng, Config{Files: FilesConfig{Root: tr.root}})
		s.Echo().GET("/api/teapot", func(c echo.Context) error { return echo.NewHTTPError(http.StatusTeapot, "<short> & stout") })
		c := client(t)
		url := "http://" + s.Addr()

		for _, path := range []string{"/missing-<b>.txt", "/api/teapot"} {
			r := do(t, c, "GET", url+path, browser)
			if r.status < 400 || r.header.Get("Content-Type") != "text/html; charset=utf-8" {
				t.Fatalf("%s: %d %q", path, r.status, r.header.Get("Content-Type"))
			}
			if bytes.Contains(r.body, []byte("<b>")) || bytes.Contains(r.body, []byte("<short>")) || !bytes.Contains(r.body, []byte(r.header.Get("X-Request-Id"))) {
				t.Errorf("%s: page unescaped or without its request ID:\n%s", path, r.body)
			}
			for _, accept := range []string{"Accept: */*", "Accept: application/json"} {
				wantProblem(t, do(t, c, "GET", url+path, accept), r.status)
			}
		}
	})
}

// FilesConfig.ErrorPages: a browser gets the page for the status, or for
// its class, with that status; other clients, and statuses without a
// page, get the problem.
func TestErrorPages(t *testing.T) {
	forEachEngine(t, func(t *testing.T, eng engine) {
		tr := newTree(t)
		pages := filepath.Join(tr.root, ".errors")
		notFound := []byte("<h1>custom: not here</h1>\n")
		clientErr := bytes.Repeat([]byte("<p>custom: your request was not right</p>\n"), 1000) // beyond CacheFileMax: sent from disk
		for name, body := range map[string][]byte{"404.html": notFound, "4xx.html": clientErr} {
			if err := os.MkdirAll(pages, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(pages, name), body, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		s := startServer(t, eng, Config{Files: FilesConfig{Root: tr.root, ErrorPages: "/.errors/"}})
		s.Echo().GET("/api/boom", func(c echo.Context) error { return echo.NewHTTPError(http.StatusBadGateway) })
		c := client(t)
		url := "http://" + s.Addr()

		r := do(t, c, "GET", url+"/no-such-file", browser)
		if r.status != 404 || !bytes.Equal(r.body, notFound) || !strings.HasPrefix(r.header.Get("Content-Type"), "text/html") || r.header.Get("Cache-Control") != "no-store" {
			t.Errorf("404 page: %d %v %q", r.status, r.header, r.body)
		}
		if r := do(t, c, "HEAD", url+"/no-such-file", browser); r.status != 404 || len(r.body) != 0 || r.header.Get("Content-Length") != "26" {
			t.Errorf("HEAD: %d %v", r.status, r.header)
		}
		// 405 has no page of its own: the class's, from disk, with the Allow header.
		if r := do(t, c, "POST", url+"/small.txt", browser); r.status != 405 || !bytes.Equal(r.body, clientErr) || r.header.Get("Allow") == "" {
			t.Errorf("405 page: %d %v %d bytes", r.status, r.header, len(r.body))
		}
		// A range past the end: the page, without the file's validators.
		if r := do(t, c, "GET", url+"/small.txt", browser, "Range: bytes=99999-"); r.status != 416 || !bytes.Equal(r.body, clientErr) || r.header.Get("Etag") != "" {
			t.Errorf("416 page: %d %v", r.status, r.header)
		}
		// No 5xx page: the built-in one. API clients get problem+json.
		if r := do(t, c, "GET", url+"/api/boom", browser); r.status != 502 || !bytes.Contains(r.body, []byte("502 Bad Gateway")) {
			t.Errorf("502 without a page: %d %q", r.status, r.body)
		}
		wantProblem(t, do(t, c, "GET", url+"/no-such-file", "Accept: application/json"), 404)
		// The hidden directory is not served at its own URL.
		if r := do(t, c, "GET", url+"/.errors/404.html"); r.status != 404 {
			t.Errorf("the pages are served: %d", r.status)
		}
	})
}

func TestErrorPagesConfig(t *testing.T) {
	for dir, ok := range map[string]bool{"errors": true, "/errors/": true, "/": true, ".": true, "a/b": true, "../up": false, "a//b": false, "a/../b": false} {
		err := FilesConfig{ErrorPages: dir}.Validate()
		if (err == nil) != ok {
			t.Errorf("ErrorPages %q: %v", dir, err)
		}
	}
}

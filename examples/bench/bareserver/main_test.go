package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestServesFilesWithValidatorsAnd304(t *testing.T) {
	dir := t.TempDir()
	small, big := "tiny\n", strings.Repeat("x", 5000)
	for name, body := range map[string]string{"tiny.txt": small, "big.bin": big} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	files, err := load(dir)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(handler(files))
	defer srv.Close()

	get := func(path string, header ...string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, string(body)
	}
	for path, want := range map[string]string{"/tiny.txt": small, "/big.bin": big} {
		resp, body := get(path)
		etag := resp.Header.Get("ETag")
		if resp.StatusCode != 200 || body != want || etag == "" || resp.ContentLength != int64(len(want)) ||
			resp.Header.Get("X-Request-Id") == "" || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Fatalf("%s: %d, %d bytes, length %d, headers %v", path, resp.StatusCode, len(body), resp.ContentLength, resp.Header)
		}
		if resp, body := get(path, "If-None-Match", etag); resp.StatusCode != http.StatusNotModified || body != "" {
			t.Fatalf("%s revalidation: %d with %d bytes", path, resp.StatusCode, len(body))
		}
	}
	if resp, _ := get("/missing"); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("missing: %d", resp.StatusCode)
	}
}

package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
)

func TestServesFilesWithTheTiersHeaders(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "a.txt"), []byte("a\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(withHeaders(http.FileServer(http.Dir(dir))))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/a.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(body) != "a\n" || resp.Header.Get("X-Request-Id") == "" ||
		resp.Header.Get("X-Frame-Options") != "SAMEORIGIN" || resp.Header.Get("Last-Modified") == "" {
		t.Fatalf("%d %q %v", resp.StatusCode, body, resp.Header)
	}
}

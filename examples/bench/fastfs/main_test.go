package main

import (
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestServesFilesRangesAnd304(t *testing.T) {
	dir := t.TempDir()
	big := strings.Repeat("x", 100<<10)
	if err := os.WriteFile(filepath.Join(dir, "big.bin"), []byte(big), 0o644); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := newServer(dir)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	defer func() {
		if err := srv.Shutdown(); err != nil {
			t.Error(err)
		}
		if err := <-served; err != nil {
			t.Error(err)
		}
	}()
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	get := func(header ...string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", "http://"+ln.Addr().String()+"/big.bin", nil)
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, string(body)
	}
	resp, body := get()
	lastMod := resp.Header.Get("Last-Modified")
	if resp.StatusCode != http.StatusOK || body != big || lastMod == "" {
		t.Fatalf("whole: %d, %d bytes, Last-Modified %q", resp.StatusCode, len(body), lastMod)
	}
	if resp, body := get("Range", "bytes=10-19"); resp.StatusCode != http.StatusPartialContent || body != big[10:20] {
		t.Fatalf("range: %d %q", resp.StatusCode, body)
	}
	if resp, body := get("If-Modified-Since", lastMod); resp.StatusCode != http.StatusNotModified || body != "" {
		t.Fatalf("revalidation: %d with %d bytes", resp.StatusCode, len(body))
	}
}

package web

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"testing"
)

// discardWriter is a reusable ResponseWriter, so that the benchmarks
// measure the handler, not the recorder.
type discardWriter struct{ h http.Header }

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) WriteHeader(int)             {}
func (w *discardWriter) Write(b []byte) (int, error) { return len(b), nil }

func benchRoot(b *testing.B) string {
	b.Helper()
	dir := b.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "1k.bin"), bytes.Repeat([]byte{7}, 1024), 0o644); err != nil {
		b.Fatal(err)
	}
	return dir
}

func benchServe(b *testing.B, h http.Handler, header ...string) {
	req, _ := http.NewRequest("GET", "http://x/1k.bin", nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	w := &discardWriter{h: http.Header{}}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		clear(w.h)
		h.ServeHTTP(w, req)
	}
}

// BenchmarkFilesSmall: a 1 KiB file from the cache, the handler alone.
func BenchmarkFilesSmall(b *testing.B) {
	f, err := NewFiles(FilesConfig{Root: benchRoot(b)})
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	benchServe(b, f)
}

// BenchmarkFiles304: a revalidation that matches.
func BenchmarkFiles304(b *testing.B) {
	f, err := NewFiles(FilesConfig{Root: benchRoot(b)})
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	e, err := f.lookup("1k.bin")
	if err != nil {
		b.Fatal(err)
	}
	benchServe(b, f, "If-None-Match", e.etag)
}

// BenchmarkServerSmall: the same file through the whole web tier
// (Echo, request ID, metrics, security headers).
func BenchmarkServerSmall(b *testing.B) {
	s, err := New(Config{Files: FilesConfig{Root: benchRoot(b)}})
	if err != nil {
		b.Fatal(err)
	}
	defer s.files.Close()
	benchServe(b, s.Echo())
}

// BenchmarkFilesSmallCacheRules: the 1 KiB file with Cache-Control rules
// to match, as a real site has.
func BenchmarkFilesSmallCacheRules(b *testing.B) {
	f, err := NewFiles(FilesConfig{Root: benchRoot(b), CacheControl: CacheRules{
		{Pattern: "/assets/*", Value: "public, max-age=31536000, immutable"},
		{Pattern: "*.html", Value: "no-cache"},
		{Pattern: "*.bin", Value: "public, max-age=3600"},
	}})
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	benchServe(b, f)
}

// BenchmarkServer304: a matching revalidation through the whole web tier.
func BenchmarkServer304(b *testing.B) {
	s, err := New(Config{Files: FilesConfig{Root: benchRoot(b)}})
	if err != nil {
		b.Fatal(err)
	}
	defer s.files.Close()
	e, err := s.files.lookup("1k.bin")
	if err != nil {
		b.Fatal(err)
	}
	benchServe(b, s.Echo(), "If-None-Match", e.etag)
}

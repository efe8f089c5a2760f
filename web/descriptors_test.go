package web

import (
	"bytes"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// openDescriptors counts the process's open descriptors.
func openDescriptors(t *testing.T) int {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd:", err)
	}
	return len(fds)
}

// A large file sent from a kept descriptor is served fresh once the next
// check sees it replaced (by rename, or rewritten in place), and every
// descriptor kept is closed with the Files.
func TestReplacedFileServedFreshThroughDescriptors(t *testing.T) {
	tr := newTree(t)
	before := openDescriptors(t)
	const check = 20 * time.Millisecond
	f, err := NewFiles(FilesConfig{Root: tr.root, CacheCheck: check})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(f)
	c := client(t)
	path := filepath.Join(tr.root, "big.bin")
	old := do(t, c, "GET", srv.URL+"/big.bin")
	if !bytes.Equal(old.body, tr.big) {
		t.Fatal("first answer differs from the file")
	}
	versions := []struct {
		how  string
		body []byte
	}{
		{"renamed over", bytes.Repeat([]byte("renamed "), 40000)},
		{"rewritten in place", bytes.Repeat([]byte("in place "), 50000)},
	}
	for _, v := range versions {
		if v.how == "renamed over" {
			tmp := path + ".tmp"
			if err := os.WriteFile(tmp, v.body, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(tmp, path); err != nil {
				t.Fatal(err)
			}
		} else if err := os.WriteFile(path, v.body, 0o644); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * check)
		for _, rng := range []string{"", "bytes=0-7"} {
			var hs []string
			want := v.body
			if rng != "" {
				hs, want = []string{"Range: " + rng}, v.body[:8]
			}
			for range 3 { // the descriptor opened for the new version, then kept
				r := do(t, c, "GET", srv.URL+"/big.bin", hs...)
				if !bytes.Equal(r.body, want) || r.header.Get("ETag") == old.header.Get("ETag") {
					t.Fatalf("%s, range %q: %d, %d bytes, ETag %q (old %q)", v.how, rng, r.status, len(r.body), r.header.Get("ETag"), old.header.Get("ETag"))
				}
			}
		}
		old = do(t, c, "GET", srv.URL+"/big.bin")
	}
	srv.Close()
	c.CloseIdleConnections()
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if after := openDescriptors(t); after != before {
		t.Errorf("%d descriptors open before, %d after", before, after)
	}
}

// Descriptors kept open are bounded by OpenFilesMax across files.
func TestOpenFilesMaxBoundsKeptDescriptors(t *testing.T) {
	forEachEngine(t, func(t *testing.T, eng engine) {
		tr := newTree(t)
		for _, name := range []string{"b1.bin", "b2.bin", "b3.bin"} {
			if err := os.WriteFile(filepath.Join(tr.root, name), tr.big, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		f, url := serveFiles(t, eng, FilesConfig{Root: tr.root, OpenFilesMax: 2})
		c := client(t)
		for _, name := range []string{"/b1.bin", "/b2.bin", "/b3.bin", "/big.bin"} {
			if r := do(t, c, "GET", url+name); !bytes.Equal(r.body, tr.big) {
				t.Fatalf("%s: %d, %d bytes", name, r.status, len(r.body))
			}
		}
		if n := f.openFiles.held.Load(); n != 2 {
			t.Errorf("%d descriptors kept, want 2", n)
		}
	})
}

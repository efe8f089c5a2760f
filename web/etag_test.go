package web

import (
	"io/fs"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/threetier/threetier/internal/wait"
)

// Two servers over the same directory give every file the same strong
// ETag, large files included, whether hashed when first requested or in
// the background; until a background hash is done, a file goes out at
// once with Last-Modified only.
func TestServersAgreeOnETags(t *testing.T) {
	forEachEngine(t, func(t *testing.T, eng engine) {
		tr := newTree(t)
		_, first := serveFiles(t, eng, FilesConfig{Root: tr.root})
		_, second := serveFiles(t, eng, FilesConfig{Root: tr.root, HashFileMax: -1})
		c := client(t)
		var names []string
		err := filepath.WalkDir(tr.root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || d.Type()&fs.ModeSymlink != 0 || strings.Contains(p, "/.") {
				return err
			}
			rel, _ := filepath.Rel(tr.root, p)
			names = append(names, "/"+filepath.ToSlash(rel))
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		big := do(t, c, "GET", second+"/big.bin")
		if big.status != http.StatusOK || len(big.body) != len(tr.big) || big.header.Get("Last-Modified") == "" || big.header.Get("ETag") != "" {
			t.Fatalf("big.bin before its hash: %d, %d bytes, Last-Modified %q, ETag %q", big.status, len(big.body), big.header.Get("Last-Modified"), big.header.Get("ETag"))
		}
		for _, name := range names {
			if strings.ContainsAny(name, "<&>\"?#% ") {
				continue // not a plain URL path
			}
			want := do(t, c, "GET", first+name).header.Get("ETag")
			if !strings.HasPrefix(want, `"`) {
				t.Fatalf("%s: ETag %q is not strong", name, want)
			}
			wait.For(t, 10*time.Second, name+"'s ETag on the second server", func() bool {
				return do(t, c, "GET", second+name).header.Get("ETag") == want
			})
		}
	})
}

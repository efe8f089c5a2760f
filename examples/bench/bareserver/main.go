// Command bareserver is the ceiling examples/bench/web.sh measures the web
// tier against: plain net/http, with the web tier's timeouts, answering
// from memory with the headers examples/static sends (validators, the
// security headers, a request ID) and 304 for a matching If-None-Match,
// and nothing else: no routing, no middleware, no metrics, no checks of
// the disk. The gap between it and nginx is net/http's own cost.
//
//	go run ./examples/bench/bareserver -listen 127.0.0.1:8080 -root ./public
//
// Only the files directly in root are served, read once at start.
package main

import (
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/threetier/threetier/tier"
)

type file struct {
	body                       []byte
	ctype, etag, lastMod, size []string
}

func main() {
	listen := flag.String("listen", "127.0.0.1:8080", "address to serve on")
	root := flag.String("root", ".", "directory whose files to serve")
	flag.Parse()
	files, err := load(*root)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bareserver:", err)
		os.Exit(2)
	}
	srv := &http.Server{
		Addr:              *listen,
		Handler:           handler(files),
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    16 << 10,
	}
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintln(os.Stderr, "bareserver:", err)
		os.Exit(1)
	}
}

// load reads the regular files directly in root.
func load(root string) (map[string]*file, error) {
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil, err
	}
	files := make(map[string]*file)
	for _, de := range entries {
		if !de.Type().IsRegular() {
			continue
		}
		path := filepath.Join(root, de.Name())
		body, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		fi, err := os.Stat(path)
		if err != nil {
			return nil, err
		}
		sum := sha256.Sum256(body)
		ctype := mime.TypeByExtension(filepath.Ext(path))
		if ctype == "" {
			ctype = "application/octet-stream"
		}
		files["/"+de.Name()] = &file{
			body:    body,
			ctype:   []string{ctype},
			etag:    []string{`"` + base64.RawURLEncoding.EncodeToString(sum[:16]) + `"`},
			lastMod: []string{fi.ModTime().UTC().Format(http.TimeFormat)},
			size:    []string{strconv.Itoa(len(body))},
		}
	}
	return files, nil
}

var (
	acceptRanges = []string{"bytes"}
	nosniff      = []string{"nosniff"}
	referrer     = []string{"strict-origin-when-cross-origin"}
	frame        = []string{"SAMEORIGIN"}
)

func handler(files map[string]*file) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h["X-Content-Type-Options"] = nosniff
		h["Referrer-Policy"] = referrer
		h["X-Frame-Options"] = frame
		h[tier.HeaderRequestID] = []string{tier.NewRequestID()}
		f := files[r.URL.Path]
		if f == nil {
			http.Error(w, "not found", http.StatusNotFound)
			return
		}
		h["Etag"] = f.etag
		h["Last-Modified"] = f.lastMod
		if inm := r.Header["If-None-Match"]; len(inm) == 1 && inm[0] == f.etag[0] {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		h["Content-Type"] = f.ctype
		h["Accept-Ranges"] = acceptRanges
		if len(f.body) > 2048 {
			h["Content-Length"] = f.size
		}
		_, _ = w.Write(f.body)
	})
}

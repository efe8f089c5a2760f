// Command fileserver is the plain-Go peer examples/bench/web.sh measures
// the web tier against: net/http's FileServer over a directory, with the
// web tier's timeouts and the headers examples/static sends (the security
// headers, a request ID), and nothing else.
//
//	go run ./examples/bench/fileserver -listen 127.0.0.1:8080 -root ./public
package main

import (
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/threetier/threetier/tier"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8080", "address to serve on")
	root := flag.String("root", ".", "directory to serve")
	flag.Parse()
	srv := &http.Server{
		Addr:              *listen,
		Handler:           withHeaders(http.FileServer(http.Dir(*root))),
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    16 << 10,
	}
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintln(os.Stderr, "fileserver:", err)
		os.Exit(1)
	}
}

var (
	nosniff  = []string{"nosniff"}
	referrer = []string{"strict-origin-when-cross-origin"}
	frame    = []string{"SAMEORIGIN"}
)

// withHeaders adds the headers every answer of examples/static carries.
func withHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h["X-Content-Type-Options"] = nosniff
		h["Referrer-Policy"] = referrer
		h["X-Frame-Options"] = frame
		h[tier.HeaderRequestID] = []string{tier.NewRequestID()}
		next.ServeHTTP(w, r)
	})
}

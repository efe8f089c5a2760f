// Command fastfs serves a directory with fasthttp's own file server
// (fasthttp.FS), as the fast engine's limit beside nginx in
// examples/bench/web.sh: what a file server on fasthttp reaches with none
// of the web tier's rules (no ETag, Last-Modified its only validator; no
// compression here).
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/valyala/fasthttp"
)

func main() {
	if err := run(os.Args[1:]); err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "fastfs:", err)
		os.Exit(2)
	}
}

func run(args []string) error {
	fl := flag.NewFlagSet("fastfs", flag.ContinueOnError)
	listen := fl.String("listen", "127.0.0.1:18484", "address to serve on")
	root := fl.String("root", ".", "directory to serve")
	if err := fl.Parse(args); err != nil {
		return err
	}
	srv := newServer(*root)
	return srv.ListenAndServe(*listen)
}

// newServer returns a fasthttp server of the files under root, with
// validators, ranges and a cache of open files as nginx's
// open_file_cache, checked every second.
func newServer(root string) *fasthttp.Server {
	fs := &fasthttp.FS{
		Root:               root,
		AcceptByteRange:    true,
		CacheDuration:      time.Second,
		GenerateIndexPages: false,
	}
	return &fasthttp.Server{
		Handler:               fs.NewRequestHandler(),
		NoDefaultServerHeader: true,
		ReadTimeout:           5 * time.Second,
		IdleTimeout:           120 * time.Second,
	}
}

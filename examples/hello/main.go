// Command hello is the smallest complete threetier service: a static page,
// one JSON endpoint and the embedded database, composed with tier.Run. Copy
// it to start a new service.
//
//	go run ./examples/hello            # serves http://127.0.0.1:8080
//	go run ./examples/hello -listen 127.0.0.1:9000
package main

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"time"

	"github.com/threetier/threetier/tier"
)

//go:embed public
var public embed.FS

func main() {
	ctx, stop := tier.SignalContext(context.Background())
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stderr, nil); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "hello:", err)
		os.Exit(2)
	}
}

// run parses args, builds the service and runs it until ctx ends. ready, when
// not nil, receives the address the service listens on once it serves.
func run(ctx context.Context, args []string, stderr io.Writer, ready chan<- string) error {
	fl := flag.NewFlagSet("hello", flag.ContinueOnError)
	fl.SetOutput(stderr)
	listen := fl.String("listen", "127.0.0.1:8080", "address to serve on")
	if err := fl.Parse(args); err != nil {
		return err
	}
	var logCfg tier.LogConfig
	if err := tier.LoadEnv(tier.EnvPrefix, &logCfg); err != nil {
		return err
	}
	log, err := tier.NewLogger(logCfg, stderr)
	if err != nil {
		return err
	}

	site := tier.NewHTTPServer("web", &http.Server{
		Addr:              *listen,
		Handler:           routes(),
		ReadHeaderTimeout: 5 * time.Second,
	})
	runner := tier.Runner{Logger: log, StopTimeout: 10 * time.Second, Started: func() {
		log.Info("serving", "url", "http://"+site.Addr()+"/")
		if ready != nil {
			ready <- site.Addr()
		}
	}}
	return runner.Run(ctx, site)
}

func routes() http.Handler {
	static, _ := fs.Sub(public, "public")
	mux := http.NewServeMux()
	mux.Handle("GET /", http.FileServerFS(static))
	mux.HandleFunc("GET /api/hello", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"message": "hello, threetier"})
	})
	return mux
}

// Command shop is a small, real shop on the seed's scaled-up topology: two
// front doors in a cluster, two web-tier instances serving the storefront,
// two app-tier instances with the shop's API, and the database.
//
//	go run ./examples/shop                      # the whole topology in one process, on SQLite
//	go run ./examples/shop -role app -listen 127.0.0.1:9101 -db postgres://...
//	go run ./examples/shop -role web -listen 127.0.0.1:9001 -backends http://127.0.0.1:9101,http://127.0.0.1:9102
//	go run ./examples/shop -role balancer -listen 127.0.0.1:8080 -backends http://127.0.0.1:9001,http://127.0.0.1:9002 \
//	    -stats 127.0.0.1:8404 -cluster-listen 127.0.0.1:7946 -peers 127.0.0.1:7947
//
// Every flag also comes from a THREETIER_* variable (see the README); a
// flag given on the command line wins over its variable.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/threetier/threetier/tier"
	"github.com/threetier/threetier/tier/otlp"
)

func main() {
	ctx, stop := tier.SignalContext(context.Background())
	defer stop()
	err := run(ctx, os.Args[1:], os.Stderr, nil)
	switch {
	case err == nil:
	case errors.Is(err, flag.ErrHelp):
		os.Exit(0)
	default:
		fmt.Fprintln(os.Stderr, "shop:", strings.ReplaceAll(err.Error(), "\n", "; "))
		os.Exit(2)
	}
}

// Roles: one process can be the whole shop or one server of it.
const (
	roleAll      = "all"
	roleBalancer = "balancer"
	roleWeb      = "web"
	roleApp      = "app"
)

// listening is what run hands to ready once every tier serves: the bound
// addresses, so that tests (and the log) can use ports picked by ":0".
type listening struct {
	Role    string
	Doors   []string // front doors (balancer role, or both in one process)
	Stats   string   // the balancer's admin listener, or ""
	Admin   string   // a web or app server's admin listener, or ""
	Webs    []string // web-tier instances
	Apps    []string // app-tier instances
	Cluster []string // gossip addresses of the front doors
}

// run parses args, builds the role and serves until ctx ends. ready, when
// not nil, receives the bound addresses once everything serves.
func run(ctx context.Context, args []string, stderr io.Writer, ready chan<- listening) error {
	f, err := parseFlags(args, os.Environ(), stderr)
	if err != nil {
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
	// Every server of the role traces when the OTEL_* variables ask.
	tp, stopTracing, err := otlp.Tracing(ctx, f.environ)
	if err != nil {
		return err
	}
	defer flushSpans(stopTracing, log)
	switch f.role {
	case roleBalancer:
		return runBalancer(ctx, f, log, tp, ready)
	case roleWeb:
		return runWeb(ctx, f, log, tp, ready)
	case roleApp:
		return runApp(ctx, f, log, tp, ready)
	default:
		return runAll(ctx, f, log, tp, ready)
	}
}

// flushSpans sends the spans still queued, giving up after stopTimeout
// when the collector does not answer.
func flushSpans(stopTracing func(context.Context) error, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
	defer cancel()
	if err := stopTracing(ctx); err != nil {
		log.Warn("flushing spans", "err", err)
	}
}

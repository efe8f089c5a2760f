// Command hello is the smallest complete threetier service, all three tiers in
// one process: the data tier on the embedded SQLite file (or PostgreSQL when
// THREETIER_DATA_DSN is set), two app-tier instances with a JSON API, and the
// web tier serving the page and forwarding /api/ to the app instances through
// a client-side balancer. Copy it to start a new service.
//
//	go run ./examples/hello            # serves http://127.0.0.1:8080
//	go run ./examples/hello -listen 127.0.0.1:9000 -apps 3
package main

import (
	"context"
	"embed"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"time"

	"github.com/threetier/threetier/app"
	"github.com/threetier/threetier/balancer"
	"github.com/threetier/threetier/data"
	"github.com/threetier/threetier/tier"
	"github.com/threetier/threetier/web"
)

//go:embed public
var public embed.FS

//go:embed migrations
var migrations embed.FS

const stopTimeout = 10 * time.Second

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

// run builds the service and runs it until ctx ends. ready, when not nil,
// receives the web tier's address once every tier serves.
func run(ctx context.Context, args []string, stderr io.Writer, ready chan<- string) error {
	cfg, log, err := configure(ctx, args, stderr)
	if err != nil {
		return err
	}
	defer cfg.stopTracing(context.Background())
	reg := tier.NewRegistry()
	// Start waits for a PostgreSQL that comes up after the service
	// (THREETIER_DATA_START_TIMEOUT), the app instances not ready meanwhile.
	db, err := data.New(cfg.data, data.WithMigrations(sub(migrations, "migrations")), data.WithLogger(log), data.WithRegistry(reg), data.WithTracerProvider(cfg.tracer))
	if err != nil {
		return err
	}
	defer db.Close()
	apps, err := newAPIs(cfg, db, log, reg)
	if err != nil {
		return err
	}
	pool, err := balancer.New(cfg.pool, balancer.WithDiscovery(balancer.Local(apps...)), balancer.WithLogger(log), balancer.WithRegistry(reg), balancer.WithTracerProvider(cfg.tracer))
	if err != nil {
		return err
	}
	site, err := web.New(cfg.web, web.WithFS(sub(public, "public")), web.WithForward(pool, cfg.forward), web.WithLogger(log), web.WithRegistry(reg), web.WithTracerProvider(cfg.tracer))
	if err != nil {
		return err
	}
	runner := tier.Runner{Logger: log, StopTimeout: stopTimeout, Started: announce(log, site, db, len(apps), ready)}
	return runner.Run(ctx, startOrder(db, apps, pool, site)...)
}

// startOrder lists the tiers as Run starts them: the database, the app
// instances on it, the pool over them once they are bound, and the web
// tier in front. Run stops them in reverse.
func startOrder(db *data.DB, apps []*app.Server, pool *balancer.Pool, site *web.Server) []tier.Tier {
	tiers := []tier.Tier{db}
	for _, a := range apps {
		tiers = append(tiers, a)
	}
	return append(tiers, pool, site)
}

// announce logs where the service serves, and hands the address to ready.
func announce(log *slog.Logger, site *web.Server, db *data.DB, apps int, ready chan<- string) func() {
	return func() {
		log.Info("serving", "url", "http://"+site.Addr()+"/", "apps", apps, "database", string(db.Dialect()))
		if ready != nil {
			ready <- site.Addr()
		}
	}
}

// sub is the embedded directory dir as the root of its files.
func sub(fsys embed.FS, dir string) fs.FS {
	root, _ := fs.Sub(fsys, dir) // fails only for an invalid dir
	return root
}

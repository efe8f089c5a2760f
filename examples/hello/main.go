// Command hello is the smallest complete threetier service, all three tiers in
// one process: the data tier on the embedded SQLite file (or PostgreSQL when
// THREETIER_DATA_DSN is set), two app-tier instances with a JSON API, and the
// web tier serving the page and forwarding /api/ to the app instances through
// a client-side balancer. Copy it to start a new service.
//
//	go run ./examples/hello            # serves http://127.0.0.1:8080
//	go run ./examples/hello -listen 127.0.0.1:9000 -apps 3
//
// Every tier's metrics, and the probes, are on the admin listener on
// loopback (127.0.0.1:8404, -admin or THREETIER_ADMIN_LISTEN to move it):
// the public port serves the page and the API only.
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

// listening is what run hands to ready once every tier serves.
type listening struct {
	Site  string // the web tier, the service's front
	Admin string // the admin listener, or "" without one
}

// run builds the service and runs it until ctx ends. ready, when not nil,
// receives the addresses once every tier serves.
func run(ctx context.Context, args []string, stderr io.Writer, ready chan<- listening) error {
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
	tiers := startOrder(db, apps, pool, site)
	var adm *tier.Admin
	if cfg.admin.On() {
		// The web tier's readiness is the service's: it holds while an
		// app instance can take requests.
		if adm, err = tier.NewAdmin(cfg.admin, reg, site.Health(), log); err != nil {
			return err
		}
		tiers = append(tiers, adm)
	}
	runner := tier.Runner{Logger: log, StopTimeout: stopTimeout, Started: announce(log, site, adm, db, len(apps), ready)}
	return runner.Run(ctx, tiers...)
}

// startOrder lists the tiers as Run starts them: the database, the app
// instances on it, the pool over them once they are bound, and the web
// tier in front. The admin listener, when on, comes last and so stops
// first. Run stops them in reverse.
func startOrder(db *data.DB, apps []*app.Server, pool *balancer.Pool, site *web.Server) []tier.Tier {
	tiers := []tier.Tier{db}
	for _, a := range apps {
		tiers = append(tiers, a)
	}
	return append(tiers, pool, site)
}

// announce logs where the service serves, and hands the addresses to
// ready.
func announce(log *slog.Logger, site *web.Server, adm *tier.Admin, db *data.DB, apps int, ready chan<- listening) func() {
	return func() {
		l := listening{Site: site.Addr()}
		if adm != nil {
			l.Admin = adm.Addr()
		}
		log.Info("serving", "url", "http://"+l.Site+"/", "admin", l.Admin, "apps", apps, "database", string(db.Dialect()))
		if ready != nil {
			ready <- l
		}
	}
}

// sub is the embedded directory dir as the root of its files.
func sub(fsys embed.FS, dir string) fs.FS {
	root, _ := fs.Sub(fsys, dir) // fails only for an invalid dir
	return root
}

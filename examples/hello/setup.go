package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/threetier/threetier/app"
	"github.com/threetier/threetier/balancer"
	"github.com/threetier/threetier/data"
	"github.com/threetier/threetier/tier"
	"github.com/threetier/threetier/tier/otlp"
	"github.com/threetier/threetier/web"
)

// flags are the command line; everything else comes from THREETIER_*
// variables (see the README). A flag given wins over its variable.
type flags struct {
	listen string // the web tier, the service's front
	admin  string // the admin listener
	apps   int    // app-tier instances, each on its own loopback port
	db     string // the SQLite file when no PostgreSQL DSN is set
}

func parseFlags(args []string, stderr io.Writer) (flags, error) {
	var f flags
	fl := flag.NewFlagSet("hello", flag.ContinueOnError)
	fl.SetOutput(stderr)
	fl.StringVar(&f.listen, "listen", "", "address the web tier serves on (default THREETIER_WEB_LISTEN, else "+web.DefaultListen+")")
	fl.StringVar(&f.admin, "admin", "", `admin listener with every tier's /metrics, /healthz and /readyz (default THREETIER_ADMIN_LISTEN, else `+tier.DefaultAdminListen+`; "-": none)`)
	fl.IntVar(&f.apps, "apps", 2, "number of app-tier instances behind the balancer")
	fl.StringVar(&f.db, "db", "", "SQLite file of the embedded database (default THREETIER_DATA_PATH, else hello.db; ignored with THREETIER_DATA_DSN)")
	if err := fl.Parse(args); err != nil {
		return f, err
	}
	if f.apps < 1 || f.apps > 64 {
		return f, fmt.Errorf("-apps %d: want 1 to 64", f.apps)
	}
	if fl.NArg() > 0 {
		return f, fmt.Errorf("unexpected argument %q", fl.Arg(0))
	}
	return f, nil
}

// config is every tier's configuration: the example's defaults, under the
// THREETIER_* variables of each tier, under the flags.
type config struct {
	apps    int
	log     tier.LogConfig
	data    data.Config
	app     app.Config
	guard   app.GuardConfig // the app instances' guard on the database
	pool    balancer.Config
	web     web.Config
	forward web.ForwardConfig
	admin   tier.AdminConfig
	// tracer is on when OTEL_* variables ask for it; stopTracing flushes it.
	tracer      trace.TracerProvider
	stopTracing func(context.Context) error
}

// configure reads the flags and each tier's variables under its prefix,
// and makes the logger and the tracer.
func configure(ctx context.Context, args []string, stderr io.Writer) (config, *slog.Logger, error) {
	f, err := parseFlags(args, stderr)
	if err != nil {
		return config{}, nil, err
	}
	cfg := config{
		apps: f.apps,
		data: data.Config{Path: "hello.db"},
		// Every instance on a loopback port of its own, found by the pool.
		app:   app.Config{Listen: "127.0.0.1:0"},
		guard: app.DefaultGuardConfig(),
		// The pool checks that each instance is ready, database included.
		pool:    balancer.Config{Name: "app-pool", Policy: balancer.PolicyLeastRequest, Health: balancer.HealthConfig{Path: "/readyz", Interval: time.Second}},
		forward: web.ForwardConfig{Prefix: "/api/"},
	}
	// Every THREETIER_ variable is read through env; Check fails on a
	// misspelt one, naming the nearest known variable.
	env := tier.NewEnv(os.Environ())
	for _, c := range []struct {
		prefix string
		into   any
	}{
		{tier.EnvPrefix, &cfg.log},
		{data.EnvPrefix, &cfg.data},
		{app.EnvPrefix, &cfg.app},
		{app.EnvPrefix + "GUARD_DB_", &cfg.guard},
		{balancer.EnvPrefix, &cfg.pool},
		{web.EnvPrefix, &cfg.web},
		{tier.AdminEnvPrefix, &cfg.admin},
	} {
		if err := env.Load(c.prefix, c.into); err != nil {
			return cfg, nil, err
		}
	}
	if err := env.Check(); err != nil {
		return cfg, nil, err
	}
	if f.listen != "" {
		cfg.web.Listen = f.listen
	}
	if f.db != "" {
		cfg.data.Path = f.db
	}
	if f.admin != "" {
		cfg.admin.Listen = f.admin
	}
	if cfg.tracer, cfg.stopTracing, err = otlp.Tracing(ctx, os.Environ()); err != nil {
		return cfg, nil, err
	}
	log, err := tier.NewLogger(cfg.log, stderr)
	return cfg, log, err
}

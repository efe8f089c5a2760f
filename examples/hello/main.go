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
	"os"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/threetier/threetier/app"
	"github.com/threetier/threetier/balancer"
	"github.com/threetier/threetier/data"
	"github.com/threetier/threetier/tier"
	"github.com/threetier/threetier/web"
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

// flags are the command line; everything else comes from THREETIER_*
// variables (see the README).
type flags struct {
	listen string // the web tier, the service's front
	apps   int    // app-tier instances, each on its own loopback port
	db     string // the SQLite file when no PostgreSQL DSN is set
}

func parseFlags(args []string, stderr io.Writer) (flags, error) {
	var f flags
	fl := flag.NewFlagSet("hello", flag.ContinueOnError)
	fl.SetOutput(stderr)
	fl.StringVar(&f.listen, "listen", web.DefaultListen, "address the web tier serves on")
	fl.IntVar(&f.apps, "apps", 2, "number of app-tier instances behind the balancer")
	fl.StringVar(&f.db, "db", "hello.db", "SQLite file of the embedded database (ignored with THREETIER_DATA_DSN)")
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

// run builds the service and runs it until ctx ends. ready, when not nil,
// receives the web tier's address once every tier serves.
func run(ctx context.Context, args []string, stderr io.Writer, ready chan<- string) error {
	f, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	// Every THREETIER_ variable is read here; Check fails on a misspelt one.
	env := tier.NewEnv(os.Environ())
	logCfg := tier.LogConfig{}
	dataCfg := data.Config{Path: f.db}
	if err := errors.Join(env.Load(tier.EnvPrefix, &logCfg), env.Load(data.EnvPrefix, &dataCfg), env.Check()); err != nil {
		return err
	}
	log, err := tier.NewLogger(logCfg, stderr)
	if err != nil {
		return err
	}
	reg := tier.NewRegistry()

	// Data tier: the embedded SQLite file unless THREETIER_DATA_DSN names a
	// PostgreSQL server.
	db, err := data.Open(ctx, dataCfg, data.WithLogger(log), data.WithRegistry(reg))
	if err != nil {
		return err
	}
	defer db.Close()
	if err := db.AutoMigrate(ctx, &Greeting{}); err != nil {
		return err
	}

	// App tier: identical instances, each with its own guard on the database.
	tiers := []tier.Tier{db}
	var apps []*app.Server
	for i := range f.apps {
		api, err := newAPI(db, fmt.Sprintf("app-%d", i+1), log)
		if err != nil {
			return err
		}
		apps = append(apps, api)
		tiers = append(tiers, api)
	}

	// The balancer in front of the app instances, in the web tier's process.
	// It learns their addresses from them once they are bound (in a real
	// deployment: Config.Endpoints, or DNS discovery).
	pool, err := balancer.New(balancer.Config{Name: "app-pool", Policy: balancer.PolicyLeastRequest},
		balancer.WithDiscovery(instances(apps)),
		balancer.WithLogger(log), balancer.WithRegistry(reg))
	if err != nil {
		return err
	}

	// Web tier: the page from the binary, /api/ forwarded to the app tier.
	static, _ := fs.Sub(public, "public")
	site, err := web.New(web.Config{Listen: f.listen},
		web.WithFS(static),
		web.WithForward(pool, web.ForwardConfig{Prefix: "/api/"}),
		web.WithLogger(log), web.WithRegistry(reg))
	if err != nil {
		return err
	}
	site.Health().Register("app", pool)
	site.Echo().GET("/metrics", echo.WrapHandler(tier.MetricsHandler(reg)))

	runner := tier.Runner{Logger: log, StopTimeout: 10 * time.Second, Started: func() {
		log.Info("serving", "url", "http://"+site.Addr()+"/", "apps", f.apps, "database", string(db.Dialect()))
		if ready != nil {
			ready <- site.Addr()
		}
	}}
	return runner.Run(ctx, append(tiers, pool, site)...)
}

// instances is the balancer's view of the app tiers started in this process.
type instances []*app.Server

// Discover lists the bound address of every instance.
func (in instances) Discover(context.Context) ([]balancer.Endpoint, error) {
	eps := make([]balancer.Endpoint, len(in))
	for i, api := range in {
		eps[i] = balancer.Endpoint{URL: "http://" + api.Addr()}
	}
	return eps, nil
}

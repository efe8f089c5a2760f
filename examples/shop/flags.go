package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/threetier/threetier/app"
	"github.com/threetier/threetier/balancer"
	"github.com/threetier/threetier/balancer/cluster"
	"github.com/threetier/threetier/balancer/stats"
	"github.com/threetier/threetier/data"
	"github.com/threetier/threetier/tier"
	"github.com/threetier/threetier/web"
)

// roleEnv chooses the role when -role is not given.
const roleEnv = tier.EnvPrefix + "SHOP_ROLE"

// flags are the command line, laid over the THREETIER_* variables by each
// role (a flag given wins over its variable, the variable over the
// default).
type flags struct {
	role      string
	listen    string
	backends  string
	stats     string
	admin     string
	clusterLn string
	peers     string
	key       string
	name      string
	db        string
	accessLog bool
	drain     time.Duration
	environ   []string
	stderr    io.Writer
	set       map[string]bool // the flags given explicitly
}

func parseFlags(args, environ []string, stderr io.Writer) (*flags, error) {
	f := &flags{environ: environ, stderr: stderr, set: map[string]bool{}}
	fl := flag.NewFlagSet("shop", flag.ContinueOnError)
	fl.SetOutput(io.Discard) // errors are reported once, on one line, by main
	fl.StringVar(&f.role, "role", roleAll, "all (the whole shop in one process), balancer, web or app ("+roleEnv+")")
	fl.StringVar(&f.listen, "listen", "", "address to serve on; for -role all, the two front doors (default 127.0.0.1:8080,127.0.0.1:8081)")
	fl.StringVar(&f.backends, "backends", "", "the next tier: base URLs http://host:port,... or one dns://name:port or srv://_service._proto.name")
	fl.StringVar(&f.stats, "stats", "", "balancer: admin listener with the stats page, /healthz, /readyz, /metrics (-role all: 127.0.0.1:8404)")
	fl.StringVar(&f.admin, "admin", "", `web, app: admin listener with /metrics, /healthz, /readyz (default THREETIER_ADMIN_LISTEN, else `+tier.DefaultAdminListen+`; "-": none)`)
	fl.StringVar(&f.clusterLn, "cluster-listen", "", "balancer: this node's gossip address ip:port (turns the cluster on)")
	fl.StringVar(&f.peers, "peers", "", "balancer: comma-separated gossip addresses of the other front doors (turns the cluster on)")
	fl.StringVar(&f.key, "cluster-key", "", "balancer: the cluster's shared key, base64 of 16, 24 or 32 bytes (better: THREETIER_CLUSTER_KEY)")
	fl.StringVar(&f.name, "name", "", "this instance's name in logs, X-Served-By, the cluster and the stats page")
	fl.BoolVar(&f.accessLog, "access-log", true, "all, balancer: the front doors log every request, as HAProxy does (-access-log=false: none)")
	tier.DurationVar(fl, &f.drain, "drain-delay", defaultDrainDelay, "balancer, web, app: how long a stopping server keeps serving while it fails /readyz, before it stops accepting (0 for none; THREETIER_*_DRAIN_DELAY)")
	fl.StringVar(&f.db, "db", "", "app: a postgres:// URL, or the SQLite file (default shop.db; THREETIER_DATA_DSN, DATABASE_URL)")
	help := fl.Bool("h", false, "show this help")
	if err := fl.Parse(args); err != nil {
		return nil, err
	}
	if *help {
		fl.SetOutput(stderr)
		fmt.Fprintln(stderr, "usage: shop [-role all|balancer|web|app] [flags]")
		fl.PrintDefaults()
		return nil, flag.ErrHelp
	}
	if fl.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q (flags only)", fl.Arg(0))
	}
	fl.Visit(func(fl *flag.Flag) { f.set[fl.Name] = true })
	if err := checkEnv(environ); err != nil {
		return nil, err
	}
	if !f.set["role"] {
		if v := f.env(roleEnv); v != "" {
			f.role = v
		}
	}
	switch f.role {
	case roleAll, roleBalancer, roleWeb, roleApp:
	default:
		return nil, fmt.Errorf("-role %q: want all, balancer, web or app", f.role)
	}
	// A flag that the role ignores is a mistake worth saying out loud.
	only := map[string][]string{
		"backends": {roleBalancer, roleWeb}, "stats": {roleAll, roleBalancer}, "admin": {roleWeb, roleApp},
		"cluster-listen": {roleBalancer}, "peers": {roleBalancer}, "cluster-key": {roleBalancer},
		"db": {roleAll, roleApp}, "drain-delay": {roleBalancer, roleWeb, roleApp}, "access-log": {roleAll, roleBalancer},
	}
	for name, roles := range only {
		if f.set[name] && !contains(roles, f.role) {
			return nil, fmt.Errorf("-%s is for -role %s, not %s", name, strings.Join(roles, " or "), f.role)
		}
	}
	return f, nil
}

// checkEnv fails on a THREETIER_ variable that no role reads, naming the
// nearest one that some role does. Every role's variables count as known,
// so that one environment can serve a whole deployment.
func checkEnv(environ []string) error {
	env := tier.NewEnv(environ)
	env.Known(roleEnv)
	env.Declare(tier.EnvPrefix, &tier.LogConfig{})
	env.Declare(tier.AdminEnvPrefix, &tier.AdminConfig{})
	env.Declare(balancer.EnvPrefix, &balancer.Config{})
	env.Declare(cluster.EnvPrefix, &cluster.Config{})
	env.Declare(balancer.ProxyEnvPrefix, &balancer.ProxyConfig{})
	env.Declare(stats.EnvPrefix, &stats.Config{})
	env.Declare(web.EnvPrefix, &web.Config{})
	env.Declare(app.EnvPrefix, &app.Config{})
	env.Declare(app.EnvPrefix+"GUARD_DB_", &app.GuardConfig{})
	env.Declare(data.EnvPrefix, &data.Config{})
	return env.Check()
}

// env returns the value of a variable of f's environment, or "".
func (f *flags) env(name string) string {
	for _, kv := range f.environ {
		if k, v, ok := strings.Cut(kv, "="); ok && k == name {
			return v
		}
	}
	return ""
}

// override sets *dst to v when the flag was given.
func override[T any](f *flags, name string, dst *T, v T) {
	if f.set[name] {
		*dst = v
	}
}

// drainDelay sets a split role's drain delay: the variable's, else
// defaultDrainDelay, and -drain-delay over either.
func drainDelay(f *flags, d *time.Duration) {
	setIfZero(d, defaultDrainDelay)
	override(f, "drain-delay", d, f.drain)
}

func setIfZero[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// splitList reads "a, b,c" as [a b c]; "" is nil.
func splitList(s string) []string {
	var out []string
	for p := range strings.SplitSeq(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// poolConfig is the pool over the next tier: THREETIER_BALANCER_*, then
// -backends, which is either base URLs or one discovery URL. The pool
// checks each instance's /readyz every second unless told otherwise: a
// tier whose own dependencies are gone stops taking traffic.
func poolConfig(f *flags, name string) (balancer.Config, error) {
	var cfg balancer.Config
	if err := tier.LoadEnvFrom(f.environ, balancer.EnvPrefix, &cfg); err != nil {
		return cfg, err
	}
	if f.set["backends"] {
		cfg.Endpoints, cfg.Discovery = nil, ""
		list := splitList(f.backends)
		if len(list) == 1 && (strings.HasPrefix(list[0], "dns") || strings.HasPrefix(list[0], "srv")) && strings.Contains(list[0], "://") {
			cfg.Discovery = list[0]
		} else {
			cfg.Endpoints = list
		}
	}
	setIfZero(&cfg.Name, name)
	setIfZero(&cfg.Health.Path, "/readyz")
	setIfZero(&cfg.Health.Interval, defaultCheckInterval)
	if len(cfg.Endpoints) == 0 && cfg.Discovery == "" {
		return cfg, errors.New("no backends: give -backends http://host:port,... or dns://name:port (or THREETIER_BALANCER_ENDPOINTS, THREETIER_BALANCER_DISCOVERY)")
	}
	if err := cfg.Validate(); err != nil {
		return cfg, err
	}
	return cfg, nil
}

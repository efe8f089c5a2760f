// Command lb is the standalone front door to run instead of HAProxy: a
// balancer.Proxy over one pool of backends, with active health checks on
// by default, passive ejection and retries, HTTPS with HTTP/2 and
// certificate reload, and an admin listener that keepalived and humans
// can ask about the node.
//
//	go run ./examples/lb -listen 127.0.0.1:8080 -backends http://127.0.0.1:9001,http://127.0.0.1:9002
//	go run ./examples/lb -listen :8443 -tls-cert cert.pem -tls-key key.pem -redirect-http :8080 -backends ...
//	go run ./examples/lb -backends ... -stats 127.0.0.1:8404
//	THREETIER_CLUSTER_KEY=... go run ./examples/lb -backends ... -cluster-listen 10.0.0.1:7946 -peers 10.0.0.2:7946
//
// Every setting also comes from THREETIER_BALANCER_* (the pool),
// THREETIER_PROXY_* (the node), THREETIER_STATS_* and THREETIER_CLUSTER_*
// variables; a flag given on the command line wins over its variable. SIGHUP reads the TLS certificate and key again.
// Invalid flags print one line and exit with status 2.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/threetier/threetier/balancer"
	"github.com/threetier/threetier/balancer/cluster"
	"github.com/threetier/threetier/balancer/stats"
	"github.com/threetier/threetier/tier"
	"github.com/threetier/threetier/tier/otlp"
)

func main() { os.Exit(serve(os.Args[1:], nil)) }

// serve runs the command until SIGINT or SIGTERM and returns its exit
// status: 0 after a clean stop or -h, 2 after an error, which it prints on
// one line. ready is run's.
func serve(args []string, ready chan<- listening) int {
	ctx, stop := tier.SignalContext(context.Background())
	defer stop()
	err := run(ctx, args, os.Stderr, ready)
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	default:
		fmt.Fprintln(os.Stderr, "lb:", oneLine(err))
		return 2
	}
}

// oneLine joins a multi-error on one line.
func oneLine(err error) string { return strings.ReplaceAll(err.Error(), "\n", "; ") }

// Defaults of the flags whose zero value in balancer.Config means
// something else: the front door checks its backends unless told not to,
// and more often than a library pool does, since it is the last line
// before the browsers.
const (
	defaultCheckPath     = "/"
	defaultCheckInterval = 2 * time.Second
)

// listening is what run hands to ready once every listener is bound.
type listening struct {
	Proxy    string // the front door
	Redirect string // the HTTP-to-HTTPS listener, or ""
	Stats    string // the admin listener, or ""
	Cluster  string // the gossip address, or ""
}

// flags are the command line, before they are laid over the environment.
type flags struct {
	pool      balancer.Config
	proxy     balancer.ProxyConfig
	backends  string
	trusted   string
	stats     string
	statsTok  string
	clusterLn string
	peers     string
	key       string
	node      string
	profile   string
	accessLog bool
	set       map[string]bool // the flags given explicitly
}

func parseFlags(args []string, stderr io.Writer) (*flags, error) {
	f := &flags{set: map[string]bool{}}
	fl := flag.NewFlagSet("lb", flag.ContinueOnError)
	fl.SetOutput(io.Discard) // errors are reported once, on one line, by main
	fl.StringVar(&f.proxy.Listen, "listen", ":8080", "address to serve on")
	fl.StringVar(&f.proxy.Engine, "engine", balancer.EngineFast, "what serves HTTP/1.1: fasthttp or net/http (HTTP/2, WebSocket and streamed uploads are net/http's either way)")
	fl.StringVar(&f.backends, "backends", "", "comma-separated base URLs of the backends: http://host:port,...")
	// The policy is checked with the rest of the Config, so that an unknown
	// one is named like any other bad setting.
	f.pool.Policy = balancer.PolicyRoundRobin
	fl.Func("policy", "round_robin (the default), least_request, p2c_ewma, hash, first or random", func(s string) error {
		f.pool.Policy = balancer.Policy(s)
		return nil
	})
	fl.StringVar(&f.pool.Health.Path, "check-path", defaultCheckPath, `path of the health check GET on each backend ("": no active checks)`)
	tier.DurationVar(fl, &f.pool.Health.Interval, "check-interval", defaultCheckInterval, "time between health checks of one backend")
	fl.StringVar(&f.stats, "stats", "", "admin listener: the stats page and API, /healthz, /readyz, /metrics (off by default)")
	fl.StringVar(&f.statsTok, "stats-token", "", "bearer token that turns the stats runtime API on (better: THREETIER_STATS_TOKEN)")
	fl.StringVar(&f.clusterLn, "cluster-listen", "", "this node's gossip address ip:port, TCP and UDP (turns the cluster on)")
	fl.StringVar(&f.peers, "peers", "", "comma-separated gossip addresses of the other nodes (turns the cluster on)")
	fl.StringVar(&f.key, "cluster-key", "", "the cluster's shared key, base64 of 16, 24 or 32 bytes (better: THREETIER_CLUSTER_KEY)")
	fl.StringVar(&f.node, "node", "", "this node's name: in its logs, in the cluster and on the stats page")
	fl.StringVar(&f.proxy.TLSCert, "tls-cert", "", "PEM certificate file (with -tls-key: HTTPS and HTTP/2; SIGHUP reloads)")
	fl.StringVar(&f.proxy.TLSKey, "tls-key", "", "PEM key file")
	fl.StringVar(&f.proxy.RedirectListen, "redirect-http", "", "plain-HTTP address that redirects to HTTPS")
	fl.StringVar(&f.trusted, "trusted-proxies", "", "comma-separated CIDRs whose X-Forwarded-* headers are kept")
	fl.BoolVar(&f.accessLog, "access-log", true, "log every request, as HAProxy does (-access-log=false: none)")
	fl.Float64Var(&f.proxy.RateLimit, "rate-limit", 0, "requests per second per client address, counted across the cluster; a request over it gets 429 (0: off)")
	fl.IntVar(&f.proxy.RateBurst, "rate-burst", 0, "requests a client may make at once over -rate-limit (0: the rate, rounded up)")
	fl.IntVar(&f.proxy.ConnLimit, "conn-limit", 0, "connections one client address may hold open at once; more are reset (0: no cap)")
	fl.IntVar(&f.proxy.MaxConns, "max-conns", tier.DefaultMaxConns, "most client connections open at once (kept below the descriptor limit)")
	tier.DurationVar(fl, &f.proxy.BodyTimeout, "body-timeout", tier.DefaultBodyTimeout, "longest a request body may go without a byte arriving (negative: off)")
	tier.DurationVar(fl, &f.proxy.SendTimeout, "send-timeout", tier.DefaultSendTimeout, "longest a response may go without the client taking a byte (negative: off)")
	tier.DurationVar(fl, &f.proxy.DrainDelay, "drain-delay", 0, "on SIGTERM, how long to keep serving while /readyz fails and answers say the node is leaving, before it stops accepting")
	fl.StringVar(&f.profile, "cpuprofile", "", "write a CPU profile of the whole run to this file (for tuning)")
	help := fl.Bool("h", false, "show this help")
	if err := fl.Parse(args); err != nil {
		return nil, err
	}
	if *help {
		fl.SetOutput(stderr)
		fmt.Fprintln(stderr, "usage: lb -backends URL,... [flags]")
		fl.PrintDefaults()
		return nil, flag.ErrHelp
	}
	if fl.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q (flags only)", fl.Arg(0))
	}
	fl.Visit(func(fl *flag.Flag) { f.set[fl.Name] = true })
	f.pool.Endpoints = splitList(f.backends)
	f.proxy.TrustedProxies = splitList(f.trusted)
	return f, nil
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

// override sets *dst to v when the flag was given: the command line wins
// over the environment, the environment over the flag's default.
func override[T any](f *flags, name string, dst *T, v T) {
	if f.set[name] {
		*dst = v
	}
}

// configs lays the flags over the THREETIER_BALANCER_* and
// THREETIER_PROXY_* variables.
func configs(f *flags, env *tier.Env) (balancer.Config, balancer.ProxyConfig, error) {
	var pool balancer.Config
	var proxy balancer.ProxyConfig
	if err := env.Load(balancer.EnvPrefix, &pool); err != nil {
		return pool, proxy, err
	}
	if err := env.Load(balancer.ProxyEnvPrefix, &proxy); err != nil {
		return pool, proxy, err
	}
	setIfZero(&pool.Name, "backend")
	override(f, "backends", &pool.Endpoints, f.pool.Endpoints)
	override(f, "policy", &pool.Policy, f.pool.Policy)
	override(f, "check-path", &pool.Health.Path, f.pool.Health.Path)
	override(f, "check-interval", &pool.Health.Interval, f.pool.Health.Interval)
	if !f.set["check-path"] {
		setIfZero(&pool.Health.Path, defaultCheckPath)
	}
	setIfZero(&pool.Health.Interval, defaultCheckInterval)
	if len(pool.Endpoints) == 0 && pool.Discovery == "" {
		return pool, proxy, errors.New("no backends: give -backends http://host:port,... (or THREETIER_BALANCER_ENDPOINTS, or THREETIER_BALANCER_DISCOVERY)")
	}

	override(f, "listen", &proxy.Listen, f.proxy.Listen)
	override(f, "engine", &proxy.Engine, f.proxy.Engine)
	override(f, "tls-cert", &proxy.TLSCert, f.proxy.TLSCert)
	override(f, "tls-key", &proxy.TLSKey, f.proxy.TLSKey)
	override(f, "redirect-http", &proxy.RedirectListen, f.proxy.RedirectListen)
	override(f, "trusted-proxies", &proxy.TrustedProxies, f.proxy.TrustedProxies)
	override(f, "max-conns", &proxy.MaxConns, f.proxy.MaxConns)
	override(f, "rate-limit", &proxy.RateLimit, f.proxy.RateLimit)
	override(f, "rate-burst", &proxy.RateBurst, f.proxy.RateBurst)
	override(f, "conn-limit", &proxy.ConnLimit, f.proxy.ConnLimit)
	override(f, "body-timeout", &proxy.BodyTimeout, f.proxy.BodyTimeout)
	override(f, "send-timeout", &proxy.SendTimeout, f.proxy.SendTimeout)
	override(f, "drain-delay", &proxy.DrainDelay, f.proxy.DrainDelay)
	override(f, "node", &proxy.Name, f.node)
	setIfZero(&proxy.Name, "lb")
	// Checked here, not only by NewProxy, so that a flag mistake is
	// reported before any socket is bound.
	if err := pool.Validate(); err != nil {
		return pool, proxy, flagNames(err)
	}
	if err := proxy.Validate(); err != nil {
		return pool, proxy, flagNames(err)
	}
	return pool, proxy, nil
}

func setIfZero[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// fieldFlags names the flag behind a Config field, so that an error names
// what the user typed.
var fieldFlags = strings.NewReplacer(
	"Endpoints[", "-backends[",
	"Policy=", "-policy=",
	"Health.Path=", "-check-path=",
	"Health.Interval=", "-check-interval=",
	"Engine=", "-engine=",
	"TLSCert=", "-tls-cert=",
	"RedirectListen=", "-redirect-http=",
	"TrustedProxies[", "-trusted-proxies[",
	"MaxConns=", "-max-conns=",
	"RateLimit=", "-rate-limit=",
	"RateBurst=", "-rate-burst=",
	"ConnLimit=", "-conn-limit=",
)

func flagNames(err error) error { return errors.New(fieldFlags.Replace(err.Error())) }

// run parses args, builds the node and serves until ctx ends. ready, when
// not nil, receives the bound addresses once serving.
func run(ctx context.Context, args []string, stderr io.Writer, ready chan<- listening) error {
	f, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	env := tier.NewEnv(os.Environ())
	poolCfg, proxyCfg, err := configs(f, env)
	if err != nil {
		return err
	}
	clusterCfg, err := clusterConfig(f, env)
	if err != nil {
		return err
	}
	statsCfg, err := statsConfig(f, env)
	if err != nil {
		return err
	}
	var logCfg tier.LogConfig
	if err := env.Load(tier.EnvPrefix, &logCfg); err != nil {
		return err
	}
	if err := env.Check(); err != nil {
		return err
	}
	if f.profile != "" {
		out, err := os.Create(f.profile)
		if err != nil {
			return fmt.Errorf("-cpuprofile: %w", err)
		}
		defer out.Close()
		if err := pprof.StartCPUProfile(out); err != nil {
			return fmt.Errorf("-cpuprofile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	log, err := tier.NewLogger(logCfg, stderr)
	if err != nil {
		return err
	}

	tp, stopTracing, err := otlp.Tracing(ctx, os.Environ())
	if err != nil {
		return err
	}
	defer func() { _ = stopTracing(context.Background()) }()
	reg := tier.NewRegistry()
	pool, err := balancer.New(poolCfg, balancer.WithLogger(log), balancer.WithRegistry(reg), balancer.WithTracerProvider(tp))
	if err != nil {
		return err
	}
	pools := []*balancer.Pool{pool}
	tiers := []tier.Tier{pool}
	// The proxy is built first, the cluster started first: the cluster
	// shares the proxy's rate limits (its limiter), and runs before it.
	proxyOpts := []balancer.Option{balancer.WithLogger(log), balancer.WithRegistry(reg), balancer.WithTracerProvider(tp)}
	if f.accessLog {
		proxyOpts = append(proxyOpts, balancer.WithAccessLog(tier.AccessLogConfig{}))
	}
	px, err := balancer.NewProxy(proxyCfg, pools, proxyOpts...)
	if err != nil {
		return err
	}
	peers, err := clusterTier(clusterCfg, pools, px, reg, log)
	if err != nil {
		return err
	}
	if peers != nil {
		tiers = append(tiers, peers)
		px.Health().Register("cluster", peers)
	}
	tiers = append(tiers, px)
	// The admin listener starts last and so stops first: on shutdown
	// /readyz fails before the proxy stops, and keepalived starts moving
	// the address while the proxy drains what it has in flight.
	var admin *stats.Stats
	if statsCfg.Listen != "" {
		var view stats.ClusterView
		if peers != nil {
			view = peers
		}
		if admin, err = statsTier(statsCfg, px, pools, reg, view, log); err != nil {
			return err
		}
		tiers = append(tiers, admin)
	}

	// SIGHUP is caught even without TLS: its default action would kill the
	// front door of someone who expected a reload.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	reloadCtx, stopReloads := context.WithCancel(ctx)
	reloadsDone := make(chan struct{})
	go func() {
		defer close(reloadsDone)
		reloadOnSignal(reloadCtx, hup, px, log)
	}()
	defer func() { stopReloads(); <-reloadsDone }()

	runner := tier.Runner{Logger: log, StopTimeout: 10 * time.Second, Started: func() {
		l := listening{Proxy: px.Addr(), Redirect: px.RedirectAddr()}
		if admin != nil {
			l.Stats = admin.Addr()
		}
		if peers != nil {
			l.Cluster = peers.LocalAddr()
		}
		log.Info("serving", "addr", l.Proxy, "backends", strings.Join(poolCfg.Endpoints, ","), "stats", l.Stats)
		if ready != nil {
			ready <- l
		}
	}}
	return runner.Run(ctx, tiers...)
}

// reloadOnSignal reads the TLS pair again on each signal until ctx ends.
// A pair that fails to load is logged and the one in service stays.
func reloadOnSignal(ctx context.Context, sig <-chan os.Signal, px *balancer.Proxy, log *slog.Logger) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-sig:
			if px.Config().TLSCert == "" {
				log.Info("SIGHUP: no TLS certificate to reload")
				continue
			}
			if err := px.Reload(); err != nil {
				log.Error("SIGHUP: certificate not reloaded, the previous one stays", "err", err)
				continue
			}
			log.Info("SIGHUP: certificate reloaded", "cert", px.Config().TLSCert)
		}
	}
}

// statsConfig lays -stats, -stats-token and -node over the
// THREETIER_STATS_* variables. The listener is on when it has an address
// from either: unlike a library's, this node's admin port is opened only
// when asked for.
func statsConfig(f *flags, env *tier.Env) (stats.Config, error) {
	var cfg stats.Config
	if err := env.Load(stats.EnvPrefix, &cfg); err != nil {
		return cfg, err
	}
	override(f, "stats", &cfg.Listen, f.stats)
	override(f, "stats-token", &cfg.Token, f.statsTok)
	override(f, "node", &cfg.Name, f.node)
	if cfg.Listen == "" && f.set["stats-token"] {
		return cfg, errors.New("-stats-token needs -stats ADDR")
	}
	if err := cfg.Validate(); err != nil {
		return cfg, errors.New(strings.NewReplacer("Token:", "-stats-token:").Replace(err.Error()))
	}
	return cfg, nil
}

// statsTier is the admin listener: the stats page, its JSON, the metrics
// and the runtime API (with a token), and /healthz and /readyz for
// keepalived's vrrp_script: the node is ready while every pool has a
// backend that can take traffic. It names internal addresses: keep it on
// loopback or a management network.
func statsTier(cfg stats.Config, px *balancer.Proxy, pools []*balancer.Pool, reg *prometheus.Registry, view stats.ClusterView, log *slog.Logger) (*stats.Stats, error) {
	opts := []stats.Option{stats.WithLogger(log), stats.WithRegistry(reg), stats.WithHealth(px.Health()), stats.WithRateLimiter(px.RateLimiter())}
	if view != nil {
		opts = append(opts, stats.WithClusterView(view))
	}
	return stats.New(cfg, pools, opts...)
}

// clusterFlags are the flags that set a cluster.Config field, by variable.
var clusterFlags = []struct{ flag, variable string }{
	{"cluster-listen", "LISTEN"}, {"peers", "PEERS"}, {"cluster-key", "KEY"}, {"node", "NAME"},
}

// clusterConfig lays the cluster flags over the THREETIER_CLUSTER_*
// variables, or returns nil when the cluster is off: it is on when
// -cluster-listen or -peers (or their variables) say where to gossip.
func clusterConfig(f *flags, env *tier.Env) (*cluster.Config, error) {
	env.Declare(cluster.EnvPrefix, &cluster.Config{})
	environ := os.Environ()
	vars := map[string]bool{}
	for _, kv := range environ {
		name, value, _ := strings.Cut(kv, "=")
		vars[name] = value != ""
	}
	on := f.set["cluster-listen"] || f.set["peers"] || vars[cluster.EnvPrefix+"LISTEN"] || vars[cluster.EnvPrefix+"PEERS"]
	if !on {
		if f.set["cluster-key"] {
			return nil, errors.New("-cluster-key needs -cluster-listen or -peers")
		}
		return nil, nil
	}
	// The flags go in as the variables they stand for, listed last so
	// that they win: the config is then validated once, whole (a key
	// given on the command line satisfies the check that a key is set).
	values := map[string]string{"cluster-listen": f.clusterLn, "peers": f.peers, "cluster-key": f.key, "node": f.node}
	for _, cf := range clusterFlags {
		if f.set[cf.flag] {
			environ = append(environ, cluster.EnvPrefix+cf.variable+"="+values[cf.flag])
		}
	}
	var cfg cluster.Config
	if err := tier.LoadEnvFrom(environ, cluster.EnvPrefix, &cfg); err != nil {
		return nil, errors.New(clusterFieldFlags.Replace(err.Error()))
	}
	return &cfg, nil
}

// clusterFieldFlags names the flag beside the variable of a cluster.Config
// error: either may have set it.
var clusterFieldFlags = strings.NewReplacer(
	cluster.EnvPrefix+"LISTEN", "-cluster-listen ("+cluster.EnvPrefix+"LISTEN)",
	cluster.EnvPrefix+"PEERS", "-peers ("+cluster.EnvPrefix+"PEERS)",
	cluster.EnvPrefix+"KEY", "-cluster-key ("+cluster.EnvPrefix+"KEY)",
	cluster.EnvPrefix+"NAME", "-node ("+cluster.EnvPrefix+"NAME)",
)

// clusterTier is this node's membership of the cluster: it shares what
// the node learns about the backends with its peers, and takes theirs; and
// the counts of px's rate limits, so that they hold for the cluster.
func clusterTier(cfg *cluster.Config, pools []*balancer.Pool, px *balancer.Proxy, reg *prometheus.Registry, log *slog.Logger) (*cluster.Cluster, error) {
	if cfg == nil {
		return nil, nil
	}
	return cluster.New(*cfg, pools, cluster.WithLogger(log), cluster.WithRegistry(reg), cluster.WithRateLimiter(px.RateLimiter()))
}

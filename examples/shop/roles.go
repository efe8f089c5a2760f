package main

import (
	"context"
	"crypto/rand"
	"embed"
	"encoding/base64"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/threetier/threetier/app"
	"github.com/threetier/threetier/balancer"
	"github.com/threetier/threetier/balancer/cluster"
	"github.com/threetier/threetier/balancer/stats"
	"github.com/threetier/threetier/data"
	"github.com/threetier/threetier/tier"
	"github.com/threetier/threetier/web"
)

//go:embed public
var public embed.FS

//go:embed migrations
var migrations embed.FS

// Defaults of the shop's servers.
const (
	defaultDoors         = "127.0.0.1:8080,127.0.0.1:8081"
	defaultDoor          = "127.0.0.1:8080"
	defaultStats         = "127.0.0.1:8404"
	defaultWeb           = "127.0.0.1:9001"
	defaultApp           = "127.0.0.1:9101"
	defaultSQLite        = "shop.db"
	defaultCheckInterval = time.Second
	// defaultDrainDelay is how long a role that is told to stop keeps
	// serving while it tells its balancers it is leaving: the pools in
	// front take it out on its first answer, keepalived and Kubernetes
	// within a check or two.
	defaultDrainDelay = 2 * time.Second
	stopTimeout       = 10 * time.Second
)

// runAll runs the whole topology in one process: the database, two app
// instances, two web instances each balancing over both apps, and two
// front doors in a cluster, each balancing over both web instances. Each
// instance has a loopback port of its own; the pools learn them from the
// instances once bound, where a deployment gives -backends or DNS. The
// first door's admin listener (-stats) serves every instance's metrics,
// told apart by a server label.
func runAll(ctx context.Context, f *flags, log *slog.Logger, tp trace.TracerProvider, ready chan<- listening) error {
	doorAddrs := splitList(defaultDoors)
	if f.set["listen"] {
		doorAddrs = splitList(f.listen)
	}
	if len(doorAddrs) != 2 {
		return fmt.Errorf("-listen %q: -role all runs two front doors, give two addresses", f.listen)
	}
	statsAddr := defaultStats
	override(f, "stats", &statsAddr, f.stats)

	reg := tier.NewRegistry()
	db, err := openDB(f, log, tp, reg)
	if err != nil {
		return err
	}
	defer db.Close()
	tiers := []tier.Tier{db}

	appCfg, guardCfg, err := appConfigs(f)
	if err != nil {
		return err
	}
	appCfg.Listen = "127.0.0.1:0"
	const appCount = 2
	var apps []*app.Server
	for i := range appCount {
		name := fmt.Sprintf("app-%d", i+1)
		a, err := newAPI(appCfg, guardCfg, db, app.SharedCapacity(db, appCount), name, log.With("instance", name), tp, labelled(reg, name))
		if err != nil {
			return err
		}
		apps = append(apps, a)
		tiers = append(tiers, a)
	}

	webCfg, err := webConfig(f)
	if err != nil {
		return err
	}
	webCfg.Listen = "127.0.0.1:0"
	var sites []*web.Server
	for i := range 2 {
		name := fmt.Sprintf("web-%d", i+1)
		webCfg.Name = name
		// Each instance's pool is named after its owner too, so that the
		// lifecycle lines of the process name one tier each.
		pool, err := balancer.New(inProcessPool("app@"+name),
			balancer.WithDiscovery(balancer.Local(apps...)),
			balancer.WithLogger(log.With("instance", name)), balancer.WithRegistry(labelled(reg, name)), balancer.WithTracerProvider(tp))
		if err != nil {
			return err
		}
		site, err := newSite(webCfg, pool, quietProbes(log).With("instance", name), tp, labelled(reg, name))
		if err != nil {
			return err
		}
		sites = append(sites, site)
		tiers = append(tiers, pool, site)
	}

	// The two front doors gossip over loopback with a key made for this
	// run; the second one joins the first once both are bound.
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return err
	}
	var doors []*door
	for i, addr := range doorAddrs {
		name := fmt.Sprintf("door-%d", i+1)
		first := i == 0
		statsListen := ""
		if first {
			statsListen = statsAddr
		}
		d, err := newDoor(doorSpec{
			name:      name,
			pool:      inProcessPool("web@" + name),
			discover:  balancer.Local(sites...),
			proxy:     balancer.ProxyConfig{Name: name, Listen: addr},
			accessLog: f.accessLog,
			cluster:   &cluster.Config{Name: name, Listen: "127.0.0.1:0", Key: base64.StdEncoding.EncodeToString(key)},
			stats:     stats.Config{Listen: statsListen, Name: name},
			reg:       labelled(reg, name),
			metrics:   reg,
		}, log.With("instance", name), tp)
		if err != nil {
			return err
		}
		doors = append(doors, d)
		tiers = append(tiers, d.tiers()...)
	}

	runner := tier.Runner{Logger: log, StopTimeout: stopTimeout, Started: func() {
		if err := doors[1].cluster.Join(doors[0].cluster.LocalAddr()); err != nil {
			log.Warn("door-2 did not join door-1", "err", err)
		}
		l := listening{Role: roleAll, Webs: siteAddrs(sites), Apps: appAddrs(apps)}
		for _, d := range doors {
			l.Doors = append(l.Doors, d.proxy.Addr())
			l.Cluster = append(l.Cluster, d.cluster.LocalAddr())
			if d.stats != nil {
				l.Stats = d.stats.Addr()
			}
		}
		announce(f.stderr, log, l, db.Dialect())
		if ready != nil {
			ready <- l
		}
	}}
	return runner.Run(ctx, tiers...)
}

// announce logs where everything listens and prints the URLs a person
// opens.
func announce(out io.Writer, log *slog.Logger, l listening, dialect data.Dialect) {
	log.Info("serving", "role", l.Role, "doors", strings.Join(l.Doors, ","), "stats", l.Stats, "admin", l.Admin,
		"webs", strings.Join(l.Webs, ","), "apps", strings.Join(l.Apps, ","), "database", string(dialect))
	if l.Role != roleAll {
		return
	}
	var b strings.Builder
	b.WriteString("\nthe shop is open:\n")
	for _, d := range l.Doors {
		fmt.Fprintf(&b, "  storefront  http://%s/\n", d)
	}
	if l.Stats != "" {
		fmt.Fprintf(&b, "  stats       http://%s/ (and every tier's /metrics)\n", l.Stats)
	}
	fmt.Fprintf(&b, "  web tier    %s\n  app tier    %s\n  database    %s\nCtrl-C stops everything.\n",
		strings.Join(l.Webs, " "), strings.Join(l.Apps, " "), dialect)
	fmt.Fprint(out, b.String())
}

// runBalancer runs one front door: the proxy over the web tier, its
// cluster membership and its admin listener.
func runBalancer(ctx context.Context, f *flags, log *slog.Logger, tp trace.TracerProvider, ready chan<- listening) error {
	poolCfg, err := poolConfig(f, "web")
	if err != nil {
		return err
	}
	var pxCfg balancer.ProxyConfig
	if err := tier.LoadEnvFrom(f.environ, balancer.ProxyEnvPrefix, &pxCfg); err != nil {
		return err
	}
	override(f, "listen", &pxCfg.Listen, f.listen)
	setIfZero(&pxCfg.Listen, defaultDoor)
	override(f, "name", &pxCfg.Name, f.name)
	setIfZero(&pxCfg.Name, "door")
	drainDelay(f, &pxCfg.DrainDelay)
	var statsCfg stats.Config
	if err := tier.LoadEnvFrom(f.environ, stats.EnvPrefix, &statsCfg); err != nil {
		return err
	}
	override(f, "stats", &statsCfg.Listen, f.stats)
	override(f, "name", &statsCfg.Name, f.name)
	clusterCfg, err := clusterConfig(f)
	if err != nil {
		return err
	}
	log = instanceLog(log, f, roleBalancer, pxCfg.Listen)
	reg := tier.NewRegistry()
	spec := doorSpec{name: pxCfg.Name, pool: poolCfg, proxy: pxCfg, accessLog: f.accessLog, cluster: clusterCfg, stats: statsCfg, reg: reg, metrics: reg}
	d, err := newDoor(spec, log, tp)
	if err != nil {
		return err
	}
	runner := tier.Runner{Logger: log, StopTimeout: stopTimeout, Started: func() {
		l := listening{Role: roleBalancer, Doors: []string{d.proxy.Addr()}}
		if d.stats != nil {
			l.Stats = d.stats.Addr()
		}
		if d.cluster != nil {
			l.Cluster = []string{d.cluster.LocalAddr()}
		}
		announce(f.stderr, log, l, "")
		if ready != nil {
			ready <- l
		}
	}}
	return runner.Run(ctx, d.tiers()...)
}

// clusterConfig lays -cluster-listen, -peers, -cluster-key and -name over
// the THREETIER_CLUSTER_* variables, or returns nil when the cluster is
// off: it is on when an address to gossip on or peers to join are given.
func clusterConfig(f *flags) (*cluster.Config, error) {
	on := f.set["cluster-listen"] || f.set["peers"] || f.env(cluster.EnvPrefix+"LISTEN") != "" || f.env(cluster.EnvPrefix+"PEERS") != ""
	if !on {
		if f.set["cluster-key"] {
			return nil, fmt.Errorf("-cluster-key needs -cluster-listen or -peers")
		}
		return nil, nil
	}
	var cfg cluster.Config
	// Loaded without validation first, so that a key given as a flag
	// satisfies the check that there is one.
	environ := append([]string(nil), f.environ...)
	for flagName, v := range map[string]string{"cluster-listen": "LISTEN", "peers": "PEERS", "cluster-key": "KEY", "name": "NAME"} {
		if f.set[flagName] {
			val := map[string]string{"cluster-listen": f.clusterLn, "peers": f.peers, "cluster-key": f.key, "name": f.name}[flagName]
			environ = append(environ, cluster.EnvPrefix+v+"="+val)
		}
	}
	if err := tier.LoadEnvFrom(environ, cluster.EnvPrefix, &cfg); err != nil {
		return nil, fmt.Errorf("cluster (-cluster-listen, -peers, -cluster-key or %s*): %w", cluster.EnvPrefix, err)
	}
	return &cfg, nil
}

// runWeb runs one web-tier instance: the storefront's files and /api/
// forwarded to the app tier through a pool over its instances, and its
// admin listener.
func runWeb(ctx context.Context, f *flags, log *slog.Logger, tp trace.TracerProvider, ready chan<- listening) error {
	poolCfg, err := poolConfig(f, "app")
	if err != nil {
		return err
	}
	cfg, err := webConfig(f)
	if err != nil {
		return err
	}
	override(f, "listen", &cfg.Listen, f.listen)
	setIfZero(&cfg.Listen, defaultWeb)
	drainDelay(f, &cfg.DrainDelay)
	override(f, "name", &cfg.Name, f.name)
	log = instanceLog(log, f, roleWeb, cfg.Listen)
	reg := tier.NewRegistry()
	pool, err := balancer.New(poolCfg, balancer.WithLogger(log), balancer.WithRegistry(reg), balancer.WithTracerProvider(tp))
	if err != nil {
		return err
	}
	site, err := newSite(cfg, pool, quietProbes(log), tp, reg)
	if err != nil {
		return err
	}
	adm, err := adminListener(f, reg, site.Health(), log)
	if err != nil {
		return err
	}
	bound := func() listening { return listening{Role: roleWeb, Webs: []string{site.Addr()}} }
	return runWithAdmin(ctx, f, log, bound, "", ready, adm, pool, site)
}

// runApp runs one app-tier instance over the database, and its admin
// listener.
func runApp(ctx context.Context, f *flags, log *slog.Logger, tp trace.TracerProvider, ready chan<- listening) error {
	cfg, guardCfg, err := appConfigs(f)
	if err != nil {
		return err
	}
	override(f, "listen", &cfg.Listen, f.listen)
	setIfZero(&cfg.Listen, defaultApp)
	drainDelay(f, &cfg.DrainDelay)
	log = instanceLog(log, f, roleApp, cfg.Listen)
	reg := tier.NewRegistry()
	db, err := openDB(f, log, tp, reg)
	if err != nil {
		return err
	}
	defer db.Close()
	name := f.name
	if name == "" {
		host, _ := os.Hostname()
		name = host + "-" + cfg.Listen
	}
	srv, err := newAPI(cfg, guardCfg, db, db, name, log, tp, reg)
	if err != nil {
		return err
	}
	adm, err := adminListener(f, reg, srv.Health(), log)
	if err != nil {
		return err
	}
	bound := func() listening { return listening{Role: roleApp, Apps: []string{srv.Addr()}} }
	return runWithAdmin(ctx, f, log, bound, db.Dialect(), ready, adm, db, srv)
}

// instanceLog returns the logger of a one-role process: every line names
// the instance, by -name or else by its role and address ("web@:9001"),
// so that the lines of several processes on one terminal tell apart.
func instanceLog(log *slog.Logger, f *flags, role, listen string) *slog.Logger {
	name := f.name
	if name == "" {
		name = role + "@" + listen
	}
	return log.With("instance", name)
}

// adminListener is a web or app server's admin listener: its metrics and
// its probes, on THREETIER_ADMIN_LISTEN or -admin (loopback by default),
// or nil for -admin -. The public listener serves no metrics: they name
// the next tier's instances and count every client's requests.
func adminListener(f *flags, reg *prometheus.Registry, health *tier.Health, log *slog.Logger) (*tier.Admin, error) {
	var cfg tier.AdminConfig
	if err := tier.LoadEnvFrom(f.environ, tier.AdminEnvPrefix, &cfg); err != nil {
		return nil, err
	}
	override(f, "admin", &cfg.Listen, f.admin)
	if !cfg.On() {
		return nil, nil
	}
	adm, err := tier.NewAdmin(cfg, reg, health, log)
	if err != nil {
		return nil, fmt.Errorf("-admin: %w", err)
	}
	return adm, nil
}

// runWithAdmin runs tiers and then adm, when not nil: the admin listener
// starts last and so stops first, its /readyz failing before the server
// stops. Once all serve, the addresses bound gives, with the admin
// listener's, are announced and handed to ready.
func runWithAdmin(ctx context.Context, f *flags, log *slog.Logger, bound func() listening, dialect data.Dialect, ready chan<- listening, adm *tier.Admin, tiers ...tier.Tier) error {
	if adm != nil {
		tiers = append(tiers, adm)
	}
	runner := tier.Runner{Logger: log, StopTimeout: stopTimeout, Started: func() {
		l := bound()
		if adm != nil {
			l.Admin = adm.Addr()
		}
		announce(f.stderr, log, l, dialect)
		if ready != nil {
			ready <- l
		}
	}}
	return runner.Run(ctx, tiers...)
}

// labelled registers with reg under server=name: in one process, the
// instances of a tier share the admin listener's one registry.
func labelled(reg prometheus.Registerer, name string) prometheus.Registerer {
	return prometheus.WrapRegistererWith(prometheus.Labels{"server": name}, reg)
}

// openDB makes the data tier with the shop's migrations: PostgreSQL when
// -db, THREETIER_DATA_DSN or DATABASE_URL holds a postgres:// URL, else
// the SQLite file -db names (shop.db by default). Its Start waits for a
// database that comes up after the role (THREETIER_DATA_START_TIMEOUT),
// and applies the migrations once it answers.
func openDB(f *flags, log *slog.Logger, tp trace.TracerProvider, reg prometheus.Registerer) (*data.DB, error) {
	var cfg data.Config
	if err := tier.LoadEnvFrom(dataEnviron(f), data.EnvPrefix, &cfg); err != nil {
		return nil, err
	}
	setIfZero(&cfg.Path, defaultSQLite)
	mig, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return nil, err
	}
	return data.New(cfg, data.WithLogger(log), data.WithRegistry(reg), data.WithMigrations(mig), data.WithTracerProvider(tp))
}

// dataEnviron is f's environment with DATABASE_URL and -db merged into the
// THREETIER_DATA_* variables they stand for, so that the data tier
// validates the settings it will run with: a -db DSN is the primary of
// THREETIER_DATA_REPLICAS. DATABASE_URL stands in for an empty
// THREETIER_DATA_DSN; -db overrides both.
func dataEnviron(f *flags) []string {
	environ := slices.Clone(f.environ)
	set := func(name, v string) { environ = append(environ, data.EnvPrefix+name+"="+v) }
	if url := f.env("DATABASE_URL"); url != "" && f.env(data.EnvPrefix+"DSN") == "" {
		set("DSN", url)
	}
	if f.set["db"] {
		if strings.HasPrefix(f.db, "postgres://") || strings.HasPrefix(f.db, "postgresql://") {
			set("DSN", f.db)
		} else {
			set("DSN", "")
			set("SQLITE_PATH", f.db)
		}
	}
	return environ
}

// appConfigs reads the app server's THREETIER_APP_* variables and the
// database guard's THREETIER_APP_GUARD_DB_* ones.
func appConfigs(f *flags) (app.Config, app.GuardConfig, error) {
	var cfg app.Config
	if err := tier.LoadEnvFrom(f.environ, app.EnvPrefix, &cfg); err != nil {
		return cfg, app.GuardConfig{}, err
	}
	guard := app.DefaultGuardConfig()
	if err := tier.LoadEnvFrom(f.environ, app.EnvPrefix+"GUARD_DB_", &guard); err != nil {
		return cfg, guard, err
	}
	return cfg, guard, nil
}

// webConfig reads THREETIER_WEB_*. The storefront's files are revalidated
// on every load (their ETags make that a 304): they carry no version in
// their names that would let a browser keep them longer.
func webConfig(f *flags) (web.Config, error) {
	var cfg web.Config
	if err := tier.LoadEnvFrom(f.environ, web.EnvPrefix, &cfg); err != nil {
		return cfg, err
	}
	if cfg.Files.CacheControl == nil {
		cfg.Files.CacheControl = web.CacheRules{{Pattern: "*", Value: "no-cache"}}
	}
	return cfg, nil
}

// newSite is one web-tier instance: the embedded storefront, and /api/
// handed to the app tier through pool. The front doors in front set the
// X-Forwarded-* headers, which the web tier keeps and appends to.
func newSite(cfg web.Config, pool *balancer.Pool, log *slog.Logger, tp trace.TracerProvider, reg prometheus.Registerer) (*web.Server, error) {
	static, err := fs.Sub(public, "public")
	if err != nil {
		return nil, err
	}
	return web.New(cfg,
		web.WithFS(static),
		web.WithForward(pool, web.ForwardConfig{Prefix: "/api/", TrustForwarded: true}),
		web.WithLogger(log), web.WithRegistry(reg), web.WithTracerProvider(tp))
}

// inProcessPool is the configuration of a pool over instances of this
// process: the same checks as in a deployment.
func inProcessPool(name string) balancer.Config {
	return balancer.Config{Name: name, Health: balancer.HealthConfig{Path: "/readyz", Interval: defaultCheckInterval}}
}

func appAddrs(apps []*app.Server) []string {
	out := make([]string, len(apps))
	for i, a := range apps {
		out[i] = a.Addr()
	}
	return out
}

func siteAddrs(sites []*web.Server) []string {
	out := make([]string, len(sites))
	for i, s := range sites {
		out[i] = s.Addr()
	}
	return out
}

// quietProbes returns log with the web tier's access lines for probes
// (/healthz, /readyz, and /metrics when served) moved to debug level, as the app tier
// logs them: the pools in front check every instance every second, and
// those lines would bury the ones a person reads.
func quietProbes(log *slog.Logger) *slog.Logger {
	return slog.New(probeFilter{log.Handler()})
}

type probeFilter struct{ slog.Handler }

func (h probeFilter) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == "access" && r.Level == slog.LevelInfo {
		probe := false
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "uri" {
				switch a.Value.String() {
				case "/healthz", "/readyz", "/metrics":
					probe = true
				}
				return false
			}
			return true
		})
		if probe {
			if !h.Enabled(ctx, slog.LevelDebug) {
				return nil
			}
			r = r.Clone()
			r.Level = slog.LevelDebug
		}
	}
	return h.Handler.Handle(ctx, r)
}

func (h probeFilter) WithAttrs(attrs []slog.Attr) slog.Handler {
	return probeFilter{h.Handler.WithAttrs(attrs)}
}

func (h probeFilter) WithGroup(name string) slog.Handler {
	return probeFilter{h.Handler.WithGroup(name)}
}

// Command static is the standalone static file server to run instead of
// nginx for files: validators, ranges, precompressed and on-the-fly
// compression, sendfile, an in-memory cache, HTTPS with HTTP/2.
//
//	go run ./examples/static -listen 127.0.0.1:8080 -root ./public
//	go run ./examples/static -root ./dist -spa -cache '/assets/*=public, max-age=31536000, immutable' -cache '*.html=no-cache'
//	go run ./examples/static -root ./public -error-pages /errors
//	go run ./examples/static -root ./public -listen :8443 -tls-cert cert.pem -tls-key key.pem -redirect-http :8080 -hsts 8760h
//	go run ./examples/static -root ./dist -forward /api/=http://127.0.0.1:9001,http://127.0.0.1:9002
//
// The metrics and the probes are also on the admin listener, on loopback
// (-admin, THREETIER_ADMIN_LISTEN; 127.0.0.1:8404 by default): the public
// listener serves no /metrics unless -metrics asks. Invalid flags print
// one line and exit with status 2.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/threetier/threetier/balancer"
	"github.com/threetier/threetier/tier"
	"github.com/threetier/threetier/tier/otlp"
	"github.com/threetier/threetier/web"
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
		fmt.Fprintln(os.Stderr, "static:", oneLine(err))
		os.Exit(2)
	}
}

// oneLine joins a multi-error on one line.
func oneLine(err error) string { return strings.ReplaceAll(err.Error(), "\n", "; ") }

// nameFlags makes every *tier.ConfigError in err name the flag behind its
// field: static reads its web.Config from flags, not from THREETIER_WEB_
// variables, so those are not what the user should change.
func nameFlags(err error) error {
	switch e := err.(type) {
	case *tier.ConfigError:
		if f := flagFor(e.Field); f != "" {
			e.Var = f
		}
	case interface{ Unwrap() []error }:
		for _, inner := range e.Unwrap() {
			nameFlags(inner)
		}
	case interface{ Unwrap() error }:
		nameFlags(e.Unwrap())
	}
	return err
}

// flagFor is the flag that sets the web.Config field at path, if any.
func flagFor(field string) string {
	switch field {
	case "Listen":
		return "-listen"
	case "Engine":
		return "-engine"
	case "TLSCert":
		return "-tls-cert"
	case "TLSKey":
		return "-tls-key"
	case "RedirectListen":
		return "-redirect-http"
	case "HSTS":
		return "-hsts"
	case "MetricsPath":
		return "-metrics"
	case "BodyTimeout":
		return "-body-timeout"
	case "SendTimeout":
		return "-send-timeout"
	case "MaxConns":
		return "-max-conns"
	case "Files.Root":
		return "-root"
	case "Files.SPAExclude":
		return "-spa-exclude"
	case "Files.ErrorPages":
		return "-error-pages"
	case "Files.CompressLimit":
		return "-compress-limit"
	case "Files.CompressFileMax":
		return "-compress-file-max"
	case "Files.CompressCacheMaxBytes":
		return "-compress-cache-bytes"
	case "Files.CacheControl":
		return "-cache"
	}
	return ""
}

// cacheFlag collects repeated -cache pattern=value flags.
type cacheFlag struct{ rules *web.CacheRules }

func (c cacheFlag) String() string { return "" }

func (c cacheFlag) Set(s string) error {
	r, err := web.ParseCacheRule(s)
	if err != nil {
		return errors.New("want pattern=value, for example '*.html=no-cache'")
	}
	*c.rules = append(*c.rules, r)
	return nil
}

// forwardFlag collects repeated -forward prefix=url,url flags.
type forwardFlag struct{ routes *[]forwardRoute }

type forwardRoute struct {
	prefix    string
	endpoints []string
}

func (f forwardFlag) String() string { return "" }

func (f forwardFlag) Set(s string) error {
	prefix, urls, ok := strings.Cut(s, "=")
	if !ok || !strings.HasPrefix(prefix, "/") || !strings.HasSuffix(prefix, "/") || urls == "" {
		return errors.New("want /prefix/=http://host:port[,http://host:port...]")
	}
	*f.routes = append(*f.routes, forwardRoute{prefix, strings.Split(urls, ",")})
	return nil
}

// listening is what run hands to ready once serving.
type listening struct {
	Site  string // the public listener
	Admin string // the admin listener, or "" without one
}

// run parses args, builds the server and serves until ctx ends. ready, when
// not nil, receives the addresses once serving.
func run(ctx context.Context, args []string, stderr io.Writer, ready chan<- listening) error {
	var cfg web.Config
	fl := flag.NewFlagSet("static", flag.ContinueOnError)
	fl.SetOutput(io.Discard) // errors are reported once, on one line, by main
	fl.StringVar(&cfg.Listen, "listen", web.DefaultListen, "address to serve on")
	fl.StringVar(&cfg.Engine, "engine", web.EngineFast, "what serves HTTP/1.1: fasthttp or net/http (HTTP/2, WebSocket and streamed uploads are net/http's either way)")
	fl.StringVar(&cfg.Files.Root, "root", ".", "directory to serve")
	fl.StringVar(&cfg.TLSCert, "tls-cert", "", "PEM certificate file (with -tls-key: HTTPS and HTTP/2)")
	fl.StringVar(&cfg.TLSKey, "tls-key", "", "PEM key file")
	fl.StringVar(&cfg.RedirectListen, "redirect-http", "", "plain-HTTP address that redirects to HTTPS")
	tier.DurationVar(fl, &cfg.HSTS, "hsts", 0, "Strict-Transport-Security max-age (with TLS), e.g. 8760h")
	fl.BoolVar(&cfg.Files.Listing, "listing", false, "list directories without an index")
	fl.BoolVar(&cfg.Files.SPA, "spa", false, "serve /index.html for browser navigations to missing paths")
	spaExclude := fl.String("spa-exclude", "/api/", "comma-separated path prefixes the SPA fallback leaves alone")
	fl.StringVar(&cfg.Files.ErrorPages, "error-pages", "", "directory under -root with pages for errors, as nginx's error_page: 404.html, 4xx.html, 5xx.html; sent to browsers")
	fl.BoolVar(&cfg.Files.Dotfiles, "dotfiles", false, "serve names starting with a dot")
	fl.BoolVar(&cfg.Files.DisableCompression, "no-compress", false, "no on-the-fly compression (sidecars still served)")
	fl.IntVar(&cfg.Files.CompressLimit, "compress-limit", 0, "most compressions at once, beyond which answers go uncompressed (0: two per core)")
	fl.Int64Var(&cfg.Files.CompressFileMax, "compress-file-max", web.DefaultCompressFileMax, "largest file compressed once and kept compressed in memory; larger ones are compressed while sent")
	fl.Int64Var(&cfg.Files.CompressCacheMaxBytes, "compress-cache-bytes", web.DefaultCompressCacheMax, "bytes of compressed files kept in memory (negative: none)")
	fl.Var(cacheFlag{&cfg.Files.CacheControl}, "cache", "Cache-Control rule pattern=value; repeat for more, first match wins")
	var routes []forwardRoute
	fl.Var(forwardFlag{&routes}, "forward", "hand /prefix/ to the app tier: /prefix/=http://host:port[,...]; repeatable")
	tier.DurationVar(fl, &cfg.BodyTimeout, "body-timeout", tier.DefaultBodyTimeout, "longest a request body may go without a byte arriving (negative: off)")
	tier.DurationVar(fl, &cfg.SendTimeout, "send-timeout", tier.DefaultSendTimeout, "longest a response may go without the client taking a byte (negative: off)")
	tier.DurationVar(fl, &cfg.DrainDelay, "drain-delay", 0, "on SIGTERM, how long to keep serving while /readyz fails, before it stops accepting")
	fl.IntVar(&cfg.MaxConns, "max-conns", tier.DefaultMaxConns, "most client connections open at once (kept below the descriptor limit)")
	accessLog := fl.Bool("access-log", true, "log every request")
	admin := fl.String("admin", "", `admin listener with /metrics, /healthz and /readyz (default THREETIER_ADMIN_LISTEN, else `+tier.DefaultAdminListen+`; "-": none)`)
	fl.StringVar(&cfg.MetricsPath, "metrics", "", "also serve Prometheus metrics on the public listener at this path (off by default: they are on -admin)")
	cpuProfile := fl.String("cpuprofile", "", "write a CPU profile of the whole run to this file (for tuning)")
	help := fl.Bool("h", false, "show this help")
	if err := fl.Parse(args); err != nil {
		return err
	}
	if *help {
		fl.SetOutput(stderr)
		fmt.Fprintln(stderr, "usage: static [flags]")
		fl.PrintDefaults()
		return flag.ErrHelp
	}
	if fl.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (flags only)", fl.Arg(0))
	}
	cfg.Files.SPAExclude = []string{}
	for p := range strings.SplitSeq(*spaExclude, ",") {
		if p = strings.TrimSpace(p); p != "" {
			cfg.Files.SPAExclude = append(cfg.Files.SPAExclude, p)
		}
	}
	if st, err := os.Stat(cfg.Files.Root); err != nil || !st.IsDir() {
		return fmt.Errorf("-root %q is not a directory", cfg.Files.Root)
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return fmt.Errorf("-cpuprofile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("-cpuprofile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}

	// The log settings and the admin listener's are the only variables
	// static reads; Check fails on any other THREETIER_ one rather than let
	// it look honoured.
	env := tier.NewEnv(os.Environ())
	var logCfg tier.LogConfig
	var adminCfg tier.AdminConfig
	if err := errors.Join(env.Load(tier.EnvPrefix, &logCfg), env.Load(tier.AdminEnvPrefix, &adminCfg), env.Check()); err != nil {
		return err
	}
	if *admin != "" {
		adminCfg.Listen = *admin
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
	opts := []web.Option{web.WithTracerProvider(tp), web.WithRegistry(reg), web.WithLogger(log)}
	if !*accessLog { // access lines off; warnings and errors still logged
		opts = append(opts, web.WithAccessLog(tier.AccessLogConfig{Format: tier.AccessLogOff}))
	}
	var tiers []tier.Tier
	for _, rt := range routes {
		pool, err := balancer.New(balancer.Config{Name: "app" + strings.TrimSuffix(rt.prefix, "/"), Endpoints: rt.endpoints}, balancer.WithLogger(log), balancer.WithRegistry(reg), balancer.WithTracerProvider(tp))
		if err != nil {
			return fmt.Errorf("-forward %s: %w", rt.prefix, err)
		}
		tiers = append(tiers, pool)
		opts = append(opts, web.WithForward(pool, web.ForwardConfig{Prefix: rt.prefix}))
	}
	site, err := web.New(cfg, opts...)
	if err != nil {
		return nameFlags(err)
	}
	tiers = append(tiers, site)
	// The admin listener starts last and so stops first: its /readyz
	// fails before the site stops.
	var adm *tier.Admin
	if adminCfg.On() {
		if adm, err = tier.NewAdmin(adminCfg, reg, site.Health(), log); err != nil {
			return fmt.Errorf("-admin: %w", err)
		}
		tiers = append(tiers, adm)
	}
	runner := tier.Runner{Logger: log, StopTimeout: 10 * time.Second, Started: func() {
		scheme := "http"
		if cfg.TLSCert != "" {
			scheme = "https"
		}
		l := listening{Site: site.Addr()}
		if adm != nil {
			l.Admin = adm.Addr()
		}
		log.Info("serving", "url", scheme+"://"+l.Site+"/", "root", cfg.Files.Root, "admin", l.Admin)
		if ready != nil {
			ready <- l
		}
	}}
	return runner.Run(ctx, tiers...)
}

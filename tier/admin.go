package tier

import (
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/threetier/threetier/internal/obs"
)

// AdminEnvPrefix prefixes the admin listener's variables:
// LoadEnv(tier.AdminEnvPrefix, &cfg) reads THREETIER_ADMIN_LISTEN.
const AdminEnvPrefix = EnvPrefix + "ADMIN_"

// DefaultAdminListen is the admin listener's address when none is given:
// loopback, on the port HAProxy's stats page and the balancer's Stats
// take by default, so that one machine has one admin port to know.
const DefaultAdminListen = "127.0.0.1:8404"

// AdminConfig configures an admin listener.
type AdminConfig struct {
	// Listen is the admin listener's address; empty means
	// DefaultAdminListen, "-" means no admin listener. What it serves
	// names internal addresses and counts every request: keep it on
	// loopback or a management network.
	Listen string `env:"LISTEN" json:"listen"`
}

// On reports whether the configuration asks for a listener at all.
func (c AdminConfig) On() bool { return c.Listen != "-" }

// Validate reports an address that cannot be listened on.
func (c AdminConfig) Validate() error {
	if c.Listen != "" && c.Listen != "-" && !strings.Contains(c.Listen, ":") {
		return &ConfigError{Field: "Listen", Value: c.Listen, Problem: "must be host:port", Allowed: `for example 127.0.0.1:8404, or "-" for none`}
	}
	return nil
}

// Admin is a listener for operators rather than clients: Prometheus
// metrics on /metrics, liveness and readiness on /healthz and /readyz, and
// whatever the caller mounts with Handle (a status page, profiles). The
// tiers' public listeners serve no metrics unless asked
// (web.Config.MetricsPath, app.Config.MetricsPath): series name the
// instances behind a tier and count what every client does, which is no
// business of the clients. Anything else answers 404 as problem+json.
type Admin struct {
	*HTTPServer
	mux *http.ServeMux
}

var (
	_ Tier         = (*Admin)(nil)
	_ Failer       = (*Admin)(nil)
	_ http.Handler = (*Admin)(nil)
)

// NewAdmin returns the admin listener of cfg serving reg (none when nil)
// and the probes of health (none when nil). It is a Tier: start it after
// the tiers whose health it reports, so that it stops first and its
// /readyz fails before they stop serving. A cfg that is not On is an
// error: the caller checks On and leaves the listener out.
func NewAdmin(cfg AdminConfig, reg *prometheus.Registry, health *Health, log *slog.Logger) (*Admin, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if !cfg.On() {
		return nil, &ConfigError{Field: "Listen", Value: cfg.Listen, Problem: "the admin listener is off"}
	}
	if cfg.Listen == "" {
		cfg.Listen = DefaultAdminListen
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a := &Admin{mux: http.NewServeMux()}
	if reg != nil {
		a.mux.Handle("/metrics", obs.MetricsHandler(reg))
	}
	if health != nil {
		a.mux.Handle("/healthz", health.LivenessHandler())
		a.mux.Handle("/readyz", health.ReadinessHandler())
	}
	a.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		ServeProblem(w, r, NewProblem(http.StatusNotFound, "no such page on the admin listener"))
	})
	a.HTTPServer = NewHTTPServer("admin", &http.Server{
		Addr:              cfg.Listen,
		Handler:           a,
		ReadHeaderTimeout: 5 * time.Second,
		// A scrape or a probe is a small GET: a client slower than this
		// is not Prometheus.
		ReadTimeout:    15 * time.Second,
		IdleTimeout:    2 * time.Minute,
		MaxHeaderBytes: 16 << 10,
		ErrorLog:       slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}, WithServerLogger(log))
	return a, nil
}

// Handle mounts h on the admin listener at pattern (an http.ServeMux
// pattern), beside the metrics and the probes.
func (a *Admin) Handle(pattern string, h http.Handler) { a.mux.Handle(pattern, h) }

// ServeHTTP serves what the admin listener mounts.
func (a *Admin) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.mux.ServeHTTP(w, r) }

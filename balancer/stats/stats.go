// Package stats is a front door's stats page and runtime API, the way
// HAProxy's stats listener shows a node: its pools and endpoints, the
// cluster's members and what each peer sees, the busiest clients; and,
// with a token, drain, undrain, weight, add, remove, block and unblock at
// run time.
package stats

import (
	"cmp"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/threetier/threetier/balancer"
	"github.com/threetier/threetier/balancer/cluster"
	"github.com/threetier/threetier/balancer/ratelimit"
	"github.com/threetier/threetier/internal/obs"
	"github.com/threetier/threetier/tier"
)

// EnvPrefix is the default prefix of the stats listener's environment
// variables: tier.LoadEnv(stats.EnvPrefix, &cfg) reads
// THREETIER_STATS_LISTEN, THREETIER_STATS_TOKEN and so on.
const EnvPrefix = tier.EnvPrefix + "STATS_"

// Config configures the stats page and runtime API of a front door. The
// zero value serves a read-only page on 127.0.0.1:8404.
type Config struct {
	// Listen is the address of the stats listener; empty means
	// 127.0.0.1:8404. The page names internal addresses: keep it on
	// loopback or a management network.
	Listen string `env:"LISTEN" json:"listen"`
	// Token turns the runtime actions (drain, undrain, weight, add, remove)
	// on: each must carry "Authorization: Bearer <Token>". Empty means the
	// actions are off and answer 403; the page, the JSON and the metrics
	// need no token either way.
	Token string `env:"TOKEN" json:"-"`
	// Refresh is how often the page refreshes itself; zero means 2s.
	Refresh time.Duration `env:"REFRESH" json:"refresh"`
	// Name names this node on the page and in the JSON; empty means the
	// cluster's name for this node (WithClusterView), else the host name.
	Name string `env:"NAME" json:"name"`
	// DrainTimeout caps how long a drain or remove action waits for the
	// endpoint's requests in flight (the client hanging up ends the wait
	// too); zero means 30s. The endpoint stays drained, or removed, when
	// the wait ends first: the action then answers 202 Accepted.
	DrainTimeout time.Duration `env:"DRAIN_TIMEOUT" json:"drain_timeout"`
	// ReadHeaderTimeout bounds the time to read request headers; zero
	// means 5s.
	ReadHeaderTimeout time.Duration `env:"READ_HEADER_TIMEOUT" json:"read_header_timeout"`
	// IdleTimeout closes idle keep-alive connections; zero means 120s.
	IdleTimeout time.Duration `env:"IDLE_TIMEOUT" json:"idle_timeout"`
	// MaxHeaderBytes bounds the request headers; zero means 16 KiB.
	MaxHeaderBytes int `env:"MAX_HEADER_BYTES" json:"max_header_bytes"`
	// SampleInterval is how often each endpoint's load is sampled for its
	// History (the page's sparklines), which keeps the last 60 samples;
	// zero means 5s, five minutes of history.
	SampleInterval time.Duration `env:"SAMPLE_INTERVAL" json:"sample_interval"`
}

// DefaultConfig returns a Config with every default spelled out.
func DefaultConfig() Config { return Config{}.withDefaults() }

func (c Config) withDefaults() Config {
	c.Listen = cmp.Or(c.Listen, "127.0.0.1:8404")
	c.Refresh = cmp.Or(c.Refresh, 2*time.Second)
	c.DrainTimeout = cmp.Or(c.DrainTimeout, 30*time.Second)
	c.ReadHeaderTimeout = cmp.Or(c.ReadHeaderTimeout, 5*time.Second)
	c.IdleTimeout = cmp.Or(c.IdleTimeout, 120*time.Second)
	c.MaxHeaderBytes = cmp.Or(c.MaxHeaderBytes, 16<<10)
	c.SampleInterval = cmp.Or(c.SampleInterval, 5*time.Second)
	return c
}

// Validate reports every invalid setting as a *tier.ConfigError (joined).
func (c Config) Validate() error {
	var errs []error
	for _, d := range []struct {
		name string
		d    time.Duration
	}{{"Refresh", c.Refresh}, {"DrainTimeout", c.DrainTimeout}, {"ReadHeaderTimeout", c.ReadHeaderTimeout}, {"IdleTimeout", c.IdleTimeout}, {"SampleInterval", c.SampleInterval}} {
		if d.d < 0 {
			errs = append(errs, &tier.ConfigError{Field: d.name, Value: d.d.String(), Problem: "must not be negative", Allowed: "0 for the default"})
		}
	}
	if c.Refresh > 0 && c.Refresh < 100*time.Millisecond {
		errs = append(errs, &tier.ConfigError{Field: "Refresh", Value: c.Refresh.String(), Problem: "too short", Allowed: "100ms or more, 0 for 2s"})
	}
	if c.SampleInterval > 0 && c.SampleInterval < 10*time.Millisecond {
		errs = append(errs, &tier.ConfigError{Field: "SampleInterval", Value: c.SampleInterval.String(), Problem: "too short", Allowed: "10ms or more, 0 for 5s"})
	}
	if c.MaxHeaderBytes < 0 {
		errs = append(errs, &tier.ConfigError{Field: "MaxHeaderBytes", Value: fmt.Sprint(c.MaxHeaderBytes), Problem: "must not be negative", Allowed: "0 for 16 KiB"})
	}
	if strings.ContainsAny(c.Token, " \t\r\n") {
		errs = append(errs, &tier.ConfigError{Field: "Token", Problem: "must not contain white space"})
	}
	return errors.Join(errs...)
}

// Stats is a front door's stats page and runtime API, the way HAProxy's
// stats listener shows a node: every pool and endpoint with its state,
// weights, load, errors and latency (with a sparkline of the last minutes),
// the cluster's members and what each peer sees of the endpoints; and,
// with a token, drain, undrain, weight, add and remove at run time, from
// the page's buttons or any HTTP client.
//
// It is an http.Handler, to mount on an admin listener of the caller's,
// and a tier.Tier with a listener of its own (Config.Listen). Between
// Start and Stop it also samples each endpoint's load for the page's
// sparklines (History): a Stats only mounted elsewhere shows none. It
// neither starts nor stops the pools it shows: they are tiers of their
// own.
//
// Routes:
//
//	GET  /                                    the HTML page
//	GET  /api/status                          Report as JSON
//	GET  /metrics                             Prometheus metrics (WithRegistry)
//	POST /api/pools/{pool}/endpoints/{action} a runtime action, see below
//	GET  /api/blocks                          the blocked client keys (token)
//	POST /api/blocks/{block,unblock}          block or unblock a key (token)
//
// Actions are drain, undrain, weight, add and remove; the body is JSON
// {"url": "http://10.0.0.7:8080", "weight": 3, "backup": false} (weight
// only for weight and add, backup only for add), and the answer is the
// pool's Status after the change. Errors are application/problem+json:
// 401 without the right token, 403 when actions are off, 404 for an
// unknown pool, endpoint or action, 400 for a body that is not that JSON,
// 422 for a weight or URL out of range, 409 for adding an endpoint the pool
// has, 405 with Allow for a wrong method.
//
// With a front door's limiter (WithRateLimiter) the page lists the busiest
// clients and the blocks, and the block actions take {"key": "203.0.113.7",
// "for": "10m"} ("for" absent: until unblocked; unblock needs the key
// only) and answer the blocks in force; a block reaches the cluster's
// other nodes when the limiter is shared with the cluster
// (cluster.WithRateLimiter).
type Stats struct {
	*tier.HTTPServer

	cfg     Config
	pools   []*balancer.Pool
	byName  map[string]*balancer.Pool
	cluster ClusterView
	limiter *ratelimit.Limiter // nil without WithRateLimiter
	log     *slog.Logger
	metrics http.Handler // nil without a *prometheus.Registry
	token   [sha256.Size]byte
	mux     *http.ServeMux
	page    *pageRenderer
	history *history
}

var (
	_ tier.Tier    = (*Stats)(nil)
	_ tier.Failer  = (*Stats)(nil)
	_ http.Handler = (*Stats)(nil)
)

// New builds the stats page and API over pools, whose names must differ.
// Its options are WithLogger (runtime actions and refused attempts are
// logged at info and warn level), WithRegistry (served on /metrics when it
// is a *prometheus.Registry), WithClusterView, WithHealth and
// WithRateLimiter.
func New(cfg Config, pools []*balancer.Pool, opts ...Option) (*Stats, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	o := buildOptions(opts)
	s := &Stats{
		cfg:     cfg,
		pools:   slices.Clone(pools),
		byName:  make(map[string]*balancer.Pool, len(pools)),
		cluster: o.cluster,
		limiter: o.limiter,
		log:     obs.Logger(o.logger).With("component", "stats"),
		mux:     http.NewServeMux(),
	}
	for i, p := range pools {
		if p == nil {
			return nil, &tier.ConfigError{Field: fmt.Sprintf("pools[%d]", i), Problem: "nil pool"}
		}
		if s.byName[p.Name()] != nil {
			return nil, &tier.ConfigError{Field: fmt.Sprintf("pools[%d]", i), Value: p.Name(), Problem: "pool name used twice", Allowed: "a distinct Config.Name per pool"}
		}
		s.byName[p.Name()] = p
	}
	if cfg.Token != "" {
		s.token = sha256.Sum256([]byte(cfg.Token))
	}
	if reg, ok := o.registry.(*prometheus.Registry); ok {
		s.metrics = obs.MetricsHandler(reg)
	}
	page, err := newPageRenderer()
	if err != nil {
		return nil, err
	}
	s.page = page
	s.history = newHistory(s.pools, cfg.SampleInterval)
	s.routes(o.health)
	s.HTTPServer = tier.NewHTTPServer(cmp.Or(cfg.Name, "stats"), &http.Server{
		Addr:              cfg.Listen,
		Handler:           s,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		// A page, a JSON document or an action body is small: a client
		// that takes longer than this to send one is not a browser.
		ReadTimeout:    cfg.ReadHeaderTimeout + 10*time.Second,
		IdleTimeout:    cfg.IdleTimeout,
		MaxHeaderBytes: cfg.MaxHeaderBytes,
		ErrorLog:       slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}, tier.WithServerLogger(s.log))
	return s, nil
}

// Start binds the listener and begins sampling the endpoints' load.
func (s *Stats) Start(ctx context.Context) error {
	s.history.start()
	if err := s.HTTPServer.Start(ctx); err != nil {
		s.history.stop()
		return err
	}
	return nil
}

// Stop finishes the requests in flight until ctx ends, then stops the
// sampling.
func (s *Stats) Stop(ctx context.Context) error {
	defer s.history.stop()
	return s.HTTPServer.Stop(ctx)
}

// Config returns the configuration with the defaults filled in (the token
// included: do not log it).
func (s *Stats) Config() Config { return s.cfg }

// Name returns the node's name as the page shows it: Config.Name, else
// the cluster's name for this node, else the host name.
func (s *Stats) Name() string {
	if s.cfg.Name != "" || s.cluster == nil {
		return s.nodeName(nil)
	}
	return s.nodeName(s.cluster.Members())
}

func (s *Stats) routes(health *tier.Health) {
	// Patterns carry no method: each handler answers a wrong one itself,
	// so that 405 (and 404) are problem+json like every other error.
	if health != nil {
		s.mux.Handle("/healthz", health.LivenessHandler())
		s.mux.Handle("/readyz", health.ReadinessHandler())
	}
	s.mux.HandleFunc("/{$}", s.get(s.servePage))
	s.mux.HandleFunc("/api/status", s.get(s.serveStatus))
	s.mux.HandleFunc("/metrics", s.get(s.serveMetrics))
	s.mux.HandleFunc("/api/pools/{pool}/endpoints/{action}", s.serveAction)
	s.mux.HandleFunc("/api/blocks", s.serveBlocks)
	s.mux.HandleFunc("/api/blocks/{action}", s.serveBlocks)
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.problem(w, r, http.StatusNotFound, "no such page: see / for the stats and /api/status for them as JSON")
	})
}

// ServeHTTP serves the page, the JSON, the metrics and the runtime API.
func (s *Stats) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mux.ServeHTTP(w, r)
}

// get lets only GET and HEAD through to h.
func (s *Stats) get(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			s.problem(w, r, http.StatusMethodNotAllowed, "use GET")
			return
		}
		h(w, r)
	}
}

func (s *Stats) problem(w http.ResponseWriter, r *http.Request, status int, detail string) {
	p := tier.NewProblem(status, detail)
	tier.ServeProblem(w, r, p)
}

// Report is everything the stats page shows, as GET /api/status serves
// it.
type Report struct {
	// Node is this node's name (Stats.Name).
	Node string `json:"node"`
	// Generated is when the report was made.
	Generated time.Time `json:"generated"`
	// Actions is true when the runtime actions are on (a token is set).
	Actions bool `json:"actions"`
	// Members are the cluster's nodes, this one included; empty without a
	// cluster view.
	Members []cluster.Member `json:"members,omitempty"`
	// Pools are the pools in the order New was given them.
	Pools []PoolReport `json:"pools"`
	// PeerViews are what the other nodes last reported about the
	// endpoints, sorted by pool, endpoint and node.
	PeerViews []cluster.PeerView `json:"peer_views,omitempty"`
	// RateLimits are the front door's limits, its busiest clients and
	// blocks; absent without WithRateLimiter.
	RateLimits *RateLimitReport `json:"rate_limits,omitempty"`
}

// Report returns the state of every pool and of the cluster now.
func (s *Stats) Report() Report {
	r := Report{
		Generated: time.Now().UTC(),
		Actions:   s.cfg.Token != "",
		Pools:     make([]PoolReport, 0, len(s.pools)),
	}
	if s.cluster != nil {
		r.Members = slices.Clone(s.cluster.Members())
		r.PeerViews = slices.Clone(s.cluster.PeerViews())
		slices.SortFunc(r.PeerViews, func(a, b cluster.PeerView) int {
			return cmp.Or(cmp.Compare(a.Pool, b.Pool), cmp.Compare(a.Endpoint, b.Endpoint), cmp.Compare(a.Node, b.Node))
		})
	}
	r.Node = s.nodeName(r.Members)
	r.RateLimits = s.rateLimitReport()
	for _, p := range s.pools {
		st := p.Status()
		pr := PoolReport{Status: st, Endpoints: make([]EndpointReport, 0, len(st.Endpoints))}
		for _, e := range st.Endpoints {
			pr.Endpoints = append(pr.Endpoints, EndpointReport{EndpointStatus: e, History: s.history.of(st.Pool, e.URL)})
		}
		r.Pools = append(r.Pools, pr)
	}
	return r
}

// PoolReport is a pool's Status with each endpoint's History.
type PoolReport struct {
	balancer.Status
	Endpoints []EndpointReport `json:"endpoints"`
}

// EndpointReport is an endpoint's status and its recent load.
type EndpointReport struct {
	balancer.EndpointStatus
	History History `json:"history"`
}

// nodeName is the configured name, else the cluster's name for this node,
// else the host name: a page always says which node it is on.
func (s *Stats) nodeName(members []cluster.Member) string {
	if s.cfg.Name != "" {
		return s.cfg.Name
	}
	for _, m := range members {
		if m.Self {
			return m.Name
		}
	}
	if h, err := os.Hostname(); err == nil && h != "" {
		return h
	}
	return "balancer"
}

func (s *Stats) serveStatus(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.Report())
}

func (s *Stats) serveMetrics(w http.ResponseWriter, r *http.Request) {
	if s.metrics == nil {
		s.problem(w, r, http.StatusNotFound, "no metrics: the stats page was built without a *prometheus.Registry (WithRegistry)")
		return
	}
	s.metrics.ServeHTTP(w, r)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// authorized reports whether r carries the configured token; it answers
// the request itself when not. Tokens are compared as SHA-256 digests in
// constant time, so that neither their bytes nor their length leak through
// timing.
func (s *Stats) authorized(w http.ResponseWriter, r *http.Request) bool {
	if s.cfg.Token == "" {
		s.refused(r, "actions are off")
		s.problem(w, r, http.StatusForbidden, "runtime actions are off: configure a token (stats.Config.Token) to turn them on")
		return false
	}
	scheme, given, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if ok && strings.EqualFold(scheme, "Bearer") {
		sum := sha256.Sum256([]byte(strings.TrimSpace(given)))
		if subtle.ConstantTimeCompare(sum[:], s.token[:]) == 1 {
			return true
		}
	}
	reason := "no token"
	if r.Header.Get("Authorization") != "" {
		reason = "wrong token"
	}
	s.refused(r, reason)
	w.Header().Set("WWW-Authenticate", `Bearer realm="balancer stats"`)
	s.problem(w, r, http.StatusUnauthorized, "runtime actions need an Authorization: Bearer header with the configured token")
	return false
}

func (s *Stats) refused(r *http.Request, reason string) {
	s.log.WarnContext(r.Context(), "runtime action refused", "reason", reason,
		"action", r.PathValue("action"), "pool", r.PathValue("pool"),
		"remote", r.RemoteAddr, "user_agent", r.UserAgent())
}

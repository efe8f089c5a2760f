// Package app is the business-logic tier of a threetier service: an Echo
// server with the defaults a service behind a balancer needs, and a guard
// in front of every dependency it calls.
//
// The server (New) runs Echo v4 as a tier.Tier. Its chain gives every
// request an ID, logs and measures it, recovers panics, sheds load past a
// cap on requests in flight, limits bodies, bounds each request with a
// timeout (RequestTimeout, or sooner the deadline its caller sent in
// tier.HeaderTimeout: what the web tier's deadline has left) and answers
// every error, Echo's 404 and 405 included, as RFC 9457 problem+json. Bind
// and Handle decode and validate requests so that handlers only see valid
// input. Package app/middleware offers each step of that chain as an Echo
// middleware of its own, for an Echo app that is not a Server.
//
// Guards (NewGuards, Guards.Add) protect the tier from its dependencies:
// each named dependency gets a circuit breaker (sony/gobreaker), a call
// timeout, a bulkhead and budgeted retries for idempotent calls, and the
// generic Do and Call run calls through them, within the request's
// deadline. In front of a database (WithCapacity), a guard admits as many
// calls as its pools serve, keeps a share for reads, and caps the calls
// per locked row (Call.Keys). A guard's refusal becomes a 503 with
// Retry-After and a dependency timeout a 504, with no mapping code in
// handlers; a Call's Fallback answers at once when the dependency is known
// to be down. /readyz lists every guard.
package app

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/threetier/threetier/app/internal/steps"
	"github.com/threetier/threetier/internal/accesslog"
	"github.com/threetier/threetier/internal/obs"
	"github.com/threetier/threetier/internal/tracing"
	"github.com/threetier/threetier/tier"
)

// Server is the app tier: an Echo server with the default chain, run as a
// tier.Tier (Start binds, Stop drains). Add routes on Echo().
type Server struct {
	*tier.HTTPServer

	cfg     Config
	echo    *echo.Echo
	health  *tier.Health
	guards  *Guards
	shed    *steps.Shedder
	metrics *obs.HTTPMetrics
	access  *accesslog.Log
	cors    echo.MiddlewareFunc
	log     *slog.Logger
}

var (
	_ tier.Tier   = (*Server)(nil)
	_ tier.Failer = (*Server)(nil)
)

// New builds the server; it serves once started. Its middleware chain,
// outermost first: request ID, access log and metrics, error answering,
// panic recovery, CORS (when configured), load shedding, body limit,
// request timeout. Routes and middleware added on Echo() run inside it.
// The probe and metrics routes are neither shed nor timed out.
func New(cfg Config, opts ...Option) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	o := buildOptions(opts)
	s := &Server{cfg: cfg, health: o.health, guards: o.guards, log: o.log}
	if s.health == nil {
		s.health = &tier.Health{}
	}
	if s.guards == nil {
		s.guards = newGuards(o)
	}
	s.guards.watch(s.health)
	if o.validator == nil {
		o.validator = NewBodyValidator()
	}

	reg := obs.Registerer(o.reg)
	metrics, err := obs.NewHTTPMetrics(metricsSubsystem, reg)
	if err != nil {
		return nil, fmt.Errorf("app: metrics: %w", err)
	}
	if cfg.MaxInFlight > 0 {
		shed, err := shedMetrics(reg, func() float64 { return float64(s.shed.Limit()) })
		if err != nil {
			return nil, fmt.Errorf("app: metrics: %w", err)
		}
		s.shed = steps.NewShedder(cfg.MaxInFlight, cfg.MinInFlight, cfg.ShedLatency, cfg.ShedRetryAfter, shed.Inc)
	}
	if s.access, err = accesslog.New(o.access, o.log); err != nil {
		return nil, fmt.Errorf("app: access log: %w", err)
	}

	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.Logger.SetOutput(slogWriter{o.log})
	e.HTTPErrorHandler = ErrorHandler(o.log, o.problems)
	e.Validator = o.validator
	// Behind the web tier and the balancers the client's address is in
	// X-Forwarded-For, set by proxies on loopback or private networks.
	e.IPExtractor = echo.ExtractIPFromXFFHeader()
	s.echo = e

	s.metrics = metrics
	if len(cfg.CORSOrigins) > 0 {
		s.cors = middleware.CORSWithConfig(middleware.CORSConfig{AllowOrigins: cfg.CORSOrigins})
	}
	e.Use(s.chain)
	if tracing.On(o.tracer) {
		e.Use(tracing.EchoRoute)
	}
	s.mountInfra(o.reg)

	s.HTTPServer = tier.NewHTTPServer(cfg.Name, &http.Server{
		Addr:              cfg.Listen,
		Handler:           e,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       max(cfg.ReadTimeout, 0),
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(o.log.Handler(), slog.LevelWarn),
	}, tier.WithLimits(cfg.Limits), tier.WithServerLogger(o.log), tier.WithDrain(s.health, cfg.DrainDelay), tier.WithTracerProvider(o.tracer))
	return s, nil
}

// Echo returns the server's Echo instance, to add routes and middleware.
func (s *Server) Echo() *echo.Echo { return s.echo }

// Health returns the Health behind /healthz and /readyz.
func (s *Server) Health() *tier.Health { return s.health }

// Guards returns the registry of guards that /readyz reports on.
func (s *Server) Guards() *Guards { return s.guards }

// Config returns the configuration, defaults filled in.
func (s *Server) Config() Config { return s.cfg }

// isInfra tells the probe and scrape routes apart: they are neither shed
// nor timed out, and they log quietly.
func (s *Server) isInfra(c echo.Context) bool {
	switch c.Path() {
	case "":
		return false // unrouted; also what an unset MetricsPath holds
	case s.cfg.HealthPath, s.cfg.ReadyPath, s.cfg.MetricsPath:
		return true
	}
	return false
}

// readiness is the body of /readyz: the checks of the Health, and every
// guard's state.
type readiness struct {
	tier.Report
	Guards []GuardStatus `json:"guards"`
}

func (s *Server) mountInfra(reg prometheus.Registerer) {
	e := s.echo
	probe := []string{http.MethodGet, http.MethodHead}
	if p := s.cfg.HealthPath; p != "-" {
		e.Match(probe, p, echo.WrapHandler(s.health.LivenessHandler()))
	}
	if p := s.cfg.ReadyPath; p != "-" {
		e.Match(probe, p, s.serveReady)
	}
	if r, ok := reg.(*prometheus.Registry); ok && s.cfg.MetricsPath != "" && s.cfg.MetricsPath != "-" {
		e.GET(s.cfg.MetricsPath, echo.WrapHandler(obs.MetricsHandler(r)))
	}
}

func (s *Server) serveReady(c echo.Context) error {
	report := s.health.Check(c.Request().Context())
	body := readiness{Report: report, Guards: s.guards.Status()}
	h := c.Response().Header()
	h.Set(echo.HeaderContentType, echo.MIMEApplicationJSON)
	h.Set("Cache-Control", "no-store")
	status := http.StatusOK
	if !report.Ready {
		status = http.StatusServiceUnavailable
	}
	c.Response().WriteHeader(status)
	return json.NewEncoder(c.Response()).Encode(body)
}

// slogWriter sends the few lines Echo logs itself to the tier's logger.
type slogWriter struct{ log *slog.Logger }

func (w slogWriter) Write(p []byte) (int, error) {
	w.log.LogAttrs(context.Background(), slog.LevelWarn, "echo", slog.String("msg", string(p)))
	return len(p), nil
}

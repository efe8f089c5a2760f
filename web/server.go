package web

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/threetier/threetier/internal/accesslog"
	"github.com/threetier/threetier/internal/httpedge"
	"github.com/threetier/threetier/internal/obs"
	"github.com/threetier/threetier/internal/tracing"
	"github.com/threetier/threetier/tier"
)

// Server is the web tier: an Echo app that serves the files of
// Config.Files at "/" (when a root or file system is given), with
// security headers, request IDs, access logs and metrics on every route,
// over HTTP or HTTPS with HTTP/2. Add routes and middleware to Echo() as
// with any Echo app; they take precedence over the files.
type Server struct {
	echo     *echo.Echo
	files    *Files
	health   *tier.Health
	main     *tier.HTTPServer
	fast     *fastServer // nil on EngineStd
	redirect *tier.HTTPServer
	log      *slog.Logger

	mu      sync.Mutex
	failed  chan error
	stopped chan struct{}
	watched sync.WaitGroup
}

var (
	_ tier.Tier   = (*Server)(nil)
	_ tier.Failer = (*Server)(nil)
)

// New builds the web tier from cfg. It loads the TLS key pair and opens the
// files root now, so that mistakes show before Start.
func New(cfg Config, opts ...Option) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	o := buildOptions(opts)
	s := &Server{health: &tier.Health{}, log: obs.Logger(o.log), failed: make(chan error, 1)}

	var tlsConfig *tls.Config
	if cfg.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("web: load TLS key pair: %w", err)
		}
		tlsConfig = &tls.Config{
			Certificates: []tls.Certificate{cert},
			MinVersion:   tls.VersionTLS12,
			NextProtos:   []string{"h2", "http/1.1"},
		}
	}

	met, err := obs.NewHTTPMetrics(metricsSubsystem, o.reg)
	if err != nil {
		return nil, err
	}
	access, err := accesslog.New(o.access, o.log)
	if err != nil {
		return nil, fmt.Errorf("web: access log: %w", err)
	}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = s.handleError
	security := securityHeaders(cfg, tlsConfig != nil)
	e.Use(edge(security, met, access, s.log))
	if tracing.On(o.tracer) {
		e.Use(tracing.EchoRoute)
	}
	e.GET("/healthz", echo.WrapHandler(s.health.LivenessHandler()))
	e.GET("/readyz", echo.WrapHandler(s.health.ReadinessHandler()))
	if reg, ok := o.reg.(*prometheus.Registry); ok && cfg.MetricsPath != "" && cfg.MetricsPath != "-" {
		e.GET(cfg.MetricsPath, echo.WrapHandler(obs.MetricsHandler(reg)))
	}
	s.echo = e

	forwards := make(map[string]*Forwarder)
	for _, f := range o.forwards {
		fw, err := NewForwarder(f.pool, f.cfg, opts...)
		if err != nil {
			return nil, err
		}
		h := fw.echoHandler
		for _, route := range []string{f.cfg.Prefix + "*", strings.TrimSuffix(f.cfg.Prefix, "/")} {
			e.Any(route, h)
			forwards[route] = fw
		}
		// The tier is ready only while it can forward: /readyz lists the
		// pool under its name.
		s.health.Register(f.pool.Name(), f.pool)
	}
	if cfg.Files.Root != "" || o.fsys != nil {
		if s.files, err = NewFiles(cfg.Files, opts...); err != nil {
			return nil, err
		}
		e.Any(s.files.cfg.Prefix+"*", s.files.EchoHandler())
	}

	serverOpts := []tier.ServerOption{tier.WithLimits(cfg.Limits), tier.WithServerLogger(s.log), tier.WithDrain(s.health, cfg.DrainDelay), tier.WithTracerProvider(o.tracer)}
	if cfg.Engine == EngineFast {
		fast := newFastServer(e, s.files, forwards, security, met, access, s.log)
		fast.traced = tracing.On(o.tracer)
		s.fast = fast
		serverOpts = append(serverOpts, tier.WithFastHTTP1(fast.serve))
	}
	s.main = tier.NewHTTPServer(cfg.Name, &http.Server{
		Addr:              cfg.Listen,
		Handler:           e,
		TLSConfig:         tlsConfig,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ConnContext:       ConnContext,
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}, serverOpts...)
	if cfg.RedirectListen != "" {
		s.redirect = tier.NewHTTPServer(cfg.Name+"-redirect", &http.Server{
			Addr:              cfg.RedirectListen,
			Handler:           httpedge.RedirectHTTPS(s.main.Addr),
			ReadHeaderTimeout: cfg.ReadHeaderTimeout,
			IdleTimeout:       cfg.IdleTimeout,
			MaxHeaderBytes:    cfg.MaxHeaderBytes,
		}, tier.WithLimits(cfg.Limits), tier.WithServerLogger(s.log))
	}
	return s, nil
}

// Echo returns the Echo app the tier runs, to add routes and middleware.
func (s *Server) Echo() *echo.Echo { return s.echo }

// Files returns the file handler mounted at Config.Files.Prefix, or nil
// when no files are served.
func (s *Server) Files() *Files { return s.files }

// Health returns the readiness checks behind /healthz and /readyz.
func (s *Server) Health() *tier.Health { return s.health }

// Name returns Config.Name, "web" by default.
func (s *Server) Name() string { return s.main.Name() }

// Addr returns the address the server listens on once started.
func (s *Server) Addr() string { return s.main.Addr() }

// RedirectAddr returns the plain-HTTP redirect address, or "" without one.
func (s *Server) RedirectAddr() string {
	if s.redirect == nil {
		return ""
	}
	return s.redirect.Addr()
}

// Start binds the listeners and begins serving.
func (s *Server) Start(ctx context.Context) error {
	if s.fast != nil {
		s.fast.settle()
	}
	if err := s.main.Start(ctx); err != nil {
		return err
	}
	if s.redirect != nil {
		if err := s.redirect.Start(ctx); err != nil {
			_ = s.main.Stop(ctx)
			return fmt.Errorf("redirect listener: %w", err)
		}
	}
	stopped := make(chan struct{})
	s.mu.Lock()
	s.stopped = stopped
	s.mu.Unlock()
	s.watch(s.main, stopped)
	if s.redirect != nil {
		s.watch(s.redirect, stopped)
	}
	return nil
}

// watch passes a listener's failure on to Failed until stopped closes.
func (s *Server) watch(h *tier.HTTPServer, stopped <-chan struct{}) {
	s.watched.Add(1)
	go func() {
		defer s.watched.Done()
		select {
		case err := <-h.Failed():
			select {
			case s.failed <- fmt.Errorf("%s: %w", h.Name(), err):
			default:
			}
		case <-stopped:
		}
	}()
}

// Failed yields an error if a listener stops serving on its own.
func (s *Server) Failed() <-chan error { return s.failed }

// Drain fails /readyz and marks every answer as leaving for the drain
// delay (Config.DrainDelay), serving all the while; see tier.Drainer.
func (s *Server) Drain(ctx context.Context) error { return s.main.Drain(ctx) }

// Stop drains unless Drain was called, stops accepting, finishes in-flight
// requests until ctx ends, and releases the files root.
func (s *Server) Stop(ctx context.Context) error {
	var errs []error
	if s.redirect != nil {
		errs = append(errs, s.redirect.Stop(ctx))
	}
	errs = append(errs, s.main.Stop(ctx))
	s.mu.Lock()
	if s.stopped != nil {
		close(s.stopped)
		s.stopped = nil
	}
	s.mu.Unlock()
	s.watched.Wait()
	if s.files != nil {
		errs = append(errs, s.files.Close())
	}
	return errors.Join(errs...)
}

// handleError answers every error a handler returns as a problem, or with
// the page FilesConfig.ErrorPages holds for its status.
func (s *Server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	r, w := c.Request(), c.Response()
	var p *tier.Problem
	var he *echo.HTTPError
	switch {
	case errors.As(err, &p):
	case errors.As(err, &he):
		detail := http.StatusText(he.Code)
		if msg, ok := he.Message.(string); ok {
			detail = msg
		}
		p = tier.NewProblem(he.Code, detail)
	default:
		s.log.ErrorContext(r.Context(), "web: handler error", "method", r.Method, "path", r.URL.Path, "err", err)
		p = tier.NewProblem(http.StatusInternalServerError, "internal error")
	}
	if s.files != nil {
		refuse(s.files, httpExchange{w: w, r: r}, p)
		return
	}
	tier.ServeProblem(w, r, p)
}

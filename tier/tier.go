// Package tier is what every layer of a threetier service shares: the Tier
// lifecycle and Run (ordered start, reverse graceful stop), health and
// readiness endpoints, configuration from the environment, slog logging with
// request IDs, and a Prometheus registry that is never the global one.
//
// The data, app, web and balancer packages each provide tiers; a main
// composes them with Run:
//
//	ctx, stop := tier.SignalContext(context.Background())
//	defer stop()
//	err := tier.Run(ctx, db, api, site)
package tier

import "context"

// A Tier is one layer of a service: it starts, serves, and stops gracefully.
type Tier interface {
	// Name identifies the tier in logs and errors ("data", "app", "web", ...).
	Name() string
	// Start binds and begins serving; it returns once the tier is ready to
	// take traffic, or with the reason it cannot.
	Start(ctx context.Context) error
	// Stop stops accepting new work and drains in-flight work until ctx ends.
	Stop(ctx context.Context) error
}

// A Failer is a Tier that can fail after Start returned (a listener that
// dies, a worker that gives up). Run watches Failed and, when it yields an
// error, stops every tier and returns that error.
type Failer interface {
	// Failed yields at most one error, when the tier stops serving on its own.
	// It is never closed by a clean Stop.
	Failed() <-chan error
}

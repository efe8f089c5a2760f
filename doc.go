// Package threetier is an embeddable Go framework for the classic three-tier
// web architecture, scaled up: the split that used to be two HAProxy nodes,
// an nginx box, an application server and a database server, composed in Go
// from packages imported one by one.
//
//	    clients (browsers, other services)
//	          |                 |
//	+---------v----+   +--------v-----+   balancer cluster: redundant
//	|  balancer A  |<->|  balancer B  |   front doors that take over
//	+------+-------+   +------+-------+   for each other
//	       |  client-side balancing  |
//	+------v------+     +------v------+
//	|  web tier   |     |  web tier   |   static files; forwards
//	+------+------+     +------+------+   dynamic routes to the app tier
//	       |  client-side balancing  |
//	+------v------+     +------v------+
//	|  app tier   |     |  app tier   |   business logic behind guards:
//	+------+------+     +------+------+   breakers, timeouts, retries
//	       |                   |
//	+------v-------------------v------+
//	|            data tier            |   GORM: PostgreSQL, or embedded
//	+---------------------------------+   SQLite by default
//
// Every arrow between tiers goes through package balancer in the caller's own
// process, so there is no proxy hop that can fail alone.
//
// The packages:
//
//   - tier: what every tier shares — the Tier lifecycle and Run (ordered
//     start, reverse graceful stop), /healthz and /readyz, configuration from
//     the environment, slog logging with request IDs, Prometheus metrics, and
//     RFC 9457 problem+json errors.
//   - balancer: client-side load balancing over the instances of the next
//     tier: policies, active and passive health checks, retries with a budget,
//     discovery. Any Go code balances by swapping its http.RoundTripper. Its
//     Proxy is the front door (the HAProxy node); balancer/cluster joins such
//     nodes, and balancer/stats is their stats page and runtime API.
//   - web: the static web tier on Echo: serves files as well as nginx does and
//     forwards dynamic routes to the app tier.
//   - app: the business-logic tier on Echo: per-dependency guards (circuit
//     breaker, timeout, retry, bulkhead), load shedding, request binding and
//     validation, errors as problem+json.
//   - data: the data tier on GORM: PostgreSQL in production, an embedded
//     pure-Go SQLite by default, transactions that retry, migrations, error
//     classification.
//
// Each package is usable alone. A service starts its tiers with tier.Run:
//
//	ctx, stop := tier.SignalContext(context.Background())
//	defer stop()
//	if err := tier.Run(ctx, db, api, site); err != nil {
//		log.Fatal(err)
//	}
//
// The examples directory holds runnable services to copy; start with
// examples/hello.
package threetier

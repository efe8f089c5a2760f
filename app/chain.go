package app

import (
	"time"

	"github.com/labstack/echo/v4"
	"github.com/threetier/threetier/app/internal/steps"
)

// chain is the server's default middleware chain, run as one Echo
// middleware: Echo wraps each request's handler in every middleware anew
// (an allocation each), and the steps share one clock reading and one
// request copy. Each step is also a middleware of its own, for Echo apps
// that are not a Server (package app/middleware). In order, outermost
// first:
//
//  1. request ID, into the context and the response header;
//  2. access log and metrics, once the answer is out;
//  3. error answering: every error becomes problem+json here, so that the
//     log and the metrics see the final status;
//  4. panic recovery;
//  5. CORS, when configured;
//  6. load shedding;
//  7. body limit;
//  8. request timeout, through the context: the request ID's context
//     carries the deadline (RequestTimeout, or the caller's
//     tier.HeaderTimeout when sooner), so that both cost one allocation.
//
// Probe and scrape routes are neither shed nor timed out, and log quietly.
func (s *Server) chain(next echo.HandlerFunc) echo.HandlerFunc {
	h := next
	if s.cors != nil {
		h = s.cors(h)
	}
	return func(c echo.Context) error {
		start := time.Now()
		s.metrics.Begin()
		defer s.metrics.End() // also when a handler aborts with a panic
		infra := s.isInfra(c)

		var deadline time.Time
		if !infra {
			deadline = steps.RequestDeadline(c.Request(), start, s.cfg.RequestTimeout, s.log)
		}
		ctx := steps.RequestContext(c, nil, deadline)
		defer ctx.Release()
		c.SetRequest(c.Request().WithContext(ctx))

		if err := s.serve(c, h, infra, start, deadline); err != nil {
			c.Error(err)
		}
		end := time.Now()
		steps.Record(s.metrics, c, end.Sub(start))
		steps.LogAccess(s.access, c, start, end, infra)
		return nil
	}
}

// serve runs h inside recovery, shedding, the body limit and the request
// timeout's mapping (deadline, when not zero).
func (s *Server) serve(c echo.Context, h echo.HandlerFunc, infra bool, start, deadline time.Time) error {
	return steps.Recovering(s.log, c, func(c echo.Context) error {
		if s.shed != nil && !infra {
			n, ok := s.shed.Admit()
			if !ok {
				return s.shed.Refusal()
			}
			defer s.shed.Release(n, start)
		}
		if s.cfg.MaxBodyBytes > 0 {
			if err := steps.LimitBody(c, s.cfg.MaxBodyBytes); err != nil {
				return err
			}
		}
		err := h(c)
		if !deadline.IsZero() {
			err = steps.TimedOut(c.Request().Context(), err, deadline.Sub(start), ErrTimeout)
		}
		return err
	})
}

package app

import (
	"context"
	"errors"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// guardTrace makes the internal span of each call through one guard.
type guardTrace struct {
	tracer trace.Tracer
	name   string
	attr   attribute.KeyValue
}

// newGuardTrace returns nil when there is no tracer.
func newGuardTrace(t trace.Tracer, guard string) *guardTrace {
	if t == nil {
		return nil
	}
	return &guardTrace{tracer: t, name: "guard " + guard, attr: attribute.String("threetier.guard.name", guard)}
}

// run is guarded, in a span when the guard traces: its attempts, and what
// they call, are the span's children.
func (g *Guard) run(ctx context.Context, k callKind, fn func(context.Context) error) error {
	if g.trace == nil {
		return g.guarded(ctx, k, fn)
	}
	ctx, span := g.trace.tracer.Start(ctx, g.trace.name, trace.WithSpanKind(trace.SpanKindInternal),
		trace.WithAttributes(g.trace.attr, attribute.Bool("threetier.guard.idempotent", k.idempotent)))
	err := g.guarded(ctx, k, fn)
	outcome := g.callOutcome(ctx, err)
	span.SetAttributes(attribute.String("threetier.guard.outcome", outcome))
	if err != nil && outcome != "not_failure" && outcome != "fallback" {
		span.RecordError(err)
		span.SetStatus(codes.Error, outcome)
	}
	span.End()
	return err
}

// callOutcome is how a call ended, as its caller sees it: the outcome
// names of the guard's metrics, and the guard's refusals.
func (g *Guard) callOutcome(ctx context.Context, err error) string {
	switch {
	case err == nil:
		return "success"
	case err == errAnsweredEarly:
		return "fallback"
	case errors.Is(err, ErrBreakerOpen):
		return "breaker_open"
	case errors.Is(err, ErrBulkheadFull):
		return "bulkhead_full"
	case errors.Is(err, ErrRetryBudget):
		return "retry_budget"
	case errors.Is(err, ErrKeyBusy):
		return "key_busy"
	case errors.Is(err, context.Canceled) && ctx.Err() != nil:
		return "canceled"
	case errors.Is(err, ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case !g.isFailure(err):
		return "not_failure"
	}
	return "failure"
}

package tracing

import (
	"context"

	"github.com/labstack/echo/v4"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// Route names ctx's server span after the route that matched ("GET
// /api/greetings/:id"): a name per route, not per URL, keeps the span
// names few.
func Route(ctx context.Context, method, route string) {
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() || route == "" {
		return
	}
	span.SetName(method + " " + route)
	span.SetAttributes(attribute.String("http.route", route))
}

// EchoRoute is Echo middleware that names each request's server span by
// its route; add it only when tracing.
func EchoRoute(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		Route(r.Context(), r.Method, c.Path())
		return next(c)
	}
}

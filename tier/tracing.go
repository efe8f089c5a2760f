package tier

import "go.opentelemetry.io/otel/trace"

// WithTracerProvider gives every request the server takes a server span
// from tp, a child of the traceparent it came with. A nil or no-op
// provider leaves the server as it is.
func WithTracerProvider(tp trace.TracerProvider) ServerOption {
	return func(s *HTTPServer) { s.tracer = tp }
}

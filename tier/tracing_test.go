package tier_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/threetier/threetier/tier"
)

func TestTracingOffUnlessConfigured(t *testing.T) {
	for _, environ := range [][]string{
		nil,
		{"OTEL_SERVICE_NAME=shop"},
		{"OTEL_TRACES_EXPORTER=none", "OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318"},
		{"OTEL_SDK_DISABLED=true", "OTEL_TRACES_EXPORTER=otlp"},
	} {
		tp, shutdown, err := tier.Tracing(context.Background(), environ)
		if err != nil {
			t.Fatalf("%v: %v", environ, err)
		}
		if _, off := tp.(noop.TracerProvider); !off {
			t.Errorf("%v: tracing on (%T)", environ, tp)
		}
		if err := shutdown(context.Background()); err != nil {
			t.Error(err)
		}
	}
}

func TestTracingOn(t *testing.T) {
	for _, environ := range [][]string{
		{"OTEL_TRACES_EXPORTER=otlp"},
		{"OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318", "OTEL_TRACES_SAMPLER=traceidratio", "OTEL_TRACES_SAMPLER_ARG=0.5"},
	} {
		tp, shutdown, err := tier.Tracing(context.Background(), environ)
		if err != nil {
			t.Fatalf("%v: %v", environ, err)
		}
		if _, on := tp.(*sdktrace.TracerProvider); !on {
			t.Errorf("%v: got %T", environ, tp)
		}
		if err := shutdown(context.Background()); err != nil {
			t.Error(err)
		}
	}
}

func TestTracingBadSetting(t *testing.T) {
	for env, bad := range map[string]string{
		"OTEL_TRACES_EXPORTER=zipkin":      "OTEL_TRACES_EXPORTER",
		"OTEL_TRACES_SAMPLER=sometimes":    "OTEL_TRACES_SAMPLER",
		"OTEL_EXPORTER_OTLP_PROTOCOL=grpc": "OTEL_EXPORTER_OTLP_PROTOCOL",
		"OTEL_TRACES_SAMPLER_ARG=2":        "OTEL_TRACES_SAMPLER_ARG",
	} {
		environ := []string{"OTEL_TRACES_EXPORTER=otlp", "OTEL_TRACES_SAMPLER=traceidratio", env}
		_, _, err := tier.Tracing(context.Background(), environ)
		var ce *tier.ConfigError
		if !errors.As(err, &ce) || ce.Var != bad {
			t.Errorf("%s: got %v, want a ConfigError on %s", env, err, bad)
		}
	}
}

func TestLogLinesCarryTheTrace(t *testing.T) {
	var buf bytes.Buffer
	log, err := tier.NewLogger(tier.LogConfig{Format: "json"}, &buf)
	if err != nil {
		t.Fatal(err)
	}
	tp := sdktrace.NewTracerProvider()
	defer func() { _ = tp.Shutdown(context.Background()) }()
	ctx, span := tp.Tracer("test").Start(context.Background(), "request")
	log.With("tier", "app").InfoContext(ctx, "traced")
	span.End()
	log.InfoContext(context.Background(), "untraced")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	sc := span.SpanContext()
	if want := `"trace_id":"` + sc.TraceID().String() + `","span_id":"` + sc.SpanID().String() + `"`; !strings.Contains(lines[0], want) {
		t.Errorf("traced line %s lacks %s", lines[0], want)
	}
	if strings.Contains(lines[1], "trace_id") {
		t.Errorf("untraced line %s has a trace ID", lines[1])
	}
}

package otlp_test

import (
	"context"
	"errors"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/threetier/threetier/tier"
	"github.com/threetier/threetier/tier/otlp"
)

func TestTracingOffUnlessConfigured(t *testing.T) {
	for _, environ := range [][]string{
		nil,
		{"OTEL_SERVICE_NAME=shop"},
		{"OTEL_TRACES_EXPORTER=none", "OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318"},
		{"OTEL_SDK_DISABLED=true", "OTEL_TRACES_EXPORTER=otlp"},
	} {
		tp, shutdown, err := otlp.Tracing(context.Background(), environ)
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
		tp, shutdown, err := otlp.Tracing(context.Background(), environ)
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
		_, _, err := otlp.Tracing(context.Background(), environ)
		var ce *tier.ConfigError
		if !errors.As(err, &ce) || ce.Var != bad {
			t.Errorf("%s: got %v, want a ConfigError on %s", env, err, bad)
		}
	}
}

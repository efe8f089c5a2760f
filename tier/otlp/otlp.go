// Package otlp sets up OpenTelemetry tracing from the standard OTEL_*
// variables, exporting spans over OTLP/HTTP. It is a package of its own so
// that only a main that imports it links the exporter (and gRPC with
// it); the tiers take any trace.TracerProvider.
package otlp

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/threetier/threetier/tier"
)

// Tracing sets up OpenTelemetry tracing from the standard OTEL_* variables
// in environ (os.Environ() in a main). It is off, a no-op provider the
// tiers skip at no cost, unless OTEL_TRACES_EXPORTER is "otlp" or an OTLP
// endpoint (OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT)
// is set; OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none turn it off.
// When on, spans are batched to the endpoint over OTLP/HTTP, sampled as
// OTEL_TRACES_SAMPLER says (parent-based always-on by default), with the
// resource of OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES. The
// exporter's other settings (headers, timeout, TLS) it reads from the
// process environment.
//
// Hand the provider to each tier with its WithTracerProvider option; no
// global OpenTelemetry state is set. Call shutdown at exit to flush the
// spans still queued.
func Tracing(ctx context.Context, environ []string) (tp trace.TracerProvider, shutdown func(context.Context) error, err error) {
	env := envMap(environ)
	off := noop.NewTracerProvider()
	none := func(context.Context) error { return nil }
	if strings.EqualFold(env["OTEL_SDK_DISABLED"], "true") {
		return off, none, nil
	}
	endpoint, perSignal := env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"], true
	if endpoint == "" {
		endpoint, perSignal = env["OTEL_EXPORTER_OTLP_ENDPOINT"], false
	}
	switch exp := env["OTEL_TRACES_EXPORTER"]; exp {
	case "none":
		return off, none, nil
	case "":
		if endpoint == "" {
			return off, none, nil
		}
	case "otlp":
	default:
		return nil, nil, &tier.ConfigError{Var: "OTEL_TRACES_EXPORTER", Value: exp, Problem: "unsupported trace exporter", Allowed: "otlp, none"}
	}
	if p := env["OTEL_EXPORTER_OTLP_PROTOCOL"]; p != "" && p != "http/protobuf" {
		return nil, nil, &tier.ConfigError{Var: "OTEL_EXPORTER_OTLP_PROTOCOL", Value: p, Problem: "unsupported protocol", Allowed: "http/protobuf"}
	}
	sampler, err := samplerFrom(env)
	if err != nil {
		return nil, nil, err
	}
	var opts []otlptracehttp.Option
	if endpoint != "" {
		if !perSignal {
			// The shared endpoint is a base; each signal has its own path.
			endpoint = strings.TrimSuffix(endpoint, "/") + "/v1/traces"
		}
		opts = append(opts, otlptracehttp.WithEndpointURL(endpoint))
	}
	exporter, err := otlptracehttp.New(ctx, opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("tracing: %w", err)
	}
	res, err := resource.New(ctx, resource.WithTelemetrySDK(), resource.WithAttributes(resourceAttrs(env)...))
	if err != nil {
		return nil, nil, fmt.Errorf("tracing: %w", err)
	}
	sdk := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exporter), sdktrace.WithResource(res), sdktrace.WithSampler(sampler))
	return sdk, sdk.Shutdown, nil
}

func envMap(environ []string) map[string]string {
	env := make(map[string]string)
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, "OTEL_") {
			env[k] = v
		}
	}
	return env
}

// resourceAttrs is OTEL_RESOURCE_ATTRIBUTES (k=v,k=v) with
// OTEL_SERVICE_NAME over it, and the spec's default service name.
func resourceAttrs(env map[string]string) []attribute.KeyValue {
	service := "unknown_service:" + filepath.Base(os.Args[0])
	var attrs []attribute.KeyValue
	for kv := range strings.SplitSeq(env["OTEL_RESOURCE_ATTRIBUTES"], ",") {
		k, v, ok := strings.Cut(kv, "=")
		if k = strings.TrimSpace(k); !ok || k == "" {
			continue
		}
		if k == "service.name" {
			service = strings.TrimSpace(v)
			continue
		}
		attrs = append(attrs, attribute.String(k, strings.TrimSpace(v)))
	}
	if s := env["OTEL_SERVICE_NAME"]; s != "" {
		service = s
	}
	return append(attrs, attribute.String("service.name", service))
}

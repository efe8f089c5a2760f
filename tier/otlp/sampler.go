package otlp

import (
	"strconv"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/threetier/threetier/tier"
)

// samplerFrom reads OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG.
func samplerFrom(env map[string]string) (sdktrace.Sampler, error) {
	ratio := func() (float64, error) {
		arg := env["OTEL_TRACES_SAMPLER_ARG"]
		if arg == "" {
			return 1, nil
		}
		r, err := strconv.ParseFloat(arg, 64)
		if err != nil || r < 0 || r > 1 {
			return 0, &tier.ConfigError{Var: "OTEL_TRACES_SAMPLER_ARG", Value: arg, Problem: "not a ratio", Allowed: "0 to 1"}
		}
		return r, nil
	}
	switch name := env["OTEL_TRACES_SAMPLER"]; name {
	case "", "parentbased_always_on":
		return sdktrace.ParentBased(sdktrace.AlwaysSample()), nil
	case "always_on":
		return sdktrace.AlwaysSample(), nil
	case "always_off":
		return sdktrace.NeverSample(), nil
	case "parentbased_always_off":
		return sdktrace.ParentBased(sdktrace.NeverSample()), nil
	case "traceidratio", "parentbased_traceidratio":
		r, err := ratio()
		if err != nil {
			return nil, err
		}
		if name == "traceidratio" {
			return sdktrace.TraceIDRatioBased(r), nil
		}
		return sdktrace.ParentBased(sdktrace.TraceIDRatioBased(r)), nil
	default:
		return nil, &tier.ConfigError{Var: "OTEL_TRACES_SAMPLER", Value: name, Problem: "unknown sampler",
			Allowed: "always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off, parentbased_traceidratio"}
	}
}

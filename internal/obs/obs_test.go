package obs_test

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/threetier/threetier/internal/obs"
)

func TestRegisterSharedReusesTheRegisteredCollector(t *testing.T) {
	reg := prometheus.NewRegistry()
	opts := prometheus.CounterOpts{Name: "shared_total", Help: "h"}
	first, err := obs.RegisterShared(reg, prometheus.NewCounter(opts))
	if err != nil {
		t.Fatal(err)
	}
	second, err := obs.RegisterShared(reg, prometheus.NewCounter(opts))
	if err != nil || second != first {
		t.Fatalf("second registration: %v, same collector %v", err, second == first)
	}

	// The same name with another type is a conflict, not a share.
	if _, err := obs.RegisterShared(reg, prometheus.NewGauge(prometheus.GaugeOpts{Name: "shared_total", Help: "h"})); err == nil {
		t.Fatal("a gauge under a counter's name registered")
	}
}

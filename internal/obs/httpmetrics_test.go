package obs_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/threetier/threetier/internal/obs"
)

func TestHTTPMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := obs.NewHTTPMetrics("app", reg)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		m.Begin()
		m.Observe(http.MethodGet, "/items/:id", 200, time.Millisecond, 10)
		m.End()
	}
	m.Observe("BREW", "", 404, time.Millisecond, 0)
	want := `
# HELP threetier_app_requests_total Requests answered, by method, route and status code.
# TYPE threetier_app_requests_total counter
threetier_app_requests_total{code="200",method="GET",route="/items/:id"} 3
threetier_app_requests_total{code="404",method="OTHER",route="unmatched"} 1
# HELP threetier_app_response_bytes_total Response body bytes sent.
# TYPE threetier_app_response_bytes_total counter
threetier_app_response_bytes_total 30
# HELP threetier_app_requests_in_flight Requests being answered.
# TYPE threetier_app_requests_in_flight gauge
threetier_app_requests_in_flight 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "threetier_app_requests_total", "threetier_app_response_bytes_total", "threetier_app_requests_in_flight"); err != nil {
		t.Fatal(err)
	}
	if _, err := obs.NewHTTPMetrics("app", reg); err != nil {
		t.Fatalf("a second server on the registry: %v", err)
	}
}

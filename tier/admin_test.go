package tier_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/threetier/threetier/tier"
)

// The admin listener serves the metrics, the probes of the Health it is
// given and what is mounted on it; everything else is a 404 problem.
func TestAdminServesMetricsProbesAndMounts(t *testing.T) {
	reg := tier.NewRegistry()
	h := &tier.Health{}
	var down error
	h.Register("db", tier.CheckFunc(func(context.Context) error { return down }))
	a, err := tier.NewAdmin(tier.AdminConfig{Listen: "127.0.0.1:0"}, reg, h, nil)
	if err != nil {
		t.Fatal(err)
	}
	a.Handle("GET /status", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "fine") }))
	if err := a.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = a.Stop(ctx)
	})
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	get := func(path string) (int, string, string) {
		t.Helper()
		resp, err := c.Get("http://" + a.Addr() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("Content-Type"), string(b)
	}
	if code, _, body := get("/metrics"); code != 200 || !strings.Contains(body, "go_goroutines") {
		t.Fatalf("/metrics: %d %.200s", code, body)
	}
	if code, _, _ := get("/healthz"); code != 200 {
		t.Fatalf("/healthz: %d", code)
	}
	if code, _, _ := get("/readyz"); code != 200 {
		t.Fatalf("/readyz: %d", code)
	}
	down = errors.New("refused")
	if code, _, body := get("/readyz"); code != 503 || !strings.Contains(body, "refused") {
		t.Fatalf("/readyz with the database down: %d %s", code, body)
	}
	if code, _, body := get("/status"); code != 200 || body != "fine" {
		t.Fatalf("/status: %d %s", code, body)
	}
	if code, ct, _ := get("/debug/vars"); code != 404 || ct != "application/problem+json" {
		t.Fatalf("/debug/vars: %d %s", code, ct)
	}
}

func TestAdminWithoutRegistryOrHealth(t *testing.T) {
	a, err := tier.NewAdmin(tier.AdminConfig{}, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if a.Addr() != tier.DefaultAdminListen {
		t.Errorf("address %s, want %s", a.Addr(), tier.DefaultAdminListen)
	}
	for _, path := range []string{"/metrics", "/healthz", "/readyz"} {
		w := httptest.NewRecorder()
		a.ServeHTTP(w, httptest.NewRequest("GET", path, nil))
		if w.Code != 404 {
			t.Errorf("%s without a registry or health: %d, want 404", path, w.Code)
		}
	}
}

func TestAdminConfigErrors(t *testing.T) {
	for _, listen := range []string{"-", "nowhere"} {
		if _, err := tier.NewAdmin(tier.AdminConfig{Listen: listen}, nil, nil, nil); err == nil || !strings.Contains(err.Error(), "Listen") {
			t.Errorf("Listen %q: %v", listen, err)
		}
	}
	var cfg tier.AdminConfig
	err := tier.LoadEnvFrom([]string{tier.AdminEnvPrefix + "LISTEN=nowhere"}, tier.AdminEnvPrefix, &cfg)
	if err == nil || !strings.Contains(err.Error(), "THREETIER_ADMIN_LISTEN") {
		t.Errorf("bad variable: %v", err)
	}
	if (tier.AdminConfig{Listen: "-"}).On() || !(tier.AdminConfig{}).On() {
		t.Error("On: want off for \"-\" only")
	}
}

package balancer

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/threetier/threetier/tier"
)

// TestTLSServerName: https endpoints found in DNS are addresses, so their
// certificates are checked against the name looked up.
func TestTLSServerName(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		d    Discoverer
		want string
	}{
		{Config{}, nil, ""},
		{Config{TLSServerName: "app.internal"}, &DNS{Host: "x", Scheme: "https"}, "app.internal"},
		{Config{}, &DNS{Host: "app.default.svc.cluster.local.", Scheme: "https"}, "app.default.svc.cluster.local"},
		{Config{}, &DNS{Host: "_https._tcp.app.service.consul", SRV: true, Scheme: "https"}, "app.service.consul"},
		{Config{}, &DNS{Host: "app", Scheme: "http"}, ""},
	} {
		if got := tlsServerName(tc.cfg, tc.d); got != tc.want {
			t.Errorf("%+v %+v: %q, want %q", tc.cfg, tc.d, got, tc.want)
		}
	}
}

func TestProxyLimitsFromEnv(t *testing.T) {
	var cfg ProxyConfig
	err := tier.LoadEnvFrom([]string{"THREETIER_PROXY_BODY_TIMEOUT=5s", "THREETIER_PROXY_SEND_TIMEOUT=7s", "THREETIER_PROXY_MAX_CONNS=300"}, ProxyEnvPrefix, &cfg)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.BodyTimeout != 5*time.Second || cfg.SendTimeout != 7*time.Second || cfg.MaxConns != 300 {
		t.Fatalf("%+v", cfg.Limits)
	}
	if d := DefaultProxyConfig(); d.BodyTimeout != tier.DefaultBodyTimeout || d.SendTimeout != tier.DefaultSendTimeout || d.MaxConns != tier.DefaultMaxConns {
		t.Fatalf("defaults: %+v", d.Limits)
	}
}

func TestProxyEngineConfig(t *testing.T) {
	var cfg ProxyConfig
	if err := tier.LoadEnvFrom([]string{"THREETIER_PROXY_ENGINE=net/http"}, ProxyEnvPrefix, &cfg); err != nil || cfg.Engine != EngineStd {
		t.Fatalf("%q %v", cfg.Engine, err)
	}
	if d := DefaultProxyConfig(); d.Engine != EngineFast {
		t.Fatalf("default engine %q", d.Engine)
	}
	var ce *tier.ConfigError
	if err := (ProxyConfig{Engine: "nbio"}).Validate(); !errors.As(err, &ce) || ce.Field != "Engine" {
		t.Fatalf("bad engine: %v", err)
	}
	// A pool with a transport of its own is served on net/http.
	pool := newPool(t, Config{Endpoints: []string{"http://upstream.test"}}, WithTransport(http.DefaultTransport))
	px, err := NewProxy(ProxyConfig{}, []*Pool{pool})
	if err != nil || px.Config().Engine != EngineStd {
		t.Fatalf("engine %q %v", px.Config().Engine, err)
	}
}

// TestOptionsThatDoNotApply: an option a constructor does not read is an
// error naming it, not a setting silently dropped.
func TestOptionsThatDoNotApply(t *testing.T) {
	pool := newPool(t, Config{Endpoints: []string{"http://127.0.0.1:1"}})
	_, err := NewProxy(ProxyConfig{Listen: "127.0.0.1:0"}, []*Pool{pool}, WithLogger(nil), WithDiscovery(Static{}), WithTransport(http.DefaultTransport))
	if err == nil || !strings.Contains(err.Error(), "WithDiscovery does not apply to NewProxy") || !strings.Contains(err.Error(), "WithTransport does not apply to NewProxy") {
		t.Errorf("NewProxy: %v", err)
	}
	_, err = New(Config{Endpoints: []string{"http://127.0.0.1:1"}}, WithRegistry(nil), WithAccessLog(tier.AccessLogConfig{}))
	if err == nil || err.Error() != "balancer: WithAccessLog does not apply to New" {
		t.Errorf("New: %v", err)
	}
}

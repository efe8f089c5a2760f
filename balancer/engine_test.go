package balancer

import (
	"context"
	"testing"
	"time"
)

// engines are the ways a Proxy serves HTTP/1.1; the proxy tests run on
// each.
var engines = []string{EngineStd, EngineFast}

// forEngine runs f as a subtest per engine.
func forEngine(t *testing.T, f func(t *testing.T, engine string)) {
	t.Helper()
	for _, engine := range engines {
		t.Run(engine, func(t *testing.T) { f(t, engine) })
	}
}

// startProxyOn builds a front-door node on engine over pools, listening on
// 127.0.0.1:0 unless cfg says otherwise, starts it, stops it when the test
// ends, and returns it with its URL.
func startProxyOn(t testing.TB, engine string, cfg ProxyConfig, pools []*Pool, opts ...Option) (*Proxy, string) {
	t.Helper()
	cfg.Engine = engine
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	px, err := NewProxy(cfg, pools, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if err := px.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = px.Stop(ctx)
	})
	return px, "http://" + px.Addr()
}

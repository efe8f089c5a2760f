package balancer

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
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

// fastEngineWired reports whether the tier's HTTPServer serves the fast
// engine in this build.
func fastEngineWired() bool { return len(withFastEngine(nil)) > 0 }

// skipUnwired skips a test of the fast engine's listener while the tier
// does not serve it.
func skipUnwired(t *testing.T, engine string) {
	t.Helper()
	if engine == EngineFast && !fastEngineWired() {
		t.Skip("the tier's HTTPServer has no fast engine in this build")
	}
}

// startProxyOn builds a front-door node on engine over pools, listening on
// 127.0.0.1:0 unless cfg says otherwise, starts it, stops it when the test
// ends, and returns it with its URL. While the tier has no fast engine,
// EngineFast serves serveFast on a bare fasthttp server instead, so the
// fast path is tested through a listener all the same (without what the
// tier's engine hands over to net/http).
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
	if engine == EngineFast && !fastEngineWired() {
		return px, serveBare(t, px)
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

// serveBare serves px.serveFast on a fasthttp server over a loopback
// listener.
func serveBare(t testing.TB, px *Proxy) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{
		Handler:                      px.serveFast,
		NoDefaultServerHeader:        true,
		DisablePreParseMultipartForm: true,
		MaxRequestBodySize:           64 << 10,
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Shutdown(); <-done })
	return "http://" + ln.Addr().String()
}

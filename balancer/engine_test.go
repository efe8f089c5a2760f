package balancer

import (
	"net"
	"net/http/httptest"
	"testing"

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

// serveProxy serves px on engine over a loopback listener and returns its
// URL: EngineStd through ServeHTTP, EngineFast through serveFast on a
// fasthttp server configured as the front door's.
func serveProxy(t testing.TB, px *Proxy, engine string) string {
	t.Helper()
	if engine == EngineStd {
		front := httptest.NewServer(px)
		t.Cleanup(front.Close)
		return front.URL
	}
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

package balancer

import (
	"context"
	"testing"

	"github.com/threetier/threetier/internal/framingtest"
)

// TestProxyFraming sends every request-smuggling vector to a front door:
// each is answered 400 (or 405, 501) as a problem, the connection closes,
// and the upstream never sees the request hidden behind the bad framing.
func TestProxyFraming(t *testing.T) {
	up := framingtest.NewUpstream(t)
	pool := newPool(t, Config{Name: "app", Endpoints: []string{up.URL}, Retry: RetryConfig{Attempts: 2}})
	px, err := NewProxy(ProxyConfig{Listen: "127.0.0.1:0"}, []*Pool{pool})
	if err != nil {
		t.Fatal(err)
	}
	if err := px.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = px.Stop(context.Background()) })
	framingtest.Run(t, px.Addr(), up)
}

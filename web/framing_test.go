package web

import (
	"testing"

	"github.com/threetier/threetier/balancer"
	"github.com/threetier/threetier/internal/framingtest"
)

// TestForwardFraming sends every request-smuggling vector to the web
// tier, under a forwarded prefix: each is answered as a problem and the
// connection closes, and the app tier never sees the request hidden
// behind the bad framing.
func TestForwardFraming(t *testing.T) {
	forEachEngine(t, func(t *testing.T, eng engine) {
		up := framingtest.NewUpstream(t)
		pool := newPool(t, balancer.Config{Name: "app", Endpoints: []string{up.URL}})
		s := startServer(t, eng, Config{Files: FilesConfig{Root: newTree(t).root}}, WithForward(pool, ForwardConfig{Prefix: "/api/"}))
		framingtest.Run(t, framingtest.TCP(s.Addr()), up)
	})
}

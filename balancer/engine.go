package balancer

import (
	"github.com/valyala/fasthttp"

	"github.com/threetier/threetier/tier"
)

// withFastEngine is the server option that serves the listener's HTTP/1.1
// requests with h on fasthttp (tier.WithFastHTTP1).
func withFastEngine(h fasthttp.RequestHandler) []tier.ServerOption {
	return []tier.ServerOption{tier.WithFastHTTP1(h)}
}

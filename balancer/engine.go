package balancer

import (
	"github.com/valyala/fasthttp"

	"github.com/threetier/threetier/tier"
)

// withFastEngine is the server option that serves the listener's HTTP/1.1
// requests with h on fasthttp. Until the tier's HTTPServer has the
// engine, it has none and the listener stays on net/http.
func withFastEngine(h fasthttp.RequestHandler) []tier.ServerOption {
	_ = h
	return nil
}

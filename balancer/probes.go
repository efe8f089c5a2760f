package balancer

import (
	"net/http"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"

	"github.com/threetier/threetier/tier"
)

// probes answers ProxyConfig.HealthPath and ReadyPath on the node's own
// listener, on either engine, before any routing.
type probes struct {
	healthPath, readyPath string
	live, ready           http.Handler
	fastLive, fastReady   fasthttp.RequestHandler
}

func newProbes(cfg ProxyConfig, h *tier.Health) probes {
	p := probes{live: h.LivenessHandler(), ready: h.ReadinessHandler()}
	if cfg.HealthPath != "-" {
		p.healthPath = cfg.HealthPath
	}
	if cfg.ReadyPath != "-" {
		p.readyPath = cfg.ReadyPath
	}
	// Probes are rare next to forwarded requests: net/http's handlers
	// through the adaptor are cheap enough, and answer alike.
	p.fastLive = fasthttpadaptor.NewFastHTTPHandler(p.live)
	p.fastReady = fasthttpadaptor.NewFastHTTPHandler(p.ready)
	return p
}

// handler is the probe served at path, or nil.
func (p *probes) handler(path string) http.Handler {
	switch {
	case path == "":
		return nil
	case path == p.healthPath:
		return p.live
	case path == p.readyPath:
		return p.ready
	}
	return nil
}

// fastHandler is handler for the fast engine.
func (p *probes) fastHandler(path string) fasthttp.RequestHandler {
	switch {
	case path == "":
		return nil
	case path == p.healthPath:
		return p.fastLive
	case path == p.readyPath:
		return p.fastReady
	}
	return nil
}

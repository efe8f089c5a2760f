package balancer

import (
	"net/http"

	"github.com/threetier/threetier/internal/httpx"
)

// leaving reports whether resp says its endpoint is draining
// (httpx.DrainingHeader), and removes the header: it is for this hop.
func leaving(resp *http.Response) bool {
	if _, ok := resp.Header[httpx.DrainingHeader]; !ok {
		return false
	}
	resp.Header.Del(httpx.DrainingHeader)
	return true
}

// drained takes e out of rotation at once because it said it is leaving.
// With active health checks it is down until they pass again (Rise in a
// row, so once the restarted instance is ready); without them it is out for
// BaseEjection. Neither counts as a failure nor against
// MaxEjectionPercent: a deliberate departure says nothing of the rest, and
// when every endpoint is leaving at once, panic routing still reaches them
// while they drain.
func (p *Pool) drained(e *endpoint, now int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if e.removed.Load() {
		return
	}
	if p.cfg.Health.Path != "" {
		if e.down.Load() {
			return
		}
		e.mu.Lock()
		e.checkRun = 0
		e.mu.Unlock()
		e.down.Store(true)
		p.rebuild()
		p.notify(Change{Endpoint: e.key, Kind: ChangeDown})
		p.log.Info("endpoint draining: out until its health checks pass", "endpoint", e.key)
		return
	}
	if e.ejected(now) {
		return
	}
	until := now + int64(p.cfg.Outlier.BaseEjection)
	e.ejectedTo.Store(until)
	e.ejectedAt.Store(now)
	p.rebuild()
	p.notify(Change{Endpoint: e.key, Kind: ChangeEject, Until: until})
	p.log.Info("endpoint draining: out for a while", "endpoint", e.key, "for", p.cfg.Outlier.BaseEjection)
}

package balancer

import "time"

// ChangeKind is what happened to an endpoint, as a Pool tells its
// observers (Observe).
type ChangeKind uint8

const (
	ChangeEject   ChangeKind = iota + 1 // outlier detection took it out until Change.Until
	ChangeUneject                       // its ejection is over
	ChangeDown                          // active health checks failed
	ChangeUp                            // active health checks passed
)

// Change is one endpoint state change of a pool, as Observe reports it.
type Change struct {
	// Endpoint is the endpoint's URL as the pool names it (its Status's URL).
	Endpoint string
	Kind     ChangeKind
	// Until is when a ChangeEject ends, in Unix nanoseconds by this
	// machine's clock.
	Until int64
	// Peer is set when the change only ends what ApplyPeers started (a
	// peer's ejection ran out): not this pool's own observation.
	Peer bool
}

// observer is told of a pool's changes; see Observe.
type observer struct{ fn func(Change) }

// notify tells every observer of c; p.mu held.
func (p *Pool) notify(c Change) {
	for _, o := range p.observers {
		o.fn(c)
	}
}

// Observe adds fn as an observer of the pool's endpoint state changes:
// ejections and their end, downs and ups found by health checks. It is
// what a cluster of front doors (balancer/cluster) shares with its peers.
//
// Under the same lock, so that no change falls between, it first calls
// seed with each endpoint's current state as this pool observed it itself
// (ejected until, in Unix nanoseconds, or 0; down), leaving out what
// ApplyPeers set. fn and seed run with the pool's lock held, on whatever
// goroutine made the change (a request that failed, a health check, a
// timer): they must return at once and never call back into the pool.
// Calling the returned remove stops fn's calls.
func (p *Pool) Observe(fn func(Change), seed func(endpoint string, until int64, down bool)) (remove func()) {
	o := &observer{fn: fn}
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now().UnixNano()
	for _, e := range p.eps {
		if e.removed.Load() {
			continue
		}
		var until int64
		if e.ejected(now) && !e.peerEjected.Load() {
			until = e.ejectedTo.Load()
		}
		seed(e.key, until, e.down.Load() && !e.peerDown.Load())
	}
	p.observers = append(p.observers, o)
	return func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		for i, x := range p.observers {
			if x == o {
				p.observers = append(p.observers[:i:i], p.observers[i+1:]...)
				return
			}
		}
	}
}

// ApplyPeers makes the endpoint named key reflect what other front doors
// (balancer/cluster's peers) report of it together: ejected until `until`
// (Unix nanoseconds by this machine's clock; 0 or past for not ejected)
// and down. It reports whether the pool changed; an unknown or removed
// endpoint changes nothing. Observers are not told: what peers report is
// not this pool's own observation.
//
// The pool's own observations stay authoritative: a peer's ejection never
// shortens or replaces one of this pool's own, and a peer's "up" never
// ends a down found by this pool's health checks; a peer's report ends
// only what a peer report started. The pool's limits hold against peers
// as against its own detection: a peer's ejection is refused when it would
// exceed Outlier.MaxEjectionPercent (peers' and own ejections counted
// together), and a peer's down when it would leave no endpoint available,
// so that the cluster can never take the last endpoints out. A refused
// report is not retried until the next report about the pool arrives.
// Nothing here touches the ejection streak or the ejection count, which
// are this pool's own, and no peer's ejection lasts longer than
// Outlier.MaxEjection from now.
func (p *Pool) ApplyPeers(key string, until int64, down bool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	e := p.find(key)
	if e == nil || e.removed.Load() {
		return false
	}
	now := time.Now().UnixNano()
	// No peer ejects for longer than this pool would itself.
	until = min(until, now+int64(p.cfg.Outlier.MaxEjection))
	changed := false
	ejected := e.ejected(now)
	switch {
	case until > now && ejected && e.peerEjected.Load():
		if e.ejectedTo.Load() != until {
			e.ejectedTo.Store(until)
			changed = true
		}
	case until > now && !ejected:
		if n, ok := p.mayEject(now); !ok {
			p.log.Debug("peer's ejection not applied: too many ejected already", "endpoint", key, "ejected", n, "max_percent", p.cfg.Outlier.MaxEjectionPercent)
			break
		}
		e.peerEjected.Store(true)
		e.ejectedTo.Store(until)
		e.ejectedAt.Store(now)
		changed = true
		p.log.Info("endpoint ejected by a peer", "endpoint", key, "for", time.Duration(until-now).Round(time.Millisecond))
	case until <= now && ejected && e.peerEjected.Load():
		e.ejectedTo.Store(0)
		e.peerEjected.Store(false)
		p.warm(e)
		changed = true
		p.log.Info("endpoint back: peers ended its ejection", "endpoint", key)
	}
	switch {
	case down && !e.down.Load():
		if !p.othersAvailable(e, now) {
			p.log.Debug("peer's down not applied: it would leave no endpoint available", "endpoint", key)
			break
		}
		e.down.Store(true)
		e.peerDown.Store(true)
		changed = true
		p.log.Info("endpoint down by a peer's health checks", "endpoint", key)
	case !down && e.peerDown.Load():
		e.peerDown.Store(false)
		e.down.Store(false)
		p.warm(e)
		changed = true
		p.log.Info("endpoint up: peers' health checks pass", "endpoint", key)
	}
	if changed {
		p.rebuild()
	}
	return changed
}

// othersAvailable reports whether some endpoint other than e can take
// requests on its own merit; p.mu held.
func (p *Pool) othersAvailable(e *endpoint, now int64) bool {
	for _, x := range p.eps {
		if x != e && x.available(now) {
			return true
		}
	}
	return false
}

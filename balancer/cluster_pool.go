package balancer

import "time"

// changeKind is what happened to an endpoint, as a Pool tells its observers.
type changeKind uint8

const (
	changeEject   changeKind = iota + 1 // outlier detection took it out until change.until
	changeUnEject                       // its ejection is over
	changeDown                          // active health checks failed
	changeUp                            // active health checks passed
)

// change is one endpoint state change of a pool.
type change struct {
	endpoint string
	kind     changeKind
	until    int64 // changeEject: unix nanos, local clock
	// peer is set when the change only ends what a Cluster peer reported
	// (its ejection ran out): not this pool's own observation.
	peer bool
}

// observer is told of a pool's changes. It runs with the pool's mu held, on
// whatever goroutine made the change (a request that failed, a health
// check, a timer): it must return at once and never call back into the
// pool. The Cluster's observer only queues the change for its sender.
type observer struct{ fn func(change) }

// notify tells every observer of c; p.mu held.
func (p *Pool) notify(c change) {
	for _, o := range p.observers {
		o.fn(c)
	}
}

// observe adds fn as an observer and, under the same lock so that no change
// falls between, calls seed with each endpoint's own current state (ejected
// until, down) as this pool observed it, peers' reports left out. The
// returned func removes the observer.
func (p *Pool) observe(fn func(change), seed func(endpoint string, until int64, down bool)) (remove func()) {
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

// applyPeers makes endpoint key reflect what Cluster peers report of it:
// ejected until `until` (unix nanos, local clock; 0 or past for not
// ejected) and down. It reports whether the pool changed.
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
func (p *Pool) applyPeers(key string, until int64, down bool) bool {
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

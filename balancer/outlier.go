package balancer

import (
	"net/http"
	"time"
)

// failed records a failed attempt on e: a transport error, or when err is
// nil a 5xx answer, refused when it is a deliberate refusal. It ejects e
// after enough failures in a row; a refusal is counted but left out of
// that run (see OutlierConfig).
func (p *Pool) failed(e *endpoint, now int64, err error, refused bool) {
	e.failures.Add(1)
	if err != nil && neverSent(err) {
		select { // ask discovery, if running, to look again soon
		case p.resolveNow <- struct{}{}:
		default:
		}
	}
	if p.cfg.Outlier.Disable || refused {
		return
	}
	if int(e.consec.Add(1)) >= p.cfg.Outlier.ConsecutiveFailures {
		p.eject(e, now, err)
	}
}

// refusal reports whether an answer of status, with a Retry-After header
// or not, is a deliberate refusal that outlier detection leaves out (see
// OutlierConfig).
func (p *Pool) refusal(status int, retryAfter bool) bool {
	return status == http.StatusServiceUnavailable && !p.cfg.Outlier.CountRefusals && retryAfter
}

// succeeded records a good attempt: the failure run ends, and an endpoint
// that has served well since its last ejection for as long as that ejection
// lasted starts its next ejection from the base length again.
func (p *Pool) succeeded(e *endpoint, now int64) {
	if e.consec.Load() != 0 {
		e.consec.Store(0)
	}
	if s := e.streak.Load(); s > 0 && time.Duration(now-e.backAt.Load()) >= p.ejectionLength(s) {
		e.streak.CompareAndSwap(s, 0)
	}
}

// ejectionLength is the length of ejection number n in a streak:
// BaseEjection·2ⁿ⁻¹, at most MaxEjection.
func (p *Pool) ejectionLength(n uint32) time.Duration {
	d := p.cfg.Outlier.BaseEjection
	for i := uint32(1); i < n && d < p.cfg.Outlier.MaxEjection; i++ {
		d *= 2
	}
	return min(d, p.cfg.Outlier.MaxEjection)
}

// eject takes e out of rotation for its next ejection length, unless that
// would eject more than MaxEjectionPercent of the endpoints.
func (p *Pool) eject(e *endpoint, now int64, cause error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if e.removed.Load() || e.ejected(now) {
		return
	}
	ejected, ok := p.mayEject(now)
	if !ok {
		if e.consec.Load() == int32(p.cfg.Outlier.ConsecutiveFailures) {
			p.log.Warn("endpoint failing but not ejected: too many ejected already", "endpoint", e.key, "ejected", ejected, "max_percent", p.cfg.Outlier.MaxEjectionPercent)
		}
		return
	}
	n := e.streak.Add(1)
	d := p.ejectionLength(n)
	e.ejectedTo.Store(now + int64(d))
	e.ejectedAt.Store(now)
	e.peerEjected.Store(false)
	e.ejections.Add(1)
	e.consec.Store(0)
	// Only health checks made since the ejection may end it early.
	e.mu.Lock()
	e.checkRun = min(e.checkRun, 0)
	e.mu.Unlock()
	p.rebuild()
	p.notify(Change{Endpoint: e.key, Kind: ChangeEject, Until: now + int64(d)})
	reason := "5xx responses"
	if cause != nil {
		reason = cause.Error()
	}
	p.log.Warn("endpoint ejected", "endpoint", e.key, "for", d, "ejections_in_a_row", n, "last_failure", reason)
}

// unEject brings e back at `at` from its ejection (ending at `to`), through
// slow start; p.mu held.
func (p *Pool) unEject(e *endpoint, to, at int64) bool {
	if !e.ejectedTo.CompareAndSwap(to, 0) {
		return false
	}
	peer := e.peerEjected.Swap(false)
	if !peer { // a peer's ejection is no part of this pool's streak
		e.backAt.Store(at)
	}
	if p.cfg.SlowStart > 0 {
		e.warmFrom.Store(at)
	}
	p.notify(Change{Endpoint: e.key, Kind: ChangeUneject, Peer: peer})
	return true
}

// servedWhileEjected ends e's ejection when an attempt sent to it after
// the ejection began (start, unix nanos) was answered well. An ejected
// endpoint gets a request only when nothing better was left (panic
// routing, a last resort), so such an answer proves it serves again; an
// attempt sent before the ejection proves nothing of what came since.
func (p *Pool) servedWhileEjected(e *endpoint, start, now int64) {
	if e.ejected(now) && start >= e.ejectedAt.Load() {
		p.endEjection(e, now, "it answered a request")
	}
}

// endEjection brings e back before its ejection ends, because it proved
// it serves (why): an instance restarted within its ejection is not kept
// out while the others fail.
func (p *Pool) endEjection(e *endpoint, now int64, why string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	to := e.ejectedTo.Load()
	if e.removed.Load() || to == 0 || now >= to || !p.unEject(e, to, now) {
		return
	}
	p.rebuild()
	p.log.Info("endpoint back from ejection early", "endpoint", e.key, "because", why, "ejection_left", time.Duration(to-now))
}

// mayEject reports whether one more endpoint may be ejected now under
// MaxEjectionPercent, whoever asks (this pool or a peer, ApplyPeers), and how
// many are ejected already; p.mu held.
func (p *Pool) mayEject(now int64) (ejected int, ok bool) {
	total := 0
	for _, x := range p.eps {
		if x.removed.Load() {
			continue
		}
		total++
		if x.ejected(now) {
			ejected++
		}
	}
	// The limit holds after this ejection: 50% of 3 endpoints is one.
	return ejected, (ejected+1)*100 <= total*p.cfg.Outlier.MaxEjectionPercent
}

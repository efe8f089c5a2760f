package balancer

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"
)

// checkLoop checks e now and then every Health.Interval ±10% until ctx
// ends. first, when set, is told after the first check.
func (p *Pool) checkLoop(ctx context.Context, e *endpoint, first *sync.WaitGroup) {
	p.checkOnce(ctx, e, true)
	if first != nil {
		first.Done()
	}
	interval := p.cfg.Health.Interval
	timer := time.NewTimer(interval)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		p.checkOnce(ctx, e, false)
		jitter := time.Duration(rand.Int64N(int64(interval)/5+1)) - interval/10
		timer.Reset(interval + jitter)
	}
}

// checkOnce makes one health check of e and moves it down after Fall
// failures in a row, up after Rise passes in a row. The first check after
// Start decides at once.
func (p *Pool) checkOnce(ctx context.Context, e *endpoint, initial bool) {
	err := p.probe(ctx, e)
	if ctx.Err() != nil {
		return // stopping or removed: the result means nothing
	}
	e.mu.Lock()
	e.checkAt, e.checkOK = time.Now(), err == nil
	e.checkErr = ""
	if err != nil {
		e.checkErr = err.Error()
		e.checkRun = min(e.checkRun, 0) - 1
	} else {
		e.checkRun = max(e.checkRun, 0) + 1
	}
	run := e.checkRun
	e.mu.Unlock()

	// Local checks overrule a peer's report both ways: a down that only
	// peers reported (peerDown) ends at the next passing check, and
	// failing checks make it this pool's own.
	switch down := e.down.Load(); {
	case down && err == nil && (initial || run >= p.cfg.Health.Rise):
		p.mu.Lock()
		e.down.Store(false)
		e.peerDown.Store(false)
		p.warm(e)
		p.rebuild()
		p.notify(Change{Endpoint: e.key, Kind: ChangeUp})
		p.mu.Unlock()
		p.log.Info("endpoint up", "endpoint", e.key, "passes", run)
	case (!down || e.peerDown.Load()) && err != nil && (initial || -run >= p.cfg.Health.Fall):
		p.mu.Lock()
		e.down.Store(true)
		e.peerDown.Store(false)
		p.rebuild()
		p.notify(Change{Endpoint: e.key, Kind: ChangeDown})
		p.mu.Unlock()
		p.log.Warn("endpoint down", "endpoint", e.key, "failures", -run, "err", err)
	}
	// Passing checks since its ejection (Rise in a row, as for a down)
	// bring an ejected endpoint back before its time: it was restarted.
	if now := time.Now().UnixNano(); err == nil && run >= p.cfg.Health.Rise && e.ejected(now) {
		p.endEjection(e, now, "its health checks pass")
	}
}

// probe requests the health path of e once.
func (p *Pool) probe(ctx context.Context, e *endpoint) error {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.Health.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.key+p.cfg.Health.Path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "threetier-balancer-health")
	resp, err := p.transport.RoundTrip(req)
	if err != nil {
		return err
	}
	discard(resp.Body)
	if leaving(resp) {
		p.drained(e, time.Now().UnixNano())
		return fmt.Errorf("draining (status %d)", resp.StatusCode)
	}
	want := p.cfg.Health.ExpectStatus
	if (want != 0 && resp.StatusCode != want) || (want == 0 && (resp.StatusCode < 200 || resp.StatusCode >= 400)) {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

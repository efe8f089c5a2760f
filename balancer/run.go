package balancer

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/threetier/threetier/internal/retry"
)

// runState is what exists between Start and Stop: the health check and
// discovery goroutines.
type runState struct {
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	checks map[*endpoint]context.CancelFunc
	first  *sync.WaitGroup // first check of each endpoint present at Start
}

// Start runs discovery once (when configured), then health checks (when
// configured); it returns when every endpoint has had its first check, so
// that traffic starts on a known state. Discovery failing at Start is an
// error only when the pool has no endpoint at all.
func (p *Pool) Start(ctx context.Context) error {
	p.mu.Lock()
	if p.run != nil {
		p.mu.Unlock()
		return errors.New("balancer: already started")
	}
	runCtx, cancel := context.WithCancel(context.Background())
	var first sync.WaitGroup
	rs := &runState{ctx: runCtx, cancel: cancel, checks: make(map[*endpoint]context.CancelFunc), first: &first}
	p.run = rs
	p.mu.Unlock()

	if p.discovery != nil {
		if err := p.discover(ctx); err != nil {
			p.mu.Lock()
			empty := len(p.eps) == 0
			p.mu.Unlock()
			if empty {
				_ = p.Stop(context.Background())
				return fmt.Errorf("balancer %q: discovery: %w", p.cfg.Name, err)
			}
		}
		rs.wg.Go(func() { p.discoveryLoop(runCtx) })
	}

	p.mu.Lock()
	for _, e := range p.eps {
		rs.watch(p, e)
	}
	rs.first = nil
	p.mu.Unlock()
	done := make(chan struct{})
	go func() { first.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		_ = p.Stop(context.Background())
		<-done
		return ctx.Err()
	}
}

// Stop ends health checks and discovery and waits for their goroutines, and
// closes the idle connections of the pool's own transport. Requests in
// flight are not affected, and the pool keeps balancing over the endpoints
// it knows.
func (p *Pool) Stop(ctx context.Context) error {
	p.mu.Lock()
	rs := p.run
	p.run = nil
	p.mu.Unlock()
	if rs == nil {
		return nil
	}
	rs.cancel()
	done := make(chan struct{})
	go func() { rs.wg.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
		<-done // every loop returns promptly once cancelled
	}
	if p.ownedTr != nil {
		p.ownedTr.CloseIdleConnections()
	}
	if p.fast != nil {
		p.fast.CloseIdle()
	}
	return err
}

// watch starts e's health checks; p.mu held.
func (rs *runState) watch(p *Pool, e *endpoint) {
	if _, ok := rs.checks[e]; ok || p.cfg.Health.Path == "" {
		return
	}
	ctx, cancel := context.WithCancel(rs.ctx)
	rs.checks[e] = cancel
	first := rs.first
	if first != nil {
		first.Add(1)
	}
	rs.wg.Go(func() { p.checkLoop(ctx, e, first) })
}

// unwatch stops e's health checks; p.mu held.
func (rs *runState) unwatch(e *endpoint) {
	if cancel := rs.checks[e]; cancel != nil {
		cancel()
		delete(rs.checks, e)
	}
}

// discoveryLoop asks the Discoverer again every interval, and soon (at
// most once a second) after an endpoint fails to connect.
func (p *Pool) discoveryLoop(ctx context.Context) {
	const minGap = time.Second
	timer := time.NewTimer(p.cfg.DiscoveryInterval)
	defer timer.Stop()
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-p.resolveNow:
			if wait := minGap - time.Since(last); wait > 0 && !retry.Sleep(ctx, wait) {
				return
			}
		}
		last = time.Now()
		_ = p.discover(ctx)
		timer.Reset(p.cfg.DiscoveryInterval)
	}
}

// discover asks the Discoverer and reconciles the pool with its answer:
// new endpoints join (through slow start), endpoints that stay keep their
// state, discovered endpoints that left are removed. Static endpoints are
// never removed. An error or an empty answer changes nothing.
func (p *Pool) discover(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, min(p.cfg.DiscoveryInterval, 10*time.Second))
	defer cancel()
	found, err := p.discovery.Discover(ctx)
	if err != nil {
		p.log.Warn("discovery failed; keeping the current endpoints", "err", err)
		return err
	}
	if len(found) == 0 {
		p.log.Warn("discovery found no endpoint; keeping the current ones")
		return nil
	}
	type want struct {
		weight int
		backup bool
	}
	wanted := make(map[string]want, len(found))
	var order []string
	for _, f := range found {
		u, err := parseEndpointURL(f.URL)
		if err != nil {
			p.log.Warn("discovery returned a bad endpoint; skipped", "url", f.URL, "err", err)
			continue
		}
		w, err := checkWeight(f.Weight)
		if err != nil {
			w = min(max(f.Weight, 1), MaxWeight)
		}
		if _, dup := wanted[u.String()]; !dup {
			order = append(order, u.String())
		}
		wanted[u.String()] = want{w, f.Backup}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	var added, removed int
	have := make(map[string]bool, len(p.eps))
	for _, e := range append([]*endpoint(nil), p.eps...) {
		have[e.key] = true
		w, ok := wanted[e.key]
		switch {
		case ok && !e.static:
			e.weight.Store(int32(w.weight))
			e.backup.Store(w.backup)
		case !ok && !e.static:
			p.drop(e)
			removed++
		}
	}
	for _, key := range order {
		if have[key] {
			continue
		}
		u, _ := parseEndpointURL(key)
		w := wanted[key]
		p.admit(newEndpoint(u, w.weight, w.backup, false, p.cfg.EWMADecay))
		added++
	}
	p.rebuild()
	if added+removed > 0 {
		p.log.Info("discovery changed the pool", "added", added, "removed", removed, "endpoints", len(p.eps))
	}
	return nil
}

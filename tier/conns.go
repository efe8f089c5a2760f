package tier

import (
	"errors"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// connSet holds a server's open connections, to keep them under MaxConns
// by closing the one that matters least when a new one arrives.
type connSet struct {
	want        int // MaxConns
	sendTimeout time.Duration
	epoch       time.Time // the base of now(): monotonic, cheap to store
	report      *limitReport

	budget atomic.Pointer[ConnBudget] // the one the server shares, if any

	mu    sync.Mutex
	max   int // the cap: want, or less to stay within the descriptor limit
	conns []*trackedConn
}

func newConnSet(l Limits, fdLimit uint64, report *limitReport) *connSet {
	return &connSet{want: l.MaxConns, max: l.connCap(fdLimit), sendTimeout: l.SendTimeout, epoch: time.Now(), report: report}
}

// capacity returns the cap in force.
func (s *connSet) capacity() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.max
}

// setCap changes the cap; connections over a lowered one go as new ones
// arrive.
func (s *connSet) setCap(n int) {
	s.mu.Lock()
	s.max = n
	s.mu.Unlock()
}

// now is the time since epoch, on the monotonic clock.
func (s *connSet) now() int64 { return int64(time.Since(s.epoch)) }

// at turns a now() value back into a time.
func (s *connSet) at(t int64) time.Time { return s.epoch.Add(time.Duration(t)) }

func (s *connSet) open() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// add tracks a connection just accepted, closing another one first when
// the set is full. The new one counts as having just moved bytes, so it is
// never the first to go.
func (s *connSet) add(c net.Conn) *trackedConn {
	tc := &trackedConn{Conn: c, set: s}
	tc.progress.Store(s.now())
	s.mu.Lock()
	var victim *trackedConn
	if len(s.conns) >= s.max {
		victim = s.leastUsefulLocked()
	}
	tc.index = len(s.conns)
	s.conns = append(s.conns, tc)
	s.mu.Unlock()
	s.shed(victim)
	return tc
}

// shedOne closes the connection that matters least, for when accepting
// failed for want of descriptors.
func (s *connSet) shedOne() {
	s.mu.Lock()
	victim := s.leastUsefulLocked()
	s.mu.Unlock()
	s.shed(victim)
}

func (s *connSet) shed(victim *trackedConn) {
	if victim == nil {
		return
	}
	if http.ConnState(victim.state.Load()) == http.StateIdle {
		s.report.shedIdle.Add(1)
	} else {
		s.report.shedStalled.Add(1)
		victim.resetOnClose()
	}
	_ = victim.Close()
	s.report.hit()
}

// leastUsefulLocked picks the idle keep-alive connection, else any
// connection, that has gone longest without progress.
func (s *connSet) leastUsefulLocked() *trackedConn {
	var idle, stalled *trackedConn
	for _, c := range s.conns {
		if http.ConnState(c.state.Load()) == http.StateIdle {
			if idle == nil || c.progress.Load() < idle.progress.Load() {
				idle = c
			}
		} else if stalled == nil || c.progress.Load() < stalled.progress.Load() {
			stalled = c
		}
	}
	if idle != nil {
		return idle
	}
	return stalled
}

func (s *connSet) remove(c *trackedConn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	last := s.conns[len(s.conns)-1]
	s.conns[c.index], last.index = last, c.index
	s.conns[len(s.conns)-1] = nil
	s.conns = s.conns[:len(s.conns)-1]
}

// closeAll closes every connection still open, for a server whose
// graceful stop ran out of time.
func (s *connSet) closeAll() {
	s.mu.Lock()
	left := append([]*trackedConn(nil), s.conns...)
	s.mu.Unlock()
	for _, c := range left {
		_ = c.Close()
	}
}

// watchState returns an http.Server.ConnState that notes each
// connection's state, then calls next (the one the server had) if any.
func (s *connSet) watchState(next func(net.Conn, http.ConnState)) func(net.Conn, http.ConnState) {
	return func(c net.Conn, st http.ConnState) {
		if tc := tracked(c); tc != nil {
			tc.state.Store(int32(st))
		}
		if next != nil {
			next(c, st)
		}
	}
}

// tracked finds the trackedConn under c, beneath TLS if need be.
func tracked(c net.Conn) *trackedConn {
	for {
		if tc, ok := c.(*trackedConn); ok {
			return tc
		}
		nc, ok := c.(interface{ NetConn() net.Conn })
		if !ok {
			return nil
		}
		c = nc.NetConn()
	}
}

// trackingListener puts every accepted connection in a connSet.
type trackingListener struct {
	net.Listener
	set *connSet
}

func (l trackingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		// net/http retries a failed accept after a pause; make room for it.
		if errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
			l.set.shedOne()
		}
		return nil, err
	}
	return l.set.add(c), nil
}

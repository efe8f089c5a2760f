package data

import (
	"context"
	"net"
	"sync"
	"time"
)

// dialer returns the dialer of PostgreSQL connections: TCP keep-alives
// find a silently dead server between statements, and (on Linux) a TCP
// user timeout fails a statement whose bytes the server stops
// acknowledging, instead of waiting for the kernel's retransmissions
// (about 15 minutes).
func dialer(userTimeout time.Duration) *net.Dialer {
	d := &net.Dialer{KeepAliveConfig: net.KeepAliveConfig{Enable: true, Idle: 15 * time.Second, Interval: 5 * time.Second, Count: 3}}
	if userTimeout > 0 {
		d.Control = userTimeoutControl(userTimeout)
	}
	return d
}

// connSet tracks the open PostgreSQL connections of a DB, so that Stop can
// cut off statements still in flight when its context ends: database/sql
// closes a connection in use only once its statement is done.
type connSet struct {
	mu sync.Mutex
	m  map[*trackedConn]struct{}
}

func (s *connSet) wrap(dial func(ctx context.Context, network, addr string) (net.Conn, error)) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		tc := &trackedConn{Conn: c, set: s}
		s.mu.Lock()
		if s.m == nil {
			s.m = make(map[*trackedConn]struct{})
		}
		s.m[tc] = struct{}{}
		s.mu.Unlock()
		return tc, nil
	}
}

// closeAll closes every connection under its user, whose statement then
// fails.
func (s *connSet) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.m {
		_ = c.Conn.Close()
	}
}

type trackedConn struct {
	net.Conn
	set *connSet
}

func (c *trackedConn) Close() error {
	c.set.mu.Lock()
	delete(c.set.m, c)
	c.set.mu.Unlock()
	return c.Conn.Close()
}

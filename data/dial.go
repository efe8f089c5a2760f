package data

import (
	"net"
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

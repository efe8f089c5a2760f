//go:build unix

package h1

import (
	"errors"
	"net"
	"syscall"
)

// idleConnClean reports whether an idle connection has nothing waiting on
// it: no byte the server sent unasked (a 408 before it closes, a body after
// a HEAD), and no end of stream. It looks without reading or blocking.
func idleConnClean(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	var n int
	var rerr error
	var b [1]byte
	if err := rc.Read(func(fd uintptr) bool {
		n, _, rerr = syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		return true // never wait for readiness: the answer is now
	}); err != nil {
		return false
	}
	return n < 0 && errors.Is(rerr, syscall.EAGAIN)
}

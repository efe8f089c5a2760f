//go:build !unix

package h1

import "net"

// idleConnClean cannot look at the socket here; the read of the next
// answer finds a closed connection, which the transport retries when safe.
func idleConnClean(net.Conn) bool { return true }

package web

import (
	"context"
	"net"
	"net/http"
	"syscall"
)

type connKey struct{}

// ConnContext is an http.Server.ConnContext that lets Files cork the TCP
// connection while it sends a file from disk, as nginx's tcp_nopush does:
// the headers and the file leave in full segments, and sendfile starts at
// the file's first byte instead of after net/http's 512-byte sniff. The
// web tier's server sets it; set it on your own server (Echo's e.Server)
// when you mount Files there. Elsewhere than on Linux it changes nothing.
func ConnContext(ctx context.Context, c net.Conn) context.Context {
	// A syscall.Conn, not only a *net.TCPConn: tier.HTTPServer's
	// connections wrap the TCP one and pass its descriptor on.
	sc, ok := c.(syscall.Conn)
	if !ok || !corkSupported {
		return ctx
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return ctx
	}
	return context.WithValue(ctx, connKey{}, rc)
}

// cork corks r's connection and sends the headers w holds into it; the
// function it returns flushes what is left and uncorks. Without a
// connection from ConnContext, or over HTTP/2, it does nothing.
func cork(w http.ResponseWriter, r *http.Request) (uncork func()) {
	rc, _ := r.Context().Value(connKey{}).(syscall.RawConn)
	if rc == nil || r.ProtoMajor != 1 || setCork(rc, true) != nil {
		return func() {}
	}
	rw := http.NewResponseController(w)
	_ = rw.Flush()
	return func() {
		_ = rw.Flush()
		_ = setCork(rc, false)
	}
}

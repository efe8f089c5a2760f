package web

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"syscall"
	"testing"

	"github.com/labstack/echo/v4"
)

func corkOf(t *testing.T, rc syscall.RawConn) int {
	t.Helper()
	var v int
	var serr error
	if err := rc.Control(func(fd uintptr) {
		v, serr = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_CORK)
	}); err != nil || serr != nil {
		t.Fatalf("getsockopt: %v %v", err, serr)
	}
	return v
}

func TestCorkTogglesTCPCork(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()

	ctx := ConnContext(context.Background(), server)
	rc, _ := ctx.Value(connKey{}).(syscall.RawConn)
	if rc == nil {
		t.Fatal("ConnContext kept no connection for a TCP conn")
	}
	r := (&http.Request{ProtoMajor: 1, Header: http.Header{}}).WithContext(ctx)
	uncork := cork(&discardWriter{h: http.Header{}}, r)
	if got := corkOf(t, rc); got != 1 {
		t.Fatalf("TCP_CORK %d after cork, want 1", got)
	}
	uncork()
	if got := corkOf(t, rc); got != 0 {
		t.Fatalf("TCP_CORK %d after uncork, want 0", got)
	}

	// HTTP/2 multiplexes streams on the connection: no cork.
	r.ProtoMajor = 2
	cork(&discardWriter{h: http.Header{}}, r)()
	if got := corkOf(t, rc); got != 0 {
		t.Fatalf("TCP_CORK %d for HTTP/2", got)
	}
}

// A connection left corked would hold back the next small response for
// up to 200 ms: every path that corks must uncork before the handler ends.
// Corking is net/http's: fasthttp writes a file's head and first bytes
// together itself.
func TestFilesFromDiskLeaveTheConnectionUncorked(t *testing.T) {
	tr := newTree(t)
	s := startServer(t, engineHTTP, Config{Engine: EngineStd, Files: FilesConfig{Root: tr.root}})
	corked := make(chan int, 16)
	s.Echo().Use(func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			err := next(c)
			if rc, _ := c.Request().Context().Value(connKey{}).(syscall.RawConn); rc != nil {
				corked <- corkOf(t, rc)
			} else {
				corked <- -1
			}
			return err
		}
	})
	c := client(t)
	url := "http://" + s.Addr()
	for _, tc := range []struct {
		name    string
		headers []string
		status  int
		want    []byte
	}{
		{"whole", nil, 200, tr.big},
		{"one range", []string{"Range: bytes=10-99"}, 206, tr.big[10:100]},
		{"two ranges", []string{"Range: bytes=0-9,20-29"}, 206, nil},
	} {
		r := do(t, c, "GET", url+"/big.bin", tc.headers...)
		if r.status != tc.status || (tc.want != nil && !bytes.Equal(r.body, tc.want)) {
			t.Fatalf("%s: %d, %d bytes", tc.name, r.status, len(r.body))
		}
		if got := <-corked; got != 0 {
			t.Fatalf("%s: TCP_CORK %d after the response, want 0 (-1: no connection in the context)", tc.name, got)
		}
	}
}

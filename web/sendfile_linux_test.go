package web

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/threetier/threetier/tier"
)

// sendfileListener hands out connections that note what reaches their
// ReadFrom and whether TCP_CORK was on at the time.
type sendfileListener struct {
	net.Listener
	mu    sync.Mutex
	srcs  []io.Reader
	corks []int
}

func (l *sendfileListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &sendfileConn{TCPConn: c.(*net.TCPConn), l: l}, nil
}

type sendfileConn struct {
	*net.TCPConn
	l *sendfileListener
}

func (c *sendfileConn) ReadFrom(src io.Reader) (int64, error) {
	rc, _ := c.SyscallConn()
	var cork int
	_ = rc.Control(func(fd uintptr) { cork, _ = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_CORK) })
	c.l.mu.Lock()
	c.l.srcs, c.l.corks = append(c.l.srcs, src), append(c.l.corks, cork)
	c.l.mu.Unlock()
	return c.TCPConn.ReadFrom(src)
}

// TestLargeFileKeepsSendfileUnderLimits: through tier.HTTPServer, whose
// connections bound every write by SendTimeout, a large file still
// reaches the TCP connection's ReadFrom as the *io.LimitedReader around
// an *os.File that sendfile needs, in chunks; corked on net/http (fasthttp
// sends the head and the file's first bytes in one write itself).
func TestLargeFileKeepsSendfileUnderLimits(t *testing.T) {
	forEachEngine(t, testLargeFileKeepsSendfile)
}

func testLargeFileKeepsSendfile(t *testing.T, eng engine) {
	root := t.TempDir()
	const size = 1 << 20
	if err := os.WriteFile(filepath.Join(root, "big.bin"), make([]byte, size), 0o644); err != nil {
		t.Fatal(err)
	}
	files, err := NewFiles(FilesConfig{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	defer files.Close()
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := &sendfileListener{Listener: inner}
	opts := []tier.ServerOption{tier.WithLimits(tier.Limits{SendTimeout: 5 * time.Second})}
	if eng == engineFast {
		opts = append(opts, tier.WithFastHTTP1(files.ServeFast))
	}
	srv := tier.NewHTTPServer("web", &http.Server{Handler: files, ConnContext: ConnContext}, opts...)
	if err := srv.Serve(ln); err != nil {
		t.Fatal(err)
	}
	defer srv.Stop(context.Background())

	resp, err := http.Get("http://" + inner.Addr().String() + "/big.bin")
	if err != nil {
		t.Fatal(err)
	}
	n, _ := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if n != size {
		t.Fatalf("got %d bytes, want %d", n, size)
	}
	ln.mu.Lock()
	defer ln.mu.Unlock()
	if len(ln.srcs) < 2 {
		t.Fatalf("ReadFrom called %d times, want the file in several chunks", len(ln.srcs))
	}
	for i, src := range ln.srcs {
		lr, ok := src.(*io.LimitedReader)
		if !ok {
			t.Fatalf("chunk %d: ReadFrom got %T, want *io.LimitedReader", i, src)
		}
		if _, ok := lr.R.(*os.File); !ok {
			t.Fatalf("chunk %d: the LimitedReader holds %T, want *os.File", i, lr.R)
		}
		if eng == engineHTTP && ln.corks[i] != 1 {
			t.Fatalf("chunk %d sent uncorked", i)
		}
	}
}

package tier

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"github.com/threetier/threetier/internal/certreload"
	"github.com/threetier/threetier/internal/testcert"
)

// The guard follows frames however the reads cut them: a byte at a time,
// or many frames at once.
func TestH2GuardFollowsFramesAcrossReads(t *testing.T) {
	var wire bytes.Buffer
	wire.WriteString(http2.ClientPreface)
	fr := http2.NewFramer(&wire, nil)
	_ = fr.WriteSettings()
	for id := uint32(1); id <= 9; id += 2 {
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: []byte{0x82, 0x87}, EndHeaders: true})
		_ = fr.WriteData(id, false, bytes.Repeat([]byte{byte(http2.FrameRSTStream)}, 3000))                                        // payload that looks like headers
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: []byte{0x82}, EndStream: true, EndHeaders: true}) // trailers
		_ = fr.WriteRSTStream(id, http2.ErrCodeCancel)
	}
	for _, step := range []int{1, 7, 9, 4096, wire.Len()} {
		g := newH2Guard(nil, &limitReport{})
		b := wire.Bytes()
		for len(b) > 0 {
			k := min(step, len(b))
			g.in.scan(b[:k], g.frameIn)
			b = b[k:]
		}
		if g.opened != 5 || g.resets != 5 || g.calm.Load() {
			t.Errorf("reads of %d bytes: %d opened, %d reset, calm %v; want 5, 5, false", step, g.opened, g.resets, g.calm.Load())
		}
	}
}

// h1Conn wraps every connection served as HTTP/1.x, plaintext or TLS, and
// no HTTP/2 one; a TLS one keeps its r.TLS through the wrapper.
func TestH1ConnWrapsEveryHTTP1Connection(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	roots := testcert.Write(t, certFile, keyFile, 1)
	certs, err := certreload.New(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, r.Proto)
		if r.TLS != nil {
			_, _ = io.WriteString(w, " tls")
		}
	})
	var wrapped atomic.Int64
	start := func(cfg *tls.Config) *HTTPServer {
		s := NewHTTPServer("web", &http.Server{Addr: "127.0.0.1:0", Handler: handler, TLSConfig: cfg})
		s.h1Conn = func(c net.Conn) net.Conn { wrapped.Add(1); return netConnOnly{c} }
		if err := s.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Stop(context.Background()) })
		return s
	}
	plain, secure := start(nil), start(certs.TLSConfig())

	for _, tc := range []struct {
		url   string
		h2    bool
		want  string
		wraps int64
	}{
		{"http://" + plain.Addr(), false, "HTTP/1.1", 1},
		{"https://" + secure.Addr(), false, "HTTP/1.1 tls", 1},
		{"https://" + secure.Addr(), true, "HTTP/2.0 tls", 0},
	} {
		before := wrapped.Load()
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, ForceAttemptHTTP2: tc.h2}
		body := getBody(t, &http.Client{Transport: tr, Timeout: 5 * time.Second}, tc.url)
		tr.CloseIdleConnections()
		if body != tc.want || wrapped.Load()-before != tc.wraps {
			t.Errorf("%s (h2 %v): %q, %d wrapped; want %q, %d", tc.url, tc.h2, body, wrapped.Load()-before, tc.want, tc.wraps)
		}
	}
}

// netConnOnly hides every method of the connection beneath but NetConn,
// as a wrapper that knows nothing of TLS would.
type netConnOnly struct{ net.Conn }

func (c netConnOnly) NetConn() net.Conn { return c.Conn }

func getBody(t *testing.T, c *http.Client, url string) string {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Over HTTP/2 a handler's writer is still an http.Flusher, and a flush
// sends the answer's head before the handler returns.
func TestHTTP2HandlerCanFlush(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	roots := testcert.Write(t, certFile, keyFile, 1)
	certs, err := certreload.New(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	s := NewHTTPServer("web", &http.Server{Addr: "127.0.0.1:0", TLSConfig: certs.TLSConfig(), Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f, ok := w.(http.Flusher)
		if !ok {
			http.Error(w, "not a Flusher", http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusAccepted)
		f.Flush()
		<-release
	})})
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop(context.Background()) })
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get("https://" + s.Addr() + "/")
	close(release) // the head came while the handler still waited
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.ProtoMajor != 2 || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("%s %d, want HTTP/2 202 before the handler ended", resp.Proto, resp.StatusCode)
	}
}

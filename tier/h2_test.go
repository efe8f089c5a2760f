package tier_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"fmt"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"github.com/threetier/threetier/internal/certreload"
	"github.com/threetier/threetier/internal/h2test"
	"github.com/threetier/threetier/internal/testcert"
	"github.com/threetier/threetier/tier"
)

// startTLS serves h over TLS with limits and returns the address and a
// pool trusting the server's certificate.
func startTLS(t *testing.T, h http.Handler, limits tier.Limits) (string, *x509.CertPool) {
	t.Helper()
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	roots := testcert.Write(t, certFile, keyFile, 1)
	certs, err := certreload.New(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	srv := tier.NewHTTPServer("web", &http.Server{Addr: "127.0.0.1:0", Handler: h, TLSConfig: certs.TLSConfig()}, tier.WithLimits(limits))
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Stop(ctx); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	return srv.Addr(), roots
}

// A stream whose client takes none of its data is reset after SendTimeout
// (its handler's write fails), while the connection's other streams, busy
// all along, are answered before and after.
func TestHTTP2StalledStreamIsCutAfterSendTimeout(t *testing.T) {
	const sendTimeout = 500 * time.Millisecond
	writeFailed := make(chan time.Time, 1)
	mux := http.NewServeMux()
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		chunk := bytes.Repeat([]byte("x"), 64<<10)
		for range 128 {
			if _, err := w.Write(chunk); err != nil {
				writeFailed <- time.Now()
				return
			}
		}
	})
	mux.HandleFunc("/small", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("small")) })
	addr, roots := startTLS(t, mux, tier.Limits{SendTimeout: sendTimeout})

	c, err := h2test.Dial(addr, roots)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// The connection's window is never what stops the stalled stream; its
	// own (65,535 bytes) is, and it is never updated.
	if err := c.WindowUpdate(0, 1<<30); err != nil {
		t.Fatal(err)
	}
	if err := c.Get(1, "/big"); err != nil {
		t.Fatal(err)
	}
	stalledAt := time.Now() // at the latest
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}

	// Read frames: note which streams ended and whether stream 1 was reset.
	var mu sync.Mutex
	ended := map[uint32]bool{}
	var reset1 bool
	go func() {
		for {
			f, err := c.Next()
			if err != nil {
				return
			}
			mu.Lock()
			switch f := f.(type) {
			case *http2.DataFrame:
				if f.StreamEnded() {
					ended[f.StreamID] = true
				}
			case *http2.HeadersFrame:
				if f.StreamEnded() {
					ended[f.StreamID] = true
				}
			case *http2.RSTStreamFrame:
				reset1 = reset1 || f.StreamID == 1
			}
			mu.Unlock()
		}
	}()
	// small asks for /small on a new stream and waits for its answer.
	id := uint32(1)
	small := func() error {
		id += 2
		if err := c.Get(id, "/small"); err != nil {
			return err
		}
		if err := c.Flush(); err != nil {
			return err
		}
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			mu.Lock()
			done := ended[id]
			mu.Unlock()
			if done {
				return nil
			}
			time.Sleep(time.Millisecond)
		}
		return fmt.Errorf("no answer on stream %d", id)
	}
	var failedAt time.Time
	for failedAt.IsZero() {
		if err := small(); err != nil {
			t.Fatalf("a sibling stream while one stalls: %v", err)
		}
		select {
		case failedAt = <-writeFailed:
		default:
			if time.Since(stalledAt) > 20*sendTimeout {
				t.Fatalf("the stalled stream's handler still writing after %s", time.Since(stalledAt))
			}
		}
	}
	if took := failedAt.Sub(stalledAt); took < sendTimeout {
		t.Errorf("the stalled stream was cut after %s, before SendTimeout", took)
	}
	if err := small(); err != nil {
		t.Fatalf("a sibling stream after the cut: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if !reset1 || ended[1] {
		t.Errorf("stream 1: reset %v, ended %v; want reset and not ended", reset1, ended[1])
	}
	t.Logf("stalled stream cut %s after it stalled; %d sibling streams answered", failedAt.Sub(stalledAt), (id-1)/2)
}

// A client that opens and resets streams beyond its budget is told to calm
// down with a GOAWAY and its connection closed; one that resets a few
// streams is not.
func TestHTTP2RapidResetGetsGoAway(t *testing.T) {
	addr, roots := startTLS(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done() // until the stream is reset
	}), tier.Limits{})

	// flood opens and resets n streams, then reads until the server says
	// GOAWAY or the connection ends; it returns the GOAWAY (nil for none).
	flood := func(n int) *http2.GoAwayFrame {
		c, err := h2test.Dial(addr, roots)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		for i := range n {
			id := uint32(2*i + 1)
			if c.Get(id, "/") != nil || c.Reset(id) != nil {
				break
			}
		}
		if err := c.Flush(); err != nil {
			t.Fatal(err)
		}
		// A ping answered proves every reset before it was read.
		if err := c.Ping(); err != nil {
			t.Fatal(err)
		}
		for {
			f, err := c.Next()
			if err != nil {
				return nil
			}
			switch f := f.(type) {
			case *http2.GoAwayFrame:
				return f
			case *http2.PingFrame:
				if f.IsAck() {
					return nil
				}
			}
		}
	}
	if ga := flood(150); ga != nil {
		t.Fatalf("150 resets: GOAWAY %v", ga.ErrCode)
	}
	ga := flood(2000)
	if ga == nil || ga.ErrCode != http2.ErrCodeEnhanceYourCalm {
		t.Fatalf("2,000 resets: GOAWAY %v, want ENHANCE_YOUR_CALM", ga)
	}
	if ga.LastStreamID > 2*1000 {
		t.Errorf("GOAWAY after stream %d: the flood was read too far", ga.LastStreamID)
	}
}

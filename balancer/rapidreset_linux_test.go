//go:build linux

package balancer

import (
	"crypto/tls"
	"net/http"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"github.com/threetier/threetier/internal/child"
	"github.com/threetier/threetier/internal/h2test"
)

// TestFrontDoorRapidReset is CVE-2023-44487 against a TLS front door in a
// process of its own, over a real upstream: 8 connections open and reset
// streams as fast as they can for 3 seconds, connecting again whenever the
// node sends them away. The node's peak RSS stays at most 100 MB and a
// bystander's requests, one after another through the attack, are each
// answered within 300 ms (the race detector's shadow memory and slowness
// get their own bounds). Before the guard: 205 MB and 1.27 s.
func TestFrontDoorRapidReset(t *testing.T) {
	if testing.Short() {
		t.Skip("a 3-second flood")
	}
	const (
		attackers = 8
		attack    = 3 * time.Second
	)
	peakBound, latencyBound := int64(100<<20), 300*time.Millisecond
	if raceEnabled {
		peakBound, latencyBound = 400<<20, 1500*time.Millisecond
	}
	a := newBackend(t)
	close(a.hold)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	roots := writeCert(t, certFile, keyFile, 1)
	addr, proc := startChild(t, []string{"-test.run=^$"}, nodeEnv+"="+a.url, nodeTLSEnv+"="+certFile+","+keyFile)

	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	bystander := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	get := func() time.Duration {
		start := time.Now()
		if code, body, err := get(t, bystander, "https://"+addr+"/"); err != nil || code != 200 || body != a.url {
			t.Errorf("bystander: %d %q %v", code, body, err)
		}
		return time.Since(start)
	}
	get()
	before := child.PeakRSS(t, proc.Pid)

	var streams, calmed, conns atomic.Int64
	end := time.Now().Add(attack)
	var wg sync.WaitGroup
	for range attackers {
		wg.Go(func() {
			for time.Now().Before(end) {
				c, err := h2test.Dial(addr, roots)
				if err != nil {
					continue // the node is busy: try again, as an attacker would
				}
				conns.Add(1)
				// Streams go in batches of 500 pairs, each followed by a
				// PING: the next batch waits for its answer, so that the
				// attacker keeps the node reading as fast as it can rather
				// than filling socket buffers it will never read.
				acked := make(chan bool, 1) // false: sent away, or the connection ended
				go func() {
					defer close(acked)
					for {
						f, err := c.Next()
						if err != nil {
							return
						}
						switch f := f.(type) {
						case *http2.GoAwayFrame:
							if f.ErrCode == http2.ErrCodeEnhanceYourCalm {
								calmed.Add(1)
							}
							c.Close() // connect again
							return
						case *http2.PingFrame:
							if f.IsAck() {
								acked <- true
							}
						}
					}
				}()
				id := uint32(1)
			batches:
				for time.Now().Before(end) && id < 1<<30 {
					for range 500 {
						if c.Get(id, "/") != nil || c.Reset(id) != nil {
							break batches
						}
						id += 2
					}
					if c.Ping() != nil || !<-acked {
						break
					}
					streams.Add(500)
				}
				c.Close()
				for range acked {
				}
			}
		})
	}
	var took []time.Duration
	for time.Now().Before(end) {
		took = append(took, get())
	}
	wg.Wait()
	peak := child.PeakRSS(t, proc.Pid)
	slices.Sort(took)
	t.Logf("%d connections, %d sent away with ENHANCE_YOUR_CALM; %d requests reached the upstream", conns.Load(), calmed.Load(), a.hits.Load())
	t.Logf("node peak RSS %.1f MB (%.1f MB before the attack); %d bystander requests: median %s, slowest %s",
		float64(peak)/1e6, float64(before)/1e6, len(took), took[len(took)/2], took[len(took)-1])
	if calmed.Load() == 0 {
		t.Error("no connection was sent away")
	}
	if peak > peakBound {
		t.Errorf("node peak RSS %.1f MB, want at most %d MB", float64(peak)/1e6, peakBound>>20)
	}
	if slowest := took[len(took)-1]; slowest > latencyBound {
		t.Errorf("slowest bystander request took %s, want under %s", slowest, latencyBound)
	}
}

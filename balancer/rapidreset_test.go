package balancer

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"github.com/threetier/threetier/internal/child"
	"github.com/threetier/threetier/internal/h2test"
	"github.com/threetier/threetier/internal/wait"
)

// The rapid-reset attacker runs as a process of its own, as a real one
// would: "address,CA file,result file".
const floodEnv = "THREETIER_BALANCER_TEST_FLOOD"

const (
	floodConns = 8
	floodFor   = 3 * time.Second
)

// TestFrontDoorRapidReset is CVE-2023-44487 against a TLS front door in a
// process of its own, over a real upstream: an attacker process opens 8
// connections that open and reset streams as fast as the node reads them
// for 3 seconds, connecting again whenever the node sends them away. The
// node's peak RSS stays at most 100 MB and a bystander's requests, one
// after another through the attack, are each answered within 300 ms.
// Under the race detector, whose shadow memory and slowness grow with
// every goroutine the attack starts, both are only logged: CI checks them
// in a run without -race.
// Before the guard, examples/lb went from 38 to 205 MB and a bystander
// waited 1.27 s.
func TestFrontDoorRapidReset(t *testing.T) {
	if testing.Short() {
		t.Skip("a 3-second flood")
	}
	if runtime.GOOS != "linux" {
		t.Skip("reads the node's peak RSS from /proc")
	}
	const peakBound, latencyBound = 100 << 20, 300 * time.Millisecond
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

	result := filepath.Join(dir, "flood")
	startChild(t, []string{"-test.run=^$"}, floodEnv+"="+strings.Join([]string{addr, certFile, result}, ","))
	end := time.Now().Add(floodFor)
	var took []time.Duration
	for time.Now().Before(end) {
		took = append(took, get())
	}
	var report []byte
	wait.For(t, 30*time.Second, "the attacker's report", func() bool {
		report, _ = os.ReadFile(result)
		return len(report) > 0
	})
	var conns, calmed int
	if _, err := fmt.Sscan(string(report), &conns, &calmed); err != nil {
		t.Fatalf("attacker's report %q: %v", report, err)
	}
	peak := child.PeakRSS(t, proc.Pid)
	slices.Sort(took)
	t.Logf("%d attacking connections, %d sent away with ENHANCE_YOUR_CALM; %d requests reached the upstream", conns, calmed, a.hits.Load())
	t.Logf("node peak RSS %.1f MB (%.1f MB before the attack); %d bystander requests: median %s, slowest %s",
		float64(peak)/1e6, float64(before)/1e6, len(took), took[len(took)/2], took[len(took)-1])
	if calmed == 0 {
		t.Error("no connection was sent away")
	}
	if peak > peakBound && !raceEnabled {
		t.Errorf("node peak RSS %.1f MB, want at most %d MB", float64(peak)/1e6, peakBound>>20)
	}
	if slowest := took[len(took)-1]; slowest > latencyBound && !raceEnabled {
		t.Errorf("slowest bystander request took %s, want under %s", slowest, latencyBound)
	}
}

// flood is the attacker: floodConns connections at once, each opening and
// resetting streams until the node sends it away, then connecting again,
// for floodFor. It writes "connections calmed" to its result file.
func flood() {
	arg := strings.Split(os.Getenv(floodEnv), ",")
	addr, caFile, result := arg[0], arg[1], arg[2]
	pem, err := os.ReadFile(caFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	fmt.Println("flooding")
	var conns, calmed atomic.Int64
	end := time.Now().Add(floodFor)
	var wg sync.WaitGroup
	for range floodConns {
		wg.Go(func() {
			for time.Now().Before(end) {
				if floodOnce(addr, roots, end, &calmed) {
					conns.Add(1)
				}
			}
		})
	}
	wg.Wait()
	_ = os.WriteFile(result, fmt.Appendf(nil, "%d %d", conns.Load(), calmed.Load()), 0o600)
	os.Exit(0)
}

// floodOnce floods one connection until the node sends it away, it ends
// or end comes; false if it could not connect. Streams go in batches of
// 500 (more than the node's budget), each followed by a PING, and the next
// batch waits for its answer: the node is kept reading as fast as it can
// rather than the attacker filling socket buffers that will never be read.
func floodOnce(addr string, roots *x509.CertPool, end time.Time, calmed *atomic.Int64) bool {
	c, err := h2test.Dial(addr, roots)
	if err != nil {
		return false
	}
	acked := make(chan bool, 1) // closed once sent away or the connection ends
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
				c.Close()
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
	}
	c.Close()
	for range acked {
	}
	return true
}

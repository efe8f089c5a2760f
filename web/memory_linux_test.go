//go:build linux

package web

import (
	"crypto/sha256"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/threetier/threetier/internal/child"
)

// Compressed answers cost the server a bounded amount of memory however
// many clients ask at once: 200 concurrent brotli (then gzip) requests for
// a 2 MiB text file, with the file's compressed forms kept in memory and
// with the file compressed while sent, keep a server process's peak RSS
// under 200 MB (measured: 37 MB kept, 45 MB streamed). Before the limit,
// each brotli answer cost 13 MB. The race detector's shadow memory
// multiplies what a process touches (123 and 184 MB for the same runs), so
// the figure means nothing under it: CI runs this test once more without
// -race.
func TestCompressedResponsesKeepMemoryBounded(t *testing.T) {
	if raceEnabled {
		t.Skip("peak RSS under the race detector says nothing of the server's: run without -race")
	}
	const peakRSSBound = 200 << 20
	dir := t.TempDir()
	data := prose(2<<20, 42)
	if err := os.WriteFile(filepath.Join(dir, "big.txt"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	const clients = 200
	for _, tc := range []struct {
		name string
		env  []string
	}{
		{"kept", nil},
		{"streamed", []string{EnvPrefix + "FILES_COMPRESS_FILE_MAX=1024"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr, pid := startServerProcess(t, append(tc.env, EnvPrefix+"LISTEN=127.0.0.1:0", EnvPrefix+"FILES_ROOT="+dir)...)
			for _, coding := range []string{"br", "gzip"} {
				compressed := burst(t, "http://"+addr+"/big.txt", coding, clients, data)
				t.Logf("%s: %d of %d answers compressed", coding, compressed, clients)
				if compressed == 0 {
					t.Errorf("%s: no answer compressed", coding)
				}
			}
			peak := child.PeakRSS(t, pid)
			t.Logf("server peak RSS %.1f MB", float64(peak)/1e6)
			if peak > peakRSSBound {
				t.Errorf("server peak RSS %.1f MB, want under %d MB", float64(peak)/1e6, peakRSSBound>>20)
			}
		})
	}
}

// startServerProcess runs this test binary again as a web tier configured by env
// (see serveChild) and returns its address and PID. When the test ends its
// standard input closes and it is killed by its PID.
func startServerProcess(t *testing.T, env ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(append(os.Environ(), serveEnv+"=1"), env...)
	cmd.Stderr = os.Stderr
	addr := child.Start(t, cmd)
	return addr, cmd.Process.Pid
}

// burst sends n concurrent GETs for url with Accept-Encoding coding, fails
// t unless every body decodes to want, and returns how many answers were
// compressed. Identical compressed bodies are decoded once.
func burst(t *testing.T, url, coding string, n int, want []byte) int {
	t.Helper()
	tr := &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: n}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 2 * time.Minute}
	var (
		mu         sync.Mutex
		checked    = map[[sha256.Size]byte]bool{}
		compressed int
		wg         sync.WaitGroup
	)
	wantSum := sha256.Sum256(want)
	start := make(chan struct{})
	for range n {
		wg.Go(func() {
			<-start
			req, _ := http.NewRequest("GET", url, nil)
			req.Header.Set("Accept-Encoding", coding)
			resp, err := c.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			enc := resp.Header.Get("Content-Encoding")
			if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Vary"), "Accept-Encoding") {
				t.Errorf("%d vary %q", resp.StatusCode, resp.Header.Get("Vary"))
				return
			}
			if enc == "" {
				// Hashed as it arrives: 2 MiB a time, 200 times.
				h := sha256.New()
				if _, err := io.Copy(h, resp.Body); err != nil || [sha256.Size]byte(h.Sum(nil)) != wantSum {
					t.Errorf("identity body differs from the file (err %v)", err)
				}
				return
			}
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Error(err)
				return
			}
			sum := sha256.Sum256(append([]byte(enc), body...))
			mu.Lock()
			defer mu.Unlock()
			compressed++
			if checked[sum] {
				return
			}
			if got, err := decode(enc, body); err != nil || sha256.Sum256(got) != wantSum {
				t.Errorf("%q body of %d bytes decodes to %d (err %v), want the file's %d", enc, len(body), len(got), err, len(want))
			}
			checked[sum] = true
		})
	}
	close(start)
	wg.Wait()
	return compressed
}

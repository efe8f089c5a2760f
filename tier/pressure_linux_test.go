package tier_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/threetier/threetier/internal/child"
	"github.com/threetier/threetier/internal/syncbuf"
	"github.com/threetier/threetier/internal/wait"
	"github.com/threetier/threetier/tier"
)

const (
	pressureChildEnv = "THREETIER_TEST_PRESSURE_CHILD" // the child's timeouts
	pressureSlow     = 2000
	pressureLarge    = 8 << 20
	// pressureHold is the timeouts of the server measured: longer than the
	// test runs, so that none fires while it measures. The slow
	// connections it holds were accepted in one burst; their timeouts
	// would fire together, and a request measured then waits behind
	// hundreds of closes on a busy machine.
	pressureHold = 10 * time.Minute
	// pressureCut is the timeouts of the server that shows they cut.
	pressureCut = 2 * time.Second
)

// TestLimitsUnderDescriptorPressure runs a server whose descriptor limit
// (1,024) is below the number of slow clients: 2,000 connections that
// send one byte of a 1,000-byte body, then 2,000 that never read their
// 8 MiB download. A normal request is still answered in under 100 ms
// from connect, every slow connection is closed, and the server says so.
// Its timeouts do not fire while it is measured: each burst of slow
// clients is cleared by the server shedding them for the next one. Then
// a server with short timeouts, under the same pressure, shows that send
// timeouts cut the stalled downloads it holds.
func TestLimitsUnderDescriptorPressure(t *testing.T) {
	if v := os.Getenv(pressureChildEnv); v != "" {
		servePressureChild(v)
		return
	}
	if testing.Short() {
		t.Skip("opens 8,000 connections")
	}
	addr, logs := startPressureChild(t, pressureHold)

	normal := func(phase string) {
		t.Helper()
		// The first request waits in the accept queue behind the burst of
		// slow connections; once it is answered, the server holds them all.
		resp, err := (&http.Client{Timeout: 20 * time.Second}).Get("http://" + addr + "/small")
		if err != nil {
			t.Fatalf("%s: first request: %v", phase, err)
		}
		resp.Body.Close()
		// The server has accepted the burst, but on a busy machine it may
		// not have read the requests yet: hundreds of connections still
		// wait for their first turn, and a request measured now would
		// measure that queue, not the server beside stalled clients.
		wait.For(t, 20*time.Second, "the server to read every request it accepted", func() bool {
			return get(t, addr, "/pending") == "0"
		})
		// Five requests, each timed from connect; the median must be under
		// 100 ms (two may wait for a busy machine to schedule the server).
		var took []time.Duration
		for range 5 {
			start := time.Now()
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err != nil {
				t.Fatalf("%s: normal request: %v", phase, err)
			}
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			fmt.Fprintf(c, "GET /small HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatalf("%s: normal request: %v", phase, err)
			}
			b, _ := io.ReadAll(resp.Body)
			took = append(took, time.Since(start))
			c.Close()
			if resp.StatusCode != 200 || string(b) != "small" {
				t.Fatalf("%s: normal request got %d %q", phase, resp.StatusCode, b)
			}
		}
		t.Logf("%s: normal requests answered in %v from connect", phase, took)
		slices.Sort(took)
		if took[2] > 100*time.Millisecond {
			t.Fatalf("%s: median normal request took %s from connect", phase, took[2])
		}
	}

	const slowBody = "POST /small HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nx"
	const download = "GET /large HTTP/1.1\r\nHost: x\r\n\r\n"
	slow := openSlow(t, addr, slowBody)
	normal("beside 2,000 slow bodies")

	// Every slow body has gone longer without progress than any download:
	// the server sheds them all to make room for the downloads.
	downloads := openSlow(t, addr, download)
	allClosed(t, slow, "slow body", pressureLarge)
	normal("beside 2,000 stalled downloads")

	// The downloads in turn make room for a last burst of slow bodies.
	// Reading a download before the server gave up on it would be
	// progress: first wait for every download's handler to end.
	last := openSlow(t, addr, slowBody)
	downloadsEnd(t, addr)
	allClosed(t, downloads, "stalled download", pressureLarge)
	for _, c := range last {
		c.Close()
	}
	wait.For(t, 5*time.Second, "the server's warnings", func() bool {
		return sumLogged(logs.String(), "shed_stalled") > 0
	})
	t.Logf("server measured logged: %d shed stalled, %d shed idle",
		sumLogged(logs.String(), "shed_stalled"), sumLogged(logs.String(), "shed_idle"))

	// The downloads a server with short timeouts holds are cut by them.
	cutAddr, cutLogs := startPressureChild(t, pressureCut)
	stalled := openSlow(t, cutAddr, download)
	downloadsEnd(t, cutAddr)
	allClosed(t, stalled, "stalled download", pressureLarge)
	wait.For(t, 5*time.Second, "the server's send timeouts", func() bool {
		return sumLogged(cutLogs.String(), "send_timeouts") > 0
	})
	t.Logf("server with %s timeouts logged: %d shed stalled, %d send timeouts",
		pressureCut, sumLogged(cutLogs.String(), "shed_stalled"), sumLogged(cutLogs.String(), "send_timeouts"))

	// By now the server measured has logged whatever it counted (a line
	// goes at most a second after a hit): no timeout of its fired.
	if n := sumLogged(logs.String(), "body_timeouts") + sumLogged(logs.String(), "send_timeouts"); n != 0 {
		t.Fatalf("%d timeouts fired on the server measured, set to %s", n, pressureHold)
	}
}

// downloadsEnd waits for the server at addr to end every download it
// runs. How long 2,000 of them take depends on how much CPU the machine
// lends the server, so there is no bound on the whole: it fails only when
// the number running stops moving for 20 s, which a server that no longer
// ends them shows however fast the machine.
func downloadsEnd(t *testing.T, addr string) {
	t.Helper()
	const still = 20 * time.Second
	start := time.Now()
	running, moved := "", start
	wait.For(t, 5*time.Minute, "the server to end every download", func() bool {
		now := get(t, addr, "/downloads")
		if now != "" && now != running { // "": the probe itself timed out
			running, moved = now, time.Now()
		}
		if time.Since(moved) > still {
			t.Fatalf("downloads running: %q, unchanged for %s", running, still)
		}
		return now == "0"
	})
	t.Logf("the server ended every download in %s", time.Since(start).Round(time.Millisecond))
}

// get returns the body of a GET of path on a connection of its own, or ""
// when it fails.
func get(t *testing.T, addr, path string) string {
	t.Helper()
	probe := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := probe.Get("http://" + addr + path)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// openSlow opens pressureSlow connections that each send req and then
// nothing, reading nothing either; their receive buffers are small so
// that stalled downloads do not fill the machine's memory.
func openSlow(t *testing.T, addr, req string) []net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) { _ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4<<10) })
	}}
	conns := make([]net.Conn, 0, pressureSlow)
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	for range pressureSlow {
		c, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("after %d connections: %v", len(conns), err)
		}
		conns = append(conns, c)
		if _, err := io.WriteString(c, req); err != nil && !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, syscall.EPIPE) {
			t.Fatal(err)
		}
	}
	return conns
}

// allClosed waits for the server to close every connection: each one ends
// in end of stream or a reset, before its response could be complete.
func allClosed(t *testing.T, conns []net.Conn, what string, full int) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	buf := make([]byte, 64<<10)
	for i, c := range conns {
		_ = c.SetReadDeadline(deadline)
		var got int
		var err error
		for err == nil {
			var n int
			n, err = c.Read(buf)
			got += n
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("%s %d still open after 15s", what, i)
		}
		if got >= full {
			t.Fatalf("%s %d got a whole response (%d bytes): it was not cut", what, i, got)
		}
	}
}

var loggedCount = regexp.MustCompile(`(\w+)=(\d+)`)

// sumLogged adds up a count over every warning the server logged.
func sumLogged(logs, key string) int {
	total := 0
	for line := range strings.SplitSeq(logs, "\n") {
		if !strings.Contains(line, "connection limits hit") {
			continue
		}
		for _, m := range loggedCount.FindAllStringSubmatch(line, -1) {
			if m[1] == key {
				n, _ := strconv.Atoi(m[2])
				total += n
			}
		}
	}
	return total
}

// startPressureChild runs this test binary as a server with the given body
// and send timeouts, and returns its address and what it logs.
func startPressureChild(t *testing.T, timeouts time.Duration) (string, *syncbuf.Buffer) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestLimitsUnderDescriptorPressure$")
	cmd.Env = append(os.Environ(), pressureChildEnv+"="+timeouts.String())
	logs := &syncbuf.Buffer{}
	cmd.Stderr = logs
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("server output:\n%s", logs)
		}
	})
	return child.Start(t, cmd), logs
}

// servePressureChild is the server: descriptors capped at 1,024, body and
// send timeouts as given, a small answer and a large download. It prints
// its address and serves until its stdin closes.
func servePressureChild(timeouts string) {
	timeout, err := time.ParseDuration(timeouts)
	if err != nil {
		fmt.Fprintln(os.Stderr, "timeouts:", err)
		os.Exit(1)
	}
	lim := syscall.Rlimit{Cur: 1024, Max: 1024}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		fmt.Fprintln(os.Stderr, "setrlimit:", err)
		os.Exit(1)
	}
	chunk := bytes.Repeat([]byte("0123456789abcdef"), 4096)
	var downloads atomic.Int64 // running
	mux := http.NewServeMux()
	mux.HandleFunc("/small", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "small") })
	mux.HandleFunc("/downloads", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, downloads.Load()) })
	mux.HandleFunc("/large", func(w http.ResponseWriter, r *http.Request) {
		downloads.Add(1)
		defer downloads.Add(-1)
		w.Header().Set("Content-Length", strconv.Itoa(pressureLarge))
		for sent := 0; sent < pressureLarge; sent += len(chunk) {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	})
	// pending counts the connections accepted whose first request the
	// server has not read yet.
	var fresh sync.Map
	var pending atomic.Int64
	mux.HandleFunc("/pending", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, pending.Load()) })
	track := func(c net.Conn, s http.ConnState) {
		if s == http.StateNew {
			fresh.Store(c, true)
			pending.Add(1)
		} else if _, ok := fresh.LoadAndDelete(c); ok {
			pending.Add(-1)
		}
	}
	srv := tier.NewHTTPServer("pressure", &http.Server{Addr: "127.0.0.1:0", Handler: mux, ReadHeaderTimeout: 5 * time.Second, ConnState: track},
		tier.WithLimits(tier.Limits{BodyTimeout: timeout, SendTimeout: timeout}),
		tier.WithServerLogger(slog.New(slog.NewTextHandler(os.Stderr, nil))))
	if err := srv.Start(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "start:", err)
		os.Exit(1)
	}
	fmt.Println(srv.Addr())
	_, _ = io.Copy(io.Discard, os.Stdin)
	os.Exit(0)
}

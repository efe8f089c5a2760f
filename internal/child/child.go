// Package child runs a test binary again as a server of its own, for tests
// that need a real process: one they can kill, limit or measure apart from
// the test itself.
package child

import (
	"bufio"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Start starts cmd and returns the first line it prints on its standard
// output (its address or name), waiting at most 30 seconds. The child's
// standard input is its lifeline: when the test ends it closes (children
// that watch it exit), then the child is killed by its PID and waited for.
// The caller sets cmd's environment and standard error.
func Start(tb testing.TB, cmd *exec.Cmd) string {
	tb.Helper()
	stdin, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		_ = stdin.Close()
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	type read struct {
		line string
		err  error
	}
	first := make(chan read, 1)
	go func() {
		l, err := bufio.NewReader(stdout).ReadString('\n')
		first <- read{strings.TrimSpace(l), err}
	}()
	select {
	case r := <-first:
		if r.err != nil || r.line == "" {
			tb.Fatalf("child process ended before it was ready: %v", r.err)
		}
		return r.line
	case <-time.After(30 * time.Second):
		tb.Fatal("child process not ready within 30s")
	}
	return ""
}

// PeakRSS returns the peak resident set size (VmHWM) of process pid, in
// bytes (Linux only).
func PeakRSS(tb testing.TB, pid int) int64 {
	tb.Helper()
	status, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		tb.Fatal(err)
	}
	for line := range strings.SplitSeq(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				tb.Fatal(err)
			}
			return kb << 10
		}
	}
	tb.Fatal("no VmHWM in /proc status")
	return 0
}

// Package pgtest runs a private PostgreSQL server for the tests that crash
// or restart their database: in a temporary directory, on a port of its
// own, so that nobody else's tests (on the machine's shared server) notice.
package pgtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/threetier/threetier/internal/wait"
)

// Server is one private PostgreSQL server, stopped and removed when the test
// that started it ends.
type Server struct {
	t        testing.TB
	bin      string // directory of initdb and pg_ctl
	dir      string
	port     int
	settings []string            // -c name=value, beyond the defaults
	cred     *syscall.Credential // the postgres user, when running as root
}

// Start initialises a server and starts it, with each of settings
// ("max_connections=60") passed as -c. Without the server binaries
// (/usr/lib/postgresql/*/bin) the test is skipped, or fails when CI is set.
// The server is ready to stream its WAL to standbys (see Standby).
func Start(t testing.TB, settings ...string) *Server {
	t.Helper()
	s := newServer(t, settings)
	s.run("initdb", "-D", s.data(), "-A", "trust", "-U", "postgres", "--no-sync", "--locale=C", "-E", "UTF8")
	s.Start()
	return s
}

// Standby makes a streaming standby of s with pg_basebackup -R, replaying
// s's WAL delay behind it (recovery_min_apply_delay; zero: at once), and
// starts it. It is a Server of its own: stopped, started and removed on
// its own, before s when the test ends.
func (s *Server) Standby(delay time.Duration, settings ...string) *Server {
	s.t.Helper()
	sb := newServer(s.t, settings)
	sb.run("pg_basebackup", "-D", sb.data(), "-R", "-X", "stream", "-c", "fast", "--no-sync",
		"-h", "127.0.0.1", "-p", strconv.Itoa(s.port), "-U", "postgres")
	sb.setDelay(delay)
	sb.Start()
	return sb
}

// SetApplyDelay changes how far behind its primary a running standby
// replays (recovery_min_apply_delay), without restarting it.
func (s *Server) SetApplyDelay(d time.Duration) {
	s.t.Helper()
	s.setDelay(d)
	s.run("pg_ctl", "-D", s.data(), "reload")
}

// setDelay appends the delay to postgresql.auto.conf, where the last
// setting of a name wins; a -c would override any later reload.
func (s *Server) setDelay(d time.Duration) {
	s.t.Helper()
	f, err := os.OpenFile(filepath.Join(s.data(), "postgresql.auto.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		s.t.Fatal(err)
	}
	_, err = fmt.Fprintf(f, "recovery_min_apply_delay = '%dms'\n", d.Milliseconds())
	if err := errors.Join(err, f.Close()); err != nil {
		s.t.Fatal(err)
	}
}

// newServer makes the directory and picks the port of a server that does
// not exist yet, and removes them when the test ends.
func newServer(t testing.TB, settings []string) *Server {
	t.Helper()
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pg_ctl")
	if len(bins) == 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("no PostgreSQL server binaries under /usr/lib/postgresql/*/bin (apt-get install postgresql)")
		}
		t.Skip("no PostgreSQL server binaries (initdb, pg_ctl under /usr/lib/postgresql/*/bin)")
	}
	s := &Server{t: t, bin: filepath.Dir(bins[len(bins)-1]), settings: settings}
	dir, err := os.MkdirTemp("", "threetier-pg-")
	if err != nil {
		t.Fatal(err)
	}
	s.dir = dir
	t.Cleanup(func() {
		s.Stop()
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("remove the private server: %v", err)
		}
	})
	s.cred = AsPostgres(t, dir) // the server refuses to run as root
	s.port = FreePort(t)
	return s
}

// AsPostgres returns the credential to run a PostgreSQL tool (the server,
// PgBouncer: both refuse root) as the postgres user, and gives that user
// dir; nil when the test does not run as root. Without a postgres user the
// test is skipped.
func AsPostgres(t testing.TB, dir string) *syscall.Credential {
	t.Helper()
	if os.Geteuid() != 0 {
		return nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		t.Skipf("running as root and there is no postgres user to run PostgreSQL's tools as: %v", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatal(err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}
}

// FreePort returns a loopback TCP port nobody listens on now.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func (s *Server) data() string { return filepath.Join(s.dir, "data") }

// DSN is the server's postgres database, as the postgres user.
func (s *Server) DSN() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", s.port)
}

func (s *Server) options() string {
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1", s.port, s.dir)
	for _, kv := range s.settings {
		opts += " -c " + kv
	}
	return opts
}

func (s *Server) run(tool string, args ...string) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(s.bin, tool), args...)
	cmd.Dir = s.dir
	cmd.Env = []string{"LC_ALL=C", "PATH=/usr/bin:/bin"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	cmd.WaitDelay = 5 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		s.t.Fatalf("%s: %v\n%s", tool, err, out.String())
	}
}

// Start runs the server and waits until it accepts connections.
func (s *Server) Start() {
	s.t.Helper()
	s.run("pg_ctl", "-D", s.data(), "-l", filepath.Join(s.dir, "log"), "-w", "-t", "60", "-o", s.options(), "start")
}

// Restart is `pg_ctl restart -m fast`: every connection is dropped, the
// server shuts down cleanly and starts again.
func (s *Server) Restart() {
	s.t.Helper()
	s.run("pg_ctl", "-D", s.data(), "-l", filepath.Join(s.dir, "log"), "-w", "-t", "60", "-m", "fast", "-o", s.options(), "restart")
}

// PID is the postmaster's process ID, or 0 when it is not running.
func (s *Server) PID() int {
	b, err := os.ReadFile(filepath.Join(s.data(), "postmaster.pid"))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]))
	if pid <= 0 || syscall.Kill(pid, 0) != nil {
		return 0
	}
	return pid
}

// Crash stops the server the way a power cut would for its clients:
// SIGQUIT makes the postmaster drop every connection and exit at once,
// without a checkpoint, so the next start runs crash recovery.
func (s *Server) Crash() {
	s.t.Helper()
	pid := s.PID()
	if pid == 0 {
		s.t.Fatal("the private server is not running")
	}
	s.quit(pid)
}

// Stop stops the server if it runs (the same way as Crash).
func (s *Server) Stop() {
	if pid := s.PID(); pid != 0 {
		s.quit(pid)
	}
}

func (s *Server) quit(pid int) {
	if err := syscall.Kill(pid, syscall.SIGQUIT); err != nil {
		s.t.Fatal(err)
	}
	wait.For(s.t, 30*time.Second, "the postmaster to exit", func() bool { return syscall.Kill(pid, 0) != nil })
}

// Freeze stops every process of the server (SIGSTOP), as a server that
// hangs or a network that drops its packets: connections stay open and
// nothing answers on them, and a new one is accepted by the kernel but
// never greeted. Thaw resumes it; so does the end of the test. It needs
// /proc (Linux), without which the test is skipped.
func (s *Server) Freeze() {
	s.t.Helper()
	pid := s.PID()
	if pid == 0 {
		s.t.Fatal("the private server is not running")
	}
	// The postmaster first: stopped, it forks no backend that the list
	// would miss.
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(s.Thaw)
	children, err := childrenOf(pid)
	if err != nil {
		s.Thaw()
		s.t.Skipf("cannot list the server's processes: %v", err)
	}
	for _, c := range children {
		_ = syscall.Kill(c, syscall.SIGSTOP) // one may have exited since
	}
}

// Thaw resumes a server that Freeze stopped.
func (s *Server) Thaw() {
	pid := s.PID()
	if pid == 0 {
		return
	}
	children, _ := childrenOf(pid)
	for _, c := range append(children, pid) {
		_ = syscall.Kill(c, syscall.SIGCONT)
	}
}

// childrenOf lists the processes whose parent is pid, from /proc.
func childrenOf(pid int) ([]int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var out []int
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue // exited meanwhile
		}
		// "pid (comm) state ppid ...": comm may hold spaces and parentheses.
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		fields := strings.Fields(string(stat[i+1:]))
		if len(fields) > 1 && fields[1] == strconv.Itoa(pid) {
			out = append(out, child)
		}
	}
	return out, nil
}

// Package pgbouncer runs a private PgBouncer in transaction pooling mode in
// front of a PostgreSQL server, for the tests that check the data tier
// works through one: each server connection is lent to a client for one
// transaction only, so whatever outlives a transaction (a session setting,
// a named prepared statement, an advisory lock) reaches another client or
// is lost.
package pgbouncer

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/threetier/threetier/internal/pgtest"
	"github.com/threetier/threetier/internal/wait"
)

// PoolSize is how many server connections the PgBouncer opens to
// PostgreSQL at most: fewer than a data tier pool opens to it, so that
// clients share server connections as they do in production.
const PoolSize = 4

// Server is one private PgBouncer, stopped and removed when the test that
// started it ends.
type Server struct {
	port   int
	dbname string
	user   string
	cmd    *exec.Cmd
	log    string
	exited chan struct{}
}

// Start runs a PgBouncer in transaction pooling mode in front of the
// server of upstream, a postgres:// URL (its host, port, database and
// user; trust authentication). A search_path parameter of upstream is set
// on every server connection PgBouncer opens (PgBouncer 1.18 refuses it as
// a client's startup parameter), so a test that works in a schema of its
// own keeps it. Without the pgbouncer binary the test is skipped, or fails
// when CI is set.
func Start(t testing.TB, upstream string) *Server {
	t.Helper()
	bin, err := exec.LookPath("pgbouncer")
	if err != nil {
		bin = "/usr/sbin/pgbouncer"
		if _, err := os.Stat(bin); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatal("no pgbouncer binary (apt-get install pgbouncer)")
			}
			t.Skip("no pgbouncer binary (apt-get install pgbouncer)")
		}
	}
	u, err := url.Parse(upstream)
	if err != nil {
		t.Fatalf("upstream DSN: %v", err)
	}
	s := &Server{dbname: strings.TrimPrefix(u.Path, "/"), user: u.User.Username(), exited: make(chan struct{})}
	// Not t.TempDir: its parent is private to the test's user.
	dir, err := os.MkdirTemp("", "threetier-pgbouncer-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("remove the PgBouncer's files: %v", err)
		}
	})
	cred := pgtest.AsPostgres(t, dir) // PgBouncer refuses to run as root
	s.port = pgtest.FreePort(t)
	s.log = filepath.Join(dir, "pgbouncer.log")
	ini := filepath.Join(dir, "pgbouncer.ini")
	auth := filepath.Join(dir, "users.txt")
	write(t, auth, fmt.Sprintf("%q \"\"\n", s.user))
	write(t, ini, s.config(u, auth))

	s.cmd = exec.Command(bin, ini)
	s.cmd.Dir = dir
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	var out bytes.Buffer
	s.cmd.Stdout, s.cmd.Stderr = &out, &out
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start pgbouncer: %v", err)
	}
	go func() {
		_ = s.cmd.Wait()
		close(s.exited)
	}()
	t.Cleanup(func() { s.stop(t) })
	wait.For(t, 10*time.Second, "PgBouncer to accept connections", func() bool {
		select {
		case <-s.exited:
			t.Fatalf("pgbouncer exited: %s\n%s", s.cmd.ProcessState, s.Log())
		default:
		}
		c, err := net.Dial("tcp", s.addr())
		if err == nil {
			_ = c.Close()
		}
		return err == nil
	})
	return s
}

// config is the PgBouncer configuration: one database, transaction
// pooling, PoolSize server connections, every client parameter PgBouncer
// 1.18 does not track refused as it is by default.
func (s *Server) config(u *url.URL, auth string) string {
	host, port := u.Hostname(), u.Port()
	if port == "" {
		port = "5432"
	}
	db := fmt.Sprintf("host=%s port=%s dbname=%s user=%s", host, port, s.dbname, s.user)
	if sp := u.Query().Get("search_path"); sp != "" {
		db += fmt.Sprintf(" connect_query='SET search_path = %s'", strings.ReplaceAll(sp, "'", "''"))
	}
	return fmt.Sprintf(`[databases]
%s = %s

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %d
unix_socket_dir =
auth_type = trust
auth_file = %s
pool_mode = transaction
default_pool_size = %d
max_client_conn = 200
server_idle_timeout = 10
logfile = %s
`, s.dbname, db, s.port, auth, PoolSize, s.log)
}

func write(t testing.TB, name, body string) {
	t.Helper()
	if err := os.WriteFile(name, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

func (s *Server) addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// DSN is the upstream database through the PgBouncer, as the upstream
// user.
func (s *Server) DSN() string {
	return fmt.Sprintf("postgres://%s@%s/%s?sslmode=disable", url.PathEscape(s.user), s.addr(), url.PathEscape(s.dbname))
}

// PID is the PgBouncer's process ID.
func (s *Server) PID() int { return s.cmd.Process.Pid }

// Log is what the PgBouncer logged so far.
func (s *Server) Log() string {
	b, _ := os.ReadFile(s.log)
	return string(b)
}

// stop ends the PgBouncer at once (SIGTERM: it closes every connection and
// exits; SIGINT would wait for its clients) and waits for it.
func (s *Server) stop(t testing.TB) {
	select {
	case <-s.exited:
		return
	default:
	}
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Errorf("stop pgbouncer %d: %v", s.PID(), err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	select {
	case <-s.exited:
	case <-ctx.Done():
		_ = s.cmd.Process.Kill()
		<-s.exited
		t.Errorf("pgbouncer %d did not stop within 10s of SIGTERM", s.PID())
	}
}

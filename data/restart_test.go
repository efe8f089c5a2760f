//go:build unix

package data

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
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"gorm.io/gorm"

	"github.com/threetier/threetier/internal/wait"
)

// pgCluster is a private PostgreSQL server in a temporary directory, on a
// port of its own, that a test may crash and restart without disturbing
// anyone else.
type pgCluster struct {
	t    testing.TB
	bin  string // directory of initdb and pg_ctl
	dir  string
	port int
	cred *syscall.Credential // the postgres user, when running as root
}

func startCluster(t testing.TB) *pgCluster {
	t.Helper()
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pg_ctl")
	if len(bins) == 0 {
		t.Skip("no PostgreSQL server binaries (initdb, pg_ctl under /usr/lib/postgresql/*/bin): skipping the restart test")
	}
	c := &pgCluster{t: t, bin: filepath.Dir(bins[len(bins)-1])}
	dir, err := os.MkdirTemp("", "threetier-pg-")
	if err != nil {
		t.Fatal(err)
	}
	c.dir = dir
	t.Cleanup(func() {
		c.stop()
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("remove cluster: %v", err)
		}
	})
	if os.Geteuid() == 0 {
		// The server refuses to run as root.
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Skipf("running as root and there is no postgres user to run the server as: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		c.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c.port = l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	c.run("initdb", "-D", c.data(), "-A", "trust", "-U", "postgres", "--no-sync", "--locale=C", "-E", "UTF8")
	c.start()
	return c
}

func (c *pgCluster) data() string { return filepath.Join(c.dir, "data") }

func (c *pgCluster) dsn() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", c.port)
}

func (c *pgCluster) run(tool string, args ...string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(c.bin, tool), args...)
	cmd.Dir = c.dir
	cmd.Env = []string{"LC_ALL=C", "PATH=/usr/bin:/bin"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	cmd.WaitDelay = 5 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		c.t.Fatalf("%s: %v\n%s", tool, err, out.String())
	}
}

// start runs the server and waits until it accepts connections.
func (c *pgCluster) start() {
	c.t.Helper()
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=on -c synchronous_commit=on", c.port, c.dir)
	c.run("pg_ctl", "-D", c.data(), "-l", filepath.Join(c.dir, "log"), "-w", "-t", "60", "-o", opts, "start")
}

// pid is the postmaster's process ID, or 0 when it is not running.
func (c *pgCluster) pid() int {
	b, err := os.ReadFile(filepath.Join(c.data(), "postmaster.pid"))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]))
	if pid <= 0 || syscall.Kill(pid, 0) != nil {
		return 0
	}
	return pid
}

// crash stops the server the way a power cut would for its clients:
// SIGQUIT makes the postmaster drop every connection and exit at once,
// without a checkpoint, so the next start runs crash recovery.
func (c *pgCluster) crash() {
	c.t.Helper()
	pid := c.pid()
	if pid == 0 {
		c.t.Fatal("the private server is not running")
	}
	if err := syscall.Kill(pid, syscall.SIGQUIT); err != nil {
		c.t.Fatal(err)
	}
	wait.For(c.t, 30*time.Second, "postmaster to exit", func() bool { return syscall.Kill(pid, 0) != nil })
}

func (c *pgCluster) stop() {
	if pid := c.pid(); pid != 0 {
		_ = syscall.Kill(pid, syscall.SIGQUIT)
		deadline := time.Now().Add(30 * time.Second)
		for syscall.Kill(pid, 0) == nil && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// PostgreSQL crashes in the middle of a write load and comes back: while it
// is down every call fails fast with an unavailable (or timeout) error, the
// service recovers without being restarted, and no acknowledged row is lost.
// Half the writers go through GORM, half through Insert.
func TestPostgresRestartUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a private PostgreSQL server")
	}
	cluster := startCluster(t)
	db := openTest(t, Config{DSN: cluster.dsn(), ConnectTimeout: time.Second, OpTimeout: 3 * time.Second, MaxOpenConns: 8})

	const writers = 4
	var (
		mu          sync.Mutex
		acked       []string
		failed      atomic.Int64
		slowest     atomic.Int64 // nanoseconds of the slowest failed call
		unexpected  []error
		stop        = make(chan struct{})
		wg          sync.WaitGroup
		ackedAfter  [2]atomic.Int64 // by path: GORM, Insert
		restartedAt atomic.Bool
	)
	for w := range writers {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				payload := fmt.Sprintf("w%d-%d", w, i)
				start := time.Now()
				e := &Event{Kind: "load", Payload: payload, CreatedAt: start}
				var err error
				if w%2 == 0 {
					err = db.WithContext(context.Background()).Create(e).Error
				} else { // the typed fast path
					err = Insert(context.Background(), db, e)
				}
				if err == nil {
					mu.Lock()
					acked = append(acked, payload)
					mu.Unlock()
					if restartedAt.Load() {
						ackedAfter[w%2].Add(1)
					}
					continue
				}
				failed.Add(1)
				if d := int64(time.Since(start)); d > slowest.Load() {
					slowest.Store(d)
				}
				if !IsFailure(err) {
					mu.Lock()
					unexpected = append(unexpected, err)
					mu.Unlock()
				}
				// Pace the retries of a dead database, as a client would.
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		wg.Wait()
	}()
	nAcked := func() int { mu.Lock(); defer mu.Unlock(); return len(acked) }

	wait.For(t, 30*time.Second, "writes before the crash", func() bool { return nAcked() >= 100 })
	down := time.Now()
	cluster.crash()
	wait.For(t, 30*time.Second, "calls to fail while the server is down", func() bool { return failed.Load() >= 40 })
	// Transactions and health checks fail fast too.
	start := time.Now()
	if err := db.Tx(context.Background(), func(tx *gorm.DB) error { return tx.Create(&Event{Kind: "tx", Payload: "down"}).Error }); !IsFailure(err) {
		t.Errorf("Tx while down: %v, want an unavailable error", err)
	}
	if err := db.Check(context.Background()); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Check while down: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Tx and Check took %v to fail while down", d)
	}
	t.Logf("down for %v: %d calls failed, the slowest in %v", time.Since(down).Round(time.Millisecond), failed.Load(), time.Duration(slowest.Load()))

	cluster.start()
	restartedAt.Store(true)
	wait.For(t, 60*time.Second, "writes through both paths to succeed again after the restart", func() bool {
		return ackedAfter[0].Load() >= 50 && ackedAfter[1].Load() >= 50
	})
	close(stop)
	wg.Wait()

	// Bounded by the configured timeouts, with room for a loaded machine:
	// the point is that no call waits for the server to come back.
	if d := time.Duration(slowest.Load()); d > 6*time.Second {
		t.Errorf("a failed call took %v: not failing fast (connect timeout 1s, op timeout 3s)", d)
	}
	for i, err := range unexpected {
		if i < 5 {
			t.Errorf("failure not classified as unavailable/timeout: %v", err)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, cluster.dsn())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, "SELECT payload FROM events")
	if err != nil {
		t.Fatal(err)
	}
	stored := map[string]bool{}
	for rows.Next() {
		var p string
		if err := rows.Scan(&p); err != nil {
			t.Fatal(err)
		}
		stored[p] = true
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	lost := 0
	for _, p := range acked {
		if !stored[p] {
			lost++
		}
	}
	t.Logf("%d rows acknowledged, %d stored, %d lost", len(acked), len(stored), lost)
	if lost > 0 {
		t.Errorf("%d acknowledged rows are missing after the crash", lost)
	}
}

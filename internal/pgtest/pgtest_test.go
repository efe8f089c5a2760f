package pgtest

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/threetier/threetier/internal/wait"
)

// A standby replays its primary's writes, and with an apply delay only
// after it.
func TestStandbyReplays(t *testing.T) {
	primary := Start(t)
	standby := primary.Standby(0)
	ctx := context.Background()
	connect := func(s *Server) *pgx.Conn {
		c, err := pgx.Connect(ctx, s.DSN())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close(ctx) })
		return c
	}
	p, sb := connect(primary), connect(standby)
	var recovering bool
	if err := sb.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&recovering); err != nil || !recovering {
		t.Fatalf("the standby is not in recovery: %v, %v", recovering, err)
	}
	if _, err := p.Exec(ctx, "CREATE TABLE t (n int); INSERT INTO t VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	count := func() int {
		var n int
		if err := sb.QueryRow(ctx, "SELECT count(*) FROM t").Scan(&n); err != nil {
			return -1
		}
		return n
	}
	wait.For(t, 10*time.Second, "the standby to replay the insert", func() bool { return count() == 1 })

	standby.SetApplyDelay(time.Second)
	var delay string
	wait.For(t, 10*time.Second, "the delay to apply", func() bool {
		return sb.QueryRow(ctx, "SHOW recovery_min_apply_delay").Scan(&delay) == nil && delay == "1s"
	})
	begin := time.Now()
	if _, err := p.Exec(ctx, "INSERT INTO t VALUES (2)"); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 1 {
		t.Errorf("the delayed standby already has the insert: %d rows", n)
	}
	wait.For(t, 10*time.Second, "the delayed standby to replay", func() bool { return count() == 2 })
	if d := time.Since(begin); d < 900*time.Millisecond {
		t.Errorf("the delayed standby replayed after %s, want about 1s", d)
	}
	pid := standby.PID()
	standby.Stop()
	if standby.PID() != 0 || pid == 0 {
		t.Errorf("standby PID %d before Stop, %d after", pid, standby.PID())
	}
}

// A frozen server keeps its connections and answers nothing on them; once
// thawed it answers again.
func TestFreezeAndThaw(t *testing.T) {
	s := Start(t)
	ctx := context.Background()
	c, err := pgx.Connect(ctx, s.DSN())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close(ctx) }()
	s.Freeze()
	qctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if err := c.Ping(qctx); err == nil {
		t.Fatal("a frozen server answered")
	}
	s.Thaw()
	c2, err := pgx.Connect(ctx, s.DSN())
	if err != nil {
		t.Fatalf("connecting once thawed: %v", err)
	}
	defer func() { _ = c2.Close(ctx) }()
	if err := c2.Ping(ctx); err != nil {
		t.Fatalf("a thawed server: %v", err)
	}
}

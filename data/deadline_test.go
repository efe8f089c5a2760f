package data

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"gorm.io/gorm"
)

// A statement whose context ends is cancelled on the server, not only
// abandoned by the client: a lock wait or a sleep stops there (no backend
// left waiting in the row's lock queue or holding a server slot), and the
// connection goes back to the pool healthy, to serve the next statement.
func TestDeadlineCancelsTheStatementOnTheServer(t *testing.T) {
	postgresBackends(t, func(t *testing.T, cfg Config) {
		cfg.MaxOpenConns = 1
		db := openTest(t, cfg)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := db.Gorm().Exec("INSERT INTO products (name, stock) VALUES (?, 10) ON CONFLICT DO NOTHING", "held").Error; err != nil {
			t.Fatal(err)
		}
		observer, err := pgx.Connect(ctx, directDSN(cfg))
		if err != nil {
			t.Fatal(err)
		}
		defer observer.Close(context.Background())
		holder, err := pgx.Connect(ctx, directDSN(cfg))
		if err != nil {
			t.Fatal(err)
		}
		defer holder.Close(context.Background())
		lock, err := holder.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = lock.Rollback(context.Background()) }()
		if _, err := lock.Exec(ctx, "SELECT id FROM products WHERE name = 'held' FOR UPDATE"); err != nil {
			t.Fatal(err)
		}

		var pid int
		if err := db.Gorm().WithContext(ctx).Raw("SELECT pg_backend_pid()").Scan(&pid).Error; err != nil {
			t.Fatal(err)
		}
		// The subtests share the server: each counts only its own
		// statements, which carry its mark.
		mark := fmt.Sprintf("/* %s %d */", sanitize(t.Name()), time.Now().UnixNano())
		for _, c := range []struct{ name, sql, waitEvent string }{
			{"lock wait", "UPDATE products SET stock = stock - 1 WHERE name = 'held' " + mark, "Lock"},
			{"sleep", "SELECT pg_sleep(10) " + mark, "Timeout"},
		} {
			const budget = 300 * time.Millisecond
			sctx, scancel := context.WithTimeout(ctx, budget)
			start := time.Now()
			err := db.Gorm().WithContext(sctx).Exec(c.sql).Error
			took := time.Since(start)
			scancel()
			t.Logf("%s: answered %s after a deadline of %s", c.name, took, budget)
			if !errors.Is(err, ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("%s past its deadline: %v, want ErrTimeout, the deadline's", c.name, err)
			}
			// The cancel takes a round trip, and a moment more lest it land
			// on the connection's next statement.
			if took > budget+cancelGrace+cancelSettle {
				t.Errorf("%s returned %s after its deadline of %s", c.name, took-budget, budget)
			}
			// Ended on the server before the error came back: no backend
			// is left in the row's lock queue, or asleep.
			var waiting int
			if err := observer.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
				WHERE state = 'active' AND wait_event_type = $1 AND strpos(query, $2) > 0 AND pid <> pg_backend_pid()`,
				c.waitEvent, mark).Scan(&waiting); err != nil {
				t.Fatal(err)
			}
			if waiting != 0 {
				t.Errorf("%s: %d backends still waiting (%s) on the server after the deadline", c.name, waiting, c.waitEvent)
			}
			var again int
			if err := db.Gorm().WithContext(ctx).Raw("SELECT pg_backend_pid()").Scan(&again).Error; err != nil {
				t.Fatalf("the statement after a cancelled %s: %v", c.name, err)
			}
			if again != pid && !cfg.PgBouncer {
				t.Errorf("after a cancelled %s the pool dialled a new connection (backend %d, was %d)", c.name, again, pid)
			}
			if s := db.SQL().Stats(); s.OpenConnections != 1 || s.InUse != 0 {
				t.Errorf("after a cancelled %s: %d connections open, %d in use; want the one, idle", c.name, s.OpenConnections, s.InUse)
			}
		}
		if err := lock.Rollback(ctx); err != nil {
			t.Fatal(err)
		}
		if err := db.Gorm().WithContext(ctx).Exec("UPDATE products SET stock = stock - 1 WHERE name = 'held'").Error; err != nil {
			t.Fatalf("the row once released: %v", err)
		}
	})
}

// A transaction that conflicts does not sleep a back-off its caller's
// deadline would cut short: it returns the conflict at once, not a
// timeout later.
func TestTxRetriesWithinTheDeadline(t *testing.T) {
	db := openTest(t, Config{Path: filepath.Join(t.TempDir(), "test.db"), Tx: TxConfig{Backoff: 10 * time.Second, MaxBackoff: 10 * time.Second}})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	runs := 0
	err := db.Tx(ctx, func(*gorm.DB) error { runs++; return ErrRetryable })
	took := time.Since(start)
	if !errors.Is(err, ErrRetryable) || took > 100*time.Millisecond {
		t.Errorf("after %d runs and %s: %v; want the conflict, before the deadline", runs, took, err)
	}
}

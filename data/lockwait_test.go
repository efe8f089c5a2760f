package data

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/threetier/threetier/tier"
)

// A statement that gives up waiting for a row another transaction holds,
// by lock_timeout or by statement_timeout, is a timeout for its caller but
// no failure of the database: a breaker in front of it stays closed. A
// statement that is slow on its own still counts.
func TestLockWaitsAreNoFailureOfTheDatabase(t *testing.T) {
	dsn := pgSchema(t)
	for _, c := range []struct {
		name string
		cfg  Config
	}{
		{"lock_timeout", Config{DSN: dsn, LockTimeout: 200 * time.Millisecond}},
		{"statement_timeout", Config{DSN: dsn, StatementTimeout: 200 * time.Millisecond}},
	} {
		t.Run(c.name, func(t *testing.T) {
			db := openTest(t, c.cfg)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			release := holdHotRow(t, ctx, db)
			err := db.Tx(ctx, func(tx *gorm.DB) error {
				return tx.Exec("UPDATE products SET stock = stock - 1 WHERE name = ?", "hot").Error
			}, Attempts(1))
			release()
			if !errors.Is(err, ErrTimeout) {
				t.Fatalf("waiting for a held row: %v, want ErrTimeout", err)
			}
			if IsFailure(err) {
				t.Errorf("a lock wait counts as a failure of the database: %v", err)
			}
			if failure, known := tier.DependencyFailureOf(err); !known || failure {
				t.Errorf("DependencyFailureOf(%v) = %v, %v; want no failure", err, failure, known)
			}
			if c.cfg.StatementTimeout != 0 {
				err := db.Gorm().WithContext(ctx).Exec("SELECT pg_sleep(1)").Error
				if !errors.Is(err, ErrTimeout) || !IsFailure(err) {
					t.Errorf("a slow statement: %v (failure %v), want a timeout that counts", err, IsFailure(err))
				}
			}
		})
	}
}

// A transaction that may write and whose caller's deadline comes before
// LockTimeout gives up waiting for a held row a little before that
// deadline, as a lock wait (55P03, no failure of the database), rather
// than by the caller's deadline, which a guard in front would count
// against the database. A read-only transaction's timeouts are left alone.
func TestLockWaitEndsBeforeTheCallersDeadline(t *testing.T) {
	db := openTest(t, Config{DSN: pgSchema(t)})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	defer holdHotRow(t, ctx, db)()

	// Two wait at once: the second queues behind the first for the row,
	// then waits for the holder itself, two waits of its own.
	const deadline = 600 * time.Millisecond
	type waited struct {
		err      error
		took     time.Duration
		deadline error
	}
	results := make(chan waited, 2)
	for range 2 {
		go func() {
			callCtx, callCancel := context.WithTimeout(ctx, deadline)
			defer callCancel()
			begun := time.Now()
			err := db.Tx(callCtx, func(tx *gorm.DB) error {
				return tx.Exec("UPDATE products SET stock = stock - 1 WHERE name = ?", "hot").Error
			}, Attempts(1))
			results <- waited{err, time.Since(begun), callCtx.Err()}
		}()
	}
	for range 2 {
		w := <-results
		if !errors.Is(w.err, ErrTimeout) || IsFailure(w.err) || w.deadline != nil {
			t.Errorf("waiting for a held row within %s: %v after %s (failure %v, caller's context %v); want a lock wait before the deadline",
				deadline, w.err, w.took, IsFailure(w.err), w.deadline)
		}
		t.Logf("lock wait ended after %s of a %s deadline: %v", w.took.Round(time.Millisecond), deadline, w.err)
	}

	// The bound is the transaction's own: the next one on the
	// connection waits as LockTimeout says.
	var setting string
	if err := db.Tx(context.Background(), func(tx *gorm.DB) error {
		return tx.Raw("SELECT current_setting('lock_timeout')").Scan(&setting).Error
	}); err != nil || setting != "5s" {
		t.Errorf("lock_timeout after the bounded transaction: %q, %v; want 5s", setting, err)
	}
	readCtx, readCancel := context.WithTimeout(ctx, deadline)
	defer readCancel()
	if err := db.Tx(readCtx, func(tx *gorm.DB) error {
		return tx.Raw("SELECT current_setting('lock_timeout')").Scan(&setting).Error
	}, ReadOnly()); err != nil || setting != "5s" {
		t.Errorf("lock_timeout in a read-only transaction: %q, %v; want 5s, untouched", setting, err)
	}
}

func TestLockTimeoutFollowsTheDeadline(t *testing.T) {
	db := &DB{cfg: Config{LockTimeout: 5 * time.Second}}
	for _, c := range []struct {
		name     string
		deadline time.Duration // none when zero
		readOnly bool
		min, max time.Duration
		bounded  bool
	}{
		{"no deadline", 0, false, 5 * time.Second, 5 * time.Second, false},
		{"a later deadline", time.Minute, false, 5 * time.Second, 5 * time.Second, false},
		{"a sooner deadline", 2 * time.Second, false, 850 * time.Millisecond, 900 * time.Millisecond, true},
		{"a deadline that leaves more than LockTimeout per wait", 12 * time.Second, false, 5 * time.Second, 5 * time.Second, false},
		{"a short deadline", 100 * time.Millisecond, false, 40 * time.Millisecond, 45 * time.Millisecond, true},
		{"a deadline that passed", -time.Second, false, time.Millisecond, time.Millisecond, true},
		{"read-only", 2 * time.Second, true, 5 * time.Second, 5 * time.Second, false},
	} {
		ctx := context.Background()
		if c.deadline != 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, c.deadline)
			defer cancel()
		}
		d, bounded := db.lockTimeout(ctx, c.readOnly)
		if d < c.min || d > c.max || bounded != c.bounded {
			t.Errorf("%s: %s (bounded %v), want within [%s, %s] (bounded %v)", c.name, d, bounded, c.min, c.max, c.bounded)
		}
	}
}

// holdHotRow inserts the product "hot" and holds its row FOR UPDATE in a
// transaction of its own until the returned func is called, which ends
// that transaction and reports how it ended.
func holdHotRow(t *testing.T, ctx context.Context, db *DB) (release func()) {
	t.Helper()
	if err := db.Gorm().Exec("INSERT INTO products (name, stock) VALUES (?, 10) ON CONFLICT DO NOTHING", "hot").Error; err != nil {
		t.Fatal(err)
	}
	locked, done, held := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	go func() {
		held <- db.Tx(ctx, func(tx *gorm.DB) error {
			if err := tx.Exec("SELECT id FROM products WHERE name = ? FOR UPDATE", "hot").Error; err != nil {
				return err
			}
			close(locked)
			<-done
			return nil
		})
	}()
	select {
	case <-locked:
	case err := <-held:
		t.Fatalf("holding the row: %v", err)
	}
	return sync.OnceFunc(func() {
		close(done)
		if err := <-held; err != nil {
			t.Errorf("holding the row: %v", err)
		}
	})
}

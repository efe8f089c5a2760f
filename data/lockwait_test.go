package data

import (
	"context"
	"errors"
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
			if err := db.Gorm().Exec("INSERT INTO products (name, stock) VALUES (?, 10) ON CONFLICT DO NOTHING", "hot").Error; err != nil {
				t.Fatal(err)
			}
			locked, release, held := make(chan struct{}), make(chan struct{}), make(chan error, 1)
			go func() {
				held <- db.Tx(ctx, func(tx *gorm.DB) error {
					if err := tx.Exec("SELECT id FROM products WHERE name = ? FOR UPDATE", "hot").Error; err != nil {
						return err
					}
					close(locked)
					<-release
					return nil
				})
			}()
			select {
			case <-locked:
			case err := <-held:
				t.Fatalf("holding the row: %v", err)
			}
			err := db.Tx(ctx, func(tx *gorm.DB) error {
				return tx.Exec("UPDATE products SET stock = stock - 1 WHERE name = ?", "hot").Error
			}, Attempts(1))
			close(release)
			if err := <-held; err != nil {
				t.Fatalf("holding the row: %v", err)
			}
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

package data

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sony/gobreaker/v2"
	"gorm.io/gorm"
)

// The app tier's breaker counts only what IsFailure calls a failure:
// not-found and duplicates leave it closed, timeouts open it.
func TestBreakerCountsOnlyDatabaseFailures(t *testing.T) {
	postgresBackends(t, func(t *testing.T, cfg Config) {
		// Only the slow statements get a short statement_timeout: with it on
		// every statement, a loaded machine could time out the lookups too.
		db := openTest(t, cfg)
		ctx := context.Background()
		cb := gobreaker.NewCircuitBreaker[any](gobreaker.Settings{
			Name:         "data",
			Timeout:      time.Minute,
			ReadyToTrip:  func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= 3 },
			IsSuccessful: func(err error) bool { return !IsFailure(err) },
		})
		call := func(fn func() error) error {
			_, err := cb.Execute(func() (any, error) { return nil, fn() })
			return err
		}
		if err := db.Gorm().Create(&Product{Name: "p", Stock: 1}).Error; err != nil {
			t.Fatal(err)
		}
		for range 10 {
			err := call(func() error { var p Product; return db.WithContext(ctx).First(&p, 999).Error })
			if !errors.Is(err, ErrNotFound) {
				t.Fatalf("lookup: %v", err)
			}
			err = call(func() error { return db.WithContext(ctx).Create(&Product{Name: "p", Stock: 1}).Error })
			if !errors.Is(err, ErrDuplicate) {
				t.Fatalf("duplicate: %v", err)
			}
		}
		if s := cb.State(); s != gobreaker.StateClosed {
			t.Fatalf("breaker %v after not-found and duplicates", s)
		}
		for range 3 {
			err := call(func() error {
				return db.Tx(ctx, func(tx *gorm.DB) error {
					if err := tx.Exec("SET LOCAL statement_timeout = 100").Error; err != nil {
						return err
					}
					return tx.Exec("SELECT pg_sleep(5)").Error
				}, Attempts(1))
			})
			if !errors.Is(err, ErrTimeout) {
				t.Fatalf("slow statement: %v, want ErrTimeout", err)
			}
		}
		if s := cb.State(); s != gobreaker.StateOpen {
			t.Fatalf("breaker %v after 3 timeouts, want open", s)
		}
		if err := call(func() error { t.Error("the open breaker let a call through"); return nil }); !errors.Is(err, gobreaker.ErrOpenState) {
			t.Errorf("call through an open breaker: %v", err)
		}
	})
}

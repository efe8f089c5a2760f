package data

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"gorm.io/gorm"
)

var errOutOfStock = errors.New("out of stock")

// 32 goroutines order from one product with limited stock, each order a
// read-check-write transaction under serializable isolation. Without the
// isolation (or without the retries) stock would be oversold or updates
// lost; with them every committed order is there and stock adds up.
func TestOrdersUnderSerializableIsolation(t *testing.T) {
	dialects(t, func(t *testing.T, cfg Config) {
		if cfg.Dialect() == SQLite {
			// A short busy timeout makes writers collide on SQLite's
			// single write lock, so that Tx has to retry there too.
			cfg.BusyTimeout = time.Millisecond
		}
		db := openTest(t, cfg)
		ctx := context.Background()
		const initial = 150
		p := Product{Name: "widget", Stock: initial}
		if err := db.Gorm().WithContext(ctx).Create(&p).Error; err != nil {
			t.Fatal(err)
		}

		const workers, perWorker = 32, 5
		var (
			mu        sync.Mutex
			committed []Order
			rejected  int
			wg        sync.WaitGroup
		)
		for w := range workers {
			wg.Go(func() {
				for i := range perWorker {
					qty := 1 + (w+i)%3
					var o Order
					err := db.Tx(ctx, func(tx *gorm.DB) error {
						var cur Product
						if err := tx.First(&cur, p.ID).Error; err != nil {
							return err
						}
						if cur.Stock < qty {
							return errOutOfStock
						}
						if err := tx.Model(&cur).Update("stock", cur.Stock-qty).Error; err != nil {
							return err
						}
						o = Order{ProductID: p.ID, Qty: qty, Note: fmt.Sprintf("w%d-%d", w, i)}
						return tx.Create(&o).Error
					}, Serializable(), Attempts(200))
					mu.Lock()
					switch {
					case err == nil:
						committed = append(committed, o)
					case errors.Is(err, errOutOfStock):
						rejected++
					default:
						t.Errorf("order w%d-%d: %v", w, i, err)
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()

		var final Product
		if err := db.Gorm().First(&final, p.ID).Error; err != nil {
			t.Fatal(err)
		}
		sold := 0
		for _, o := range committed {
			sold += o.Qty
			var got Order
			if err := db.Gorm().First(&got, o.ID).Error; err != nil {
				t.Errorf("committed order %d (%s): %v", o.ID, o.Note, err)
			} else if got != o {
				t.Errorf("order %d is %+v, committed %+v", o.ID, got, o)
			}
		}
		if final.Stock < 0 {
			t.Errorf("stock went negative: %d", final.Stock)
		}
		if final.Stock+sold != initial {
			t.Errorf("stock %d + sold %d != initial %d: lost updates", final.Stock, sold, initial)
		}
		if n := count(t, db, "orders"); n != int64(len(committed)) {
			t.Errorf("%d orders in the table, %d committed", n, len(committed))
		}
		retries := counterValue(t, db.metrics.retries)
		t.Logf("%d committed, %d out of stock, stock %d, %v retries", len(committed), rejected, final.Stock, retries)
		if retries == 0 {
			t.Error("no transaction was retried: the test did not create contention")
		}
		if len(committed)+rejected != workers*perWorker {
			t.Errorf("%d committed + %d rejected != %d attempted", len(committed), rejected, workers*perWorker)
		}
	})
}

// A Tx called with the context of an outer Tx runs under a savepoint: its
// failure rolls back its own work only.
func TestNestedTxUsesSavepoints(t *testing.T) {
	dialects(t, func(t *testing.T, cfg Config) {
		db := openTest(t, cfg)
		ctx := context.Background()
		err := db.Tx(ctx, func(tx *gorm.DB) error {
			if err := tx.Create(&Product{Name: "a", Stock: 1}).Error; err != nil {
				return err
			}
			inner := db.Tx(tx.Statement.Context, func(tx *gorm.DB) error {
				if err := tx.Create(&Product{Name: "b", Stock: 1}).Error; err != nil {
					return err
				}
				return tx.Create(&Product{Name: "a", Stock: 2}).Error // duplicate
			})
			if !errors.Is(inner, ErrDuplicate) {
				return fmt.Errorf("inner tx: want ErrDuplicate, got %v", inner)
			}
			// WithContext joins the outer transaction too.
			return db.WithContext(tx.Statement.Context).Create(&Product{Name: "c", Stock: 1}).Error
		})
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		if err := db.Gorm().Model(&Product{}).Order("name").Pluck("name", &names).Error; err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(names) != "[a c]" {
			t.Errorf("products %v, want [a c] (b rolled back with its savepoint)", names)
		}
	})
}

// A closure that fails rolls everything back and is not retried; its error
// comes back as is.
func TestTxRollsBackAndDoesNotRetryOtherErrors(t *testing.T) {
	dialects(t, func(t *testing.T, cfg Config) {
		db := openTest(t, cfg)
		ctx := context.Background()
		boom := errors.New("boom")
		calls := 0
		err := db.Tx(ctx, func(tx *gorm.DB) error {
			calls++
			if err := tx.Create(&Product{Name: "x", Stock: 1}).Error; err != nil {
				return err
			}
			return boom
		})
		if !errors.Is(err, boom) || calls != 1 {
			t.Fatalf("err %v after %d calls, want boom after 1", err, calls)
		}
		if n := count(t, db, "products"); n != 0 {
			t.Errorf("%d products after rollback", n)
		}
		// A retryable error is retried up to the attempt limit, then
		// reported as ErrRetryable.
		calls = 0
		err = db.Tx(ctx, func(tx *gorm.DB) error {
			calls++
			return &Error{Kind: ErrRetryable, Err: errors.New("simulated conflict")}
		}, Attempts(3))
		if !errors.Is(err, ErrRetryable) || calls != 3 {
			t.Errorf("err %v after %d calls, want ErrRetryable after 3", err, calls)
		}
	})
}

func TestTxReadOnlyRejectsWrites(t *testing.T) {
	postgresBackends(t, func(t *testing.T, cfg Config) {
		db := openTest(t, cfg)
		err := db.Tx(context.Background(), func(tx *gorm.DB) error {
			return tx.Create(&Product{Name: "x", Stock: 1}).Error
		}, ReadOnly(), Isolation(0))
		if err == nil {
			t.Fatal("write in a read-only transaction succeeded")
		}
		if n := count(t, db, "products"); n != 0 {
			t.Errorf("%d products", n)
		}
	})
}

func TestBackoffIsBoundedAndGrows(t *testing.T) {
	for attempt := 1; attempt < 100; attempt++ {
		d := backoff(attempt, 2*time.Millisecond, 250*time.Millisecond)
		limit := min(250*time.Millisecond, 2*time.Millisecond<<min(attempt-1, 20))
		if d <= 0 || d > limit+1 {
			t.Fatalf("attempt %d: backoff %v outside (0, %v]", attempt, d, limit)
		}
	}
}

// When every connection is busy, a statement waits at most OpTimeout for
// one and fails as a timeout, rather than queueing without end.
func TestPoolWaitIsBounded(t *testing.T) {
	dialects(t, func(t *testing.T, cfg Config) {
		cfg.MaxOpenConns, cfg.OpTimeout = 1, 300*time.Millisecond
		db := openTest(t, cfg)
		holding, release := make(chan struct{}), make(chan struct{})
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		done := make(chan error, 1)
		go func() {
			done <- db.Tx(ctx, func(tx *gorm.DB) error {
				if err := tx.Create(&Product{Name: "held", Stock: 1}).Error; err != nil {
					return err
				}
				close(holding)
				<-release
				return nil
			})
		}()
		<-holding
		start := time.Now()
		var p Product
		err := db.WithContext(context.Background()).First(&p).Error
		elapsed := time.Since(start)
		close(release)
		if !errors.Is(err, ErrTimeout) || !IsFailure(err) {
			t.Errorf("query on a saturated pool: %v, want ErrTimeout", err)
		}
		if elapsed < 250*time.Millisecond || elapsed > 5*time.Second {
			t.Errorf("query on a saturated pool failed after %v, want about 300ms", elapsed)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		// The statement's context was restored: the same session works.
		if err := db.WithContext(context.Background()).First(&p).Error; err != nil {
			t.Errorf("after the pool freed up: %v", err)
		}
	})
}

// A serialization failure or deadlock inside a nested Tx dooms the whole
// transaction: the outer Tx reruns from the start even when its closure
// carries on past the inner error.
func TestRetryableErrorInNestedTxRerunsTheOuterOne(t *testing.T) {
	dialects(t, func(t *testing.T, cfg Config) {
		db := openTest(t, cfg)
		ctx := context.Background()
		calls := 0
		err := db.Tx(ctx, func(tx *gorm.DB) error {
			calls++
			if err := tx.Create(&Product{Name: fmt.Sprint("p", calls), Stock: 1}).Error; err != nil {
				return err
			}
			inner := db.Tx(tx.Statement.Context, func(tx *gorm.DB) error {
				return db.Tx(tx.Statement.Context, func(*gorm.DB) error {
					if calls < 3 {
						return &Error{Kind: ErrRetryable, Err: errors.New("simulated conflict")}
					}
					return nil
				})
			})
			_ = inner // the closure ignores it: the transaction is doomed all the same
			return nil
		}, Attempts(5))
		if err != nil || calls != 3 {
			t.Fatalf("err %v after %d calls, want nil after 3", err, calls)
		}
		var names []string
		if err := db.Gorm().Model(&Product{}).Pluck("name", &names).Error; err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(names) != "[p3]" {
			t.Errorf("products %v, want [p3]: only the last run commits", names)
		}
	})
}

// A Tx closure that panics rolls back and the panic goes on up.
func TestTxRollsBackOnPanic(t *testing.T) {
	dialects(t, func(t *testing.T, cfg Config) {
		db := openTest(t, cfg)
		func() {
			defer func() {
				if r := recover(); r != "boom" {
					t.Errorf("recovered %v, want boom", r)
				}
			}()
			_ = db.Tx(context.Background(), func(tx *gorm.DB) error {
				if err := tx.Create(&Product{Name: "x", Stock: 1}).Error; err != nil {
					return err
				}
				panic("boom")
			})
		}()
		if n := count(t, db, "products"); n != 0 {
			t.Errorf("%d products after a panic", n)
		}
		if s := db.SQL().Stats(); s.InUse != 0 {
			t.Errorf("%d connections still in use after a panic", s.InUse)
		}
	})
}

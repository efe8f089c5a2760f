package data

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/threetier/threetier/internal/wait"
	"github.com/threetier/threetier/tier"
)

// The DB is the readiness check of the data tier: ready while it answers,
// not ready once it is gone.
func TestReadinessFollowsTheDatabase(t *testing.T) {
	db := openTest(t, Config{Path: filepath.Join(t.TempDir(), "r.db")})
	var h tier.Health
	h.Register(db.Name(), db)
	srv := httptest.NewServer(h.Handler())
	defer srv.Close()
	status := func() int {
		resp, err := http.Get(srv.URL + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if s := status(); s != http.StatusOK {
		t.Fatalf("readyz %d with the database up", s)
	}
	if err := db.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s := status(); s != http.StatusServiceUnavailable {
		t.Errorf("readyz %d after Stop", s)
	}
	srv.CloseClientConnections()
}

func TestAutoMigrate(t *testing.T) {
	type Note struct {
		ID   int64
		Text string `gorm:"size:20;not null"`
	}
	dialects(t, func(t *testing.T, cfg Config) {
		db := openTest(t, cfg)
		ctx := context.Background()
		if err := db.AutoMigrate(ctx, &Note{}); err != nil {
			t.Fatal(err)
		}
		if err := db.WithContext(ctx).Create(&Note{Text: "hi"}).Error; err != nil {
			t.Fatal(err)
		}
		if n := count(t, db, "notes"); n != 1 {
			t.Errorf("%d notes", n)
		}
	})
}

// SQLite write transactions take the write lock at BEGIN (BEGIN
// IMMEDIATE): a second one cannot even start while the first is open, so
// no transaction ever fails half-way when it upgrades from reading to
// writing. Read-only ones start regardless.
func TestSQLiteWriteTransactionsBeginImmediately(t *testing.T) {
	db := openTest(t, Config{Path: filepath.Join(t.TempDir(), "i.db"), BusyTimeout: time.Millisecond})
	ctx := context.Background()
	holding, release := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- db.Tx(ctx, func(tx *gorm.DB) error {
			var n int64
			if err := tx.Model(&Product{}).Count(&n).Error; err != nil {
				return err
			}
			close(holding)
			<-release
			return nil
		})
	}()
	<-holding
	readOnly := func(tx *gorm.DB) error { var n int64; return tx.Model(&Product{}).Count(&n).Error }
	err := db.Tx(ctx, readOnly, Attempts(1))
	if !errors.Is(err, ErrRetryable) {
		t.Errorf("second write transaction: %v, want ErrRetryable (busy at BEGIN)", err)
	}
	if err := db.Tx(ctx, readOnly, ReadOnly()); err != nil {
		t.Errorf("read-only transaction next to a writer: %v", err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// Stop gives statements in flight until its context ends, then cuts them
// off: a shutdown must not wait for a 30-second query.
func TestStopHonoursItsContext(t *testing.T) {
	postgresBackends(t, func(t *testing.T, cfg Config) {
		db := openTest(t, cfg)
		done := make(chan error, 1)
		go func() { done <- db.WithContext(context.Background()).Exec("SELECT pg_sleep(30)").Error }()
		wait.For(t, 10*time.Second, "the statement in flight", func() bool { return db.SQL().Stats().InUse > 0 })
		start := time.Now()
		stopCutsOff(t, db, done)
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("Stop took %v", d)
		}
	})
}

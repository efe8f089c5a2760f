package data

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/threetier/threetier/tier"
)

// Errors the databases really return describe their HTTP answer and
// whether they are a failure of the database, through any wrapping, with
// no driver text in what the client is told.
func TestErrorsDescribeThemselves(t *testing.T) {
	dialects(t, func(t *testing.T, cfg Config) {
		if cfg.Dialect() == SQLite {
			cfg.BusyTimeout = 10 * time.Millisecond // a second writer gives up at once
		}
		db := openTest(t, cfg)
		ctx := context.Background()
		g := db.WithContext(ctx)
		p := Product{Name: "widget", Stock: 3}
		if err := g.Create(&p).Error; err != nil {
			t.Fatal(err)
		}
		expired, cancel := context.WithDeadline(ctx, time.Now().Add(-time.Second))
		defer cancel()

		cases := []struct {
			name       string
			err        error
			status     int
			detail     string
			retryAfter bool
			failure    bool
		}{
			{"not found", g.First(&Product{}, p.ID+1000).Error, 404, "not found", false, false},
			{"duplicate", g.Create(&Product{Name: "widget", Stock: 1}).Error, 409, "it already exists", false, false},
			{"check constraint", g.Model(&p).Update("stock", -1).Error, 422, "a value is out of range or breaks a rule of the data", false, false},
			{"conflict", conflict(t, db, p.ID), 503, "the request collided with others, try again", true, false},
			{"deadline", db.WithContext(expired).First(&Product{}, p.ID).Error, 504, "the database did not answer in time", false, true},
			{"unreachable", unreachable(t, cfg), 503, "the database is unavailable, try again", true, true},
		}
		for _, c := range cases {
			err := fmt.Errorf("handler: %w", c.err)
			prob := tier.ProblemOf(err)
			if prob == nil {
				t.Errorf("%s: %v describes no problem", c.name, c.err)
				continue
			}
			// The client gets plain words; the error, for the log, the
			// whole chain, with the package named once.
			if prob.Status != c.status || (prob.RetryAfter > 0) != c.retryAfter || prob.Detail != c.detail {
				t.Errorf("%s: %v answers %d %q (Retry-After %v), want %d %q (Retry-After %v)", c.name, c.err, prob.Status, prob.Detail, prob.RetryAfter, c.status, c.detail, c.retryAfter)
			}
			if msg := c.err.Error(); !strings.HasPrefix(msg, "data: ") || strings.Count(msg, "data: ") != 1 || len(msg) <= len(c.detail) {
				t.Errorf("%s: the error says %q, want the chain with one \"data: \"", c.name, msg)
			}
			if failure, known := tier.DependencyFailureOf(err); !known || failure != c.failure {
				t.Errorf("%s: %v: failure %v (known %v), want %v", c.name, c.err, failure, known, c.failure)
			}
		}
	})
}

// conflict returns the error of a transaction that lost to a concurrent
// one: on SQLite a second writer (busy at BEGIN), on PostgreSQL a
// repeatable-read update of a row changed since its snapshot (40001).
func conflict(t *testing.T, db *DB, id int64) error {
	t.Helper()
	ctx := context.Background()
	if db.Dialect() == SQLite {
		holding, release, done := make(chan struct{}), make(chan struct{}), make(chan error, 1)
		go func() {
			done <- db.Tx(ctx, func(tx *gorm.DB) error {
				if err := tx.Model(&Product{}).Where("id = ?", id).Update("stock", 4).Error; err != nil {
					return err
				}
				close(holding)
				<-release
				return nil
			})
		}()
		<-holding
		err := db.Tx(ctx, func(tx *gorm.DB) error { return tx.Model(&Product{}).Where("id = ?", id).Update("stock", 5).Error }, Attempts(1))
		close(release)
		if werr := <-done; werr != nil {
			t.Fatal(werr)
		}
		return err
	}
	return db.Tx(ctx, func(tx *gorm.DB) error {
		var p Product
		if err := tx.First(&p, id).Error; err != nil {
			return err
		}
		if err := db.WithContext(ctx).Model(&Product{}).Where("id = ?", id).Update("stock", p.Stock+1).Error; err != nil {
			return err
		}
		return tx.Model(&p).Update("stock", p.Stock+2).Error
	}, Isolation(sql.LevelRepeatableRead), Attempts(1))
}

// unreachable returns the error of opening a database that is not there.
func unreachable(t *testing.T, cfg Config) error {
	t.Helper()
	if cfg.Dialect() == SQLite {
		cfg = Config{Path: filepath.Join(t.TempDir(), "no", "such", "dir.db")}
	} else {
		cfg = Config{DSN: "postgres://postgres@127.0.0.1:1/none?sslmode=disable", ConnectTimeout: time.Second}
	}
	db, err := Open(context.Background(), cfg)
	if err == nil {
		db.Close()
		t.Fatal("opened a database that is not there")
	}
	return err
}

var errDescribeSentinel = errors.New("not a data error")

// An error this package did not classify describes nothing, so that the
// app tier decides; a bare sentinel describes itself as its class does.
func TestUnclassifiedErrorsDescribeNothing(t *testing.T) {
	if p := tier.ProblemOf(errDescribeSentinel); p != nil {
		t.Errorf("an unclassified error answers %+v", p)
	}
	if _, known := tier.DependencyFailureOf(errDescribeSentinel); known {
		t.Error("an unclassified error judges itself")
	}
	if p := tier.ProblemOf(&Error{Kind: errDescribeSentinel}); p != nil {
		t.Errorf("an *Error of a foreign kind answers %+v", p)
	}
	if p := tier.ProblemOf(ErrNotFound); p == nil || p.Status != 404 {
		t.Errorf("ErrNotFound answers %+v", p)
	}
}

package data

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/threetier/threetier/internal/retry"
)

// starter is the state of Start's wait for a database that did not answer
// at once. Its zero value stands for a DB that is not waiting.
type starter struct {
	mu     sync.Mutex
	since  time.Time // when the wait began; zero: not waiting
	last   error     // why the database is not ready yet, while waiting
	failed error     // why the wait gave up
	cancel context.CancelFunc
	done   chan struct{} // closed when the wait ends; nil: none began

	failures chan error // Failed; it yields the give-up error
}

// Start checks that the database answers and applies pending migrations.
// A database that does not answer yet (unreachable, starting up, refusing
// connections) is waited for instead, for up to Config.Start.Timeout: Start
// returns at once and keeps trying in the background with back-off, the
// DB is not ready (Check, Started) until the database answered and the
// migrations are applied, and if it gives up the DB fails (Failed) with
// the reason. Any other error (a migration that fails, a password the
// database refuses) is returned as it is.
func (db *DB) Start(ctx context.Context) error {
	err := db.connect(ctx)
	if err == nil || db.cfg.Start.Timeout < 0 || !waitable(err) || ctx.Err() != nil {
		return err
	}
	db.log.Warn("database not answering yet: waiting for it", "err", err, "start_timeout", db.cfg.Start.Timeout)
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s := &db.start
	s.mu.Lock()
	s.since, s.last, s.cancel, s.done = time.Now(), err, cancel, make(chan struct{})
	s.mu.Unlock()
	go db.waitForDatabase(wctx, s.since.Add(db.cfg.Start.Timeout))
	return nil
}

// connect pings the database and applies the migrations.
func (db *DB) connect(ctx context.Context) error {
	if err := db.ping(ctx, true); err != nil {
		return err
	}
	if db.fsys == nil {
		return nil
	}
	_, err := db.Migrate(ctx)
	return err
}

// waitable reports whether err says the database is not there yet, rather
// than that something is wrong with what was asked of it.
func waitable(err error) bool {
	return errors.Is(err, ErrUnavailable) || errors.Is(err, ErrTimeout)
}

// waitForDatabase tries to connect until it succeeds, deadline passes, or
// ctx ends (Stop).
func (db *DB) waitForDatabase(ctx context.Context, deadline time.Time) {
	s := &db.start
	defer close(s.done)
	cfg := db.cfg.Start
	for n := 0; ; n++ {
		pause := retry.Backoff(cfg.Backoff, cfg.MaxBackoff, n)
		if time.Until(deadline) <= pause {
			s.mu.Lock()
			s.failed = fmt.Errorf("data: the database did not answer within the start timeout of %s (Start.Timeout): %w", cfg.Timeout, s.last)
			s.mu.Unlock()
			s.failures <- s.failed
			return
		}
		if !retry.Sleep(ctx, pause) {
			return
		}
		pctx, cancel := context.WithDeadline(ctx, deadline)
		err := db.ping(pctx, true)
		// A try the start timeout cut short says only that time ran out:
		// the last whole try's error says why the database did not answer.
		cut := pctx.Err() != nil
		cancel()
		if err == nil && db.fsys != nil {
			// The migrations are bounded by Stop only: once the database
			// answers, a long migration is not a missing database.
			_, err = db.Migrate(ctx)
		}
		if ctx.Err() != nil {
			return
		}
		s.mu.Lock()
		switch {
		case err == nil:
			s.since, s.last = time.Time{}, nil
		case waitable(err):
			if s.last == nil || !cut {
				s.last = err
			}
		default:
			s.failed = err
		}
		failed := s.failed
		s.mu.Unlock()
		if err == nil {
			db.log.Info("database answered: the data tier is ready")
			return
		}
		if failed != nil {
			s.failures <- failed
			return
		}
	}
}

// Started reports, as a tier.Checker does, whether the DB is past its
// start: nil unless Start is still waiting for the database (an error that
// says since when, and the last try's error) or gave up (its reason). It
// does not ask the database, so a readiness check made of it follows the
// start only, not a later outage:
//
//	health.Register("data", tier.CheckFunc(db.Started))
func (db *DB) Started(context.Context) error {
	s := &db.start
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.failed != nil:
		return s.failed
	case !s.since.IsZero():
		return fmt.Errorf("data: waiting %s for the database to answer: %w", time.Since(s.since).Round(time.Millisecond), s.last)
	}
	return nil
}

// Failed yields the error that ended Start's wait for the database (see
// Start), making the DB a tier.Failer: Run then stops the service with it.
func (db *DB) Failed() <-chan error { return db.start.failures }

// stopWaiting ends Start's wait, if one runs, and returns once it ended.
func (db *DB) stopWaiting() {
	s := &db.start
	s.mu.Lock()
	cancel, done := s.cancel, s.done
	s.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
}

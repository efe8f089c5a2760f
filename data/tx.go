package data

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"sync"
	"time"

	"gorm.io/gorm"

	"github.com/threetier/threetier/internal/retry"
)

// A TxOption changes how Tx runs one transaction.
type TxOption func(*txOptions)

type txOptions struct {
	isolation sql.IsolationLevel
	readOnly  bool
	attempts  int
}

// Isolation sets the isolation level (PostgreSQL; SQLite transactions are
// always serializable).
func Isolation(level sql.IsolationLevel) TxOption {
	return func(o *txOptions) { o.isolation = level }
}

// Serializable is Isolation(sql.LevelSerializable).
func Serializable() TxOption { return Isolation(sql.LevelSerializable) }

// ReadOnly starts a read-only transaction (on SQLite, a deferred one that
// does not take the write lock).
func ReadOnly() TxOption { return func(o *txOptions) { o.readOnly = true } }

// Attempts overrides Config.Tx.Attempts for this transaction; 1 turns
// retries off.
func Attempts(n int) TxOption { return func(o *txOptions) { o.attempts = max(n, 1) } }

type txKey struct{}

// txState is what a Tx closure's context carries: the transaction, the DB
// it belongs to, and the outermost transaction, which a retryable error in
// any nested one dooms.
type txState struct {
	db   *DB
	tx   *gorm.DB
	root *txState

	mu   sync.Mutex
	doom error // the retryable error of a nested Tx; root only
}

// txFrom returns the transaction of db that ctx runs in, or nil.
func (db *DB) txFrom(ctx context.Context) *txState {
	if ctx == nil {
		return nil
	}
	if st, _ := ctx.Value(txKey{}).(*txState); st != nil && st.db == db {
		return st
	}
	return nil
}

func (st *txState) doomWith(err error) {
	st.root.mu.Lock()
	defer st.root.mu.Unlock()
	if st.root.doom == nil {
		st.root.doom = err
	}
}

func (st *txState) doomed() error {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.doom
}

// Tx runs fn in a transaction and commits it when fn returns nil. When the
// transaction fails with a serialization failure (40001), a deadlock
// (40P01) or a busy SQLite database, Tx rolls back, waits a jittered,
// doubling back-off and runs fn again, up to Config.Tx.Attempts times and
// within ctx's deadline (a back-off the deadline would cut short is not
// waited); fn must therefore only touch the database through tx (or ctx,
// see WithContext) and be safe to rerun. The error then matches
// ErrRetryable.
//
// Called with a context that is already inside a Tx (the one fn's tx
// carries), Tx nests: it runs fn under a savepoint, rolled back alone if fn
// fails, and leaves retries to the outermost Tx: a retryable error in a
// nested Tx makes the outermost one roll back and rerun even if the outer
// closure carries on (PostgreSQL would fail the rest of a doomed
// serializable transaction anyway). Options are those of the outermost Tx.
//
// On PostgreSQL, a transaction that may write and whose ctx ends before
// Config.LockTimeout would end a wait stops waiting for a row lock a
// little before ctx's deadline (SET LOCAL lock_timeout, one more round
// trip; see lockTimeout): a row held
// elsewhere then costs ErrTimeout as a lock wait, no failure of the
// database (see IsFailure), and its connection is free again before the
// caller gives up.
func (db *DB) Tx(ctx context.Context, fn func(tx *gorm.DB) error, opts ...TxOption) error {
	if outer := db.txFrom(ctx); outer != nil {
		err := classifyIn(ctx, outer.tx.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
			return fn(tx.WithContext(context.WithValue(ctx, txKey{}, &txState{db: db, tx: tx, root: outer.root})))
		}))
		if kindOf(err) == ErrRetryable {
			outer.doomWith(err)
		}
		return err
	}
	o := txOptions{attempts: db.cfg.Tx.Attempts}
	for _, opt := range opts {
		opt(&o)
	}
	sqlOpts := &sql.TxOptions{ReadOnly: o.readOnly}
	if db.Dialect() == Postgres {
		sqlOpts.Isolation = o.isolation
	}
	for attempt := 1; ; attempt++ {
		err := classifyIn(ctx, db.txOnce(ctx, fn, sqlOpts))
		if err == nil {
			if s := sessionFrom(ctx); s != nil && !o.readOnly {
				s.markWrote()
			}
			return nil
		}
		if kindOf(err) != ErrRetryable || ctx.Err() != nil {
			return err
		}
		if attempt >= o.attempts {
			return within(fmt.Sprintf("transaction gave up after %d attempts", attempt), err)
		}
		wait := backoff(attempt, db.cfg.Tx.Backoff, db.cfg.Tx.MaxBackoff)
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) <= wait {
			// The caller's deadline would pass in the back-off: it has
			// the conflict now rather than a timeout then.
			return within(fmt.Sprintf("transaction gave up after %d attempts, no time left for another", attempt), err)
		}
		db.metrics.retries.Inc()
		if !retry.Sleep(ctx, wait) {
			return Classify(ctx.Err())
		}
	}
}

// txOnce runs one attempt of a Tx. When ctx carries read-after positions (internal/readafter), the
// transaction runs on a connection of its own, on which the position of
// its commit is asked right after it (see notePosition).
func (db *DB) txOnce(ctx context.Context, fn func(tx *gorm.DB) error, opts *sql.TxOptions) error {
	caller := ctx // whose own deadline bounds the lock waits (see lockTimeout)
	ctx, cancel := withOpTimeout(ctx, db.cfg.OpTimeout)
	defer cancel()
	st := &txState{db: db}
	st.root = st
	g := db.gorm.WithContext(ctx)
	var conn *sql.Conn
	if db.Dialect() == Postgres && !opts.ReadOnly && db.positions(ctx) != nil {
		var err error
		if conn, err = db.primary.Conn(ctx); err != nil {
			return err
		}
		defer func() { _ = conn.Close() }()
		g.Statement.ConnPool = conn
	}
	committing := false
	err := g.Transaction(func(tx *gorm.DB) error {
		st.tx = tx
		if err := db.setLocal(caller, tx, opts.ReadOnly); err != nil {
			return err
		}
		if err := fn(tx.WithContext(context.WithValue(ctx, txKey{}, st))); err != nil {
			return err
		}
		if err := st.doomed(); err != nil {
			return err
		}
		committing = true
		return nil
	}, opts)
	if err != nil && committing {
		db.commitFailed(ctx, err)
	}
	if err == nil && conn != nil {
		db.notePosition(ctx, func(text *string) error { return conn.QueryRowContext(ctx, currentPosition).Scan(text) })
	}
	return err
}

// commitFailed tells of a transaction whose commit failed: no statement
// log names it, and its cause (a full disk, a read-only file system) is
// what an operator needs to see. A conflict found at commit is rerun by
// Tx like any other and logged as one.
func (db *DB) commitFailed(ctx context.Context, err error) {
	class := commitFailureClass(err)
	db.metrics.commits.WithLabelValues(class).Inc()
	if class == "conflict" {
		db.log.DebugContext(ctx, "commit conflict", "err", err)
		return
	}
	db.log.ErrorContext(ctx, "commit failed", "class", class, "err", err)
}

// backoff is the wait before attempt+1 (attempt from 1): full jitter up to
// base·2^(attempt-1), capped, and never zero.
func backoff(attempt int, base, ceiling time.Duration) time.Duration {
	return retry.Backoff(base, ceiling, attempt-1) + 1
}

// setLocal sets a transaction's timeouts with SET LOCAL where the
// connection's own do not fit. Behind PgBouncer, it sets both: a session
// setting would stay on the server connection, which PgBouncer lends to
// other clients after the transaction. In a transaction that may write,
// it sets lock_timeout when the caller's deadline (ctx's, not OpTimeout's)
// comes before Config.LockTimeout would end a lock wait (see
// lockTimeout).
func (db *DB) setLocal(ctx context.Context, tx *gorm.DB, readOnly bool) error {
	if db.Dialect() != Postgres {
		return nil
	}
	lock, bounded := db.lockTimeout(ctx, readOnly)
	switch {
	case db.cfg.PgBouncer:
		return tx.Exec(`SELECT set_config('statement_timeout', ?, true), set_config('lock_timeout', ?, true)`,
			millis(db.cfg.StatementTimeout), millis(lock)).Error
	case bounded:
		return tx.Exec(`SELECT set_config('lock_timeout', ?, true)`, millis(lock)).Error
	}
	return nil
}

// lockTimeout is how long a transaction run with ctx may wait for a lock:
// Config.LockTimeout, or, when the deadline of a transaction that may
// write comes sooner, half of what the deadline leaves less a tenth for
// rolling back and answering; bounded reports the latter. Half, because
// taking a row lock can mean two waits, each bounded by lock_timeout on
// its own: for the row's place in the queue, behind another waiter, then
// for the transaction that holds the row. A
// wait for a row another transaction holds (a hot row) then ends as a lock
// wait, which is no failure of the database (see IsFailure), rather than
// as the caller's deadline, which a guard in front counts against it. A
// read-only transaction takes no row locks.
func (db *DB) lockTimeout(ctx context.Context, readOnly bool) (d time.Duration, bounded bool) {
	dl, ok := ctx.Deadline()
	if !ok || readOnly {
		return db.cfg.LockTimeout, false
	}
	left := time.Until(dl)
	d = (left - left/10) / 2
	if d >= db.cfg.LockTimeout {
		return db.cfg.LockTimeout, false
	}
	return max(d, time.Millisecond), true
}

// millis is d as PostgreSQL's settings take a duration: whole milliseconds.
func millis(d time.Duration) string { return strconv.FormatInt(d.Milliseconds(), 10) }

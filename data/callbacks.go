package data

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"gorm.io/gorm"
)

// registerClassifyCallbacks makes every GORM operation end by classifying
// its error (see Classify) and counting it.
func registerClassifyCallbacks(g *gorm.DB, m *metrics) error {
	classify := func(tx *gorm.DB) {
		if tx.Error == nil {
			return
		}
		tx.Error = classifyIn(tx.Statement.Context, tx.Error)
		m.countError(tx.Error)
	}
	cb := g.Callback()
	for name, p := range map[string]interface {
		Register(string, func(*gorm.DB)) error
	}{
		"create": cb.Create().After("*"),
		"query":  cb.Query().After("*"),
		"update": cb.Update().After("*"),
		"delete": cb.Delete().After("*"),
		"raw":    cb.Raw().After("*"),
		"row":    cb.Row().After("*"),
	} {
		if err := p.Register("threetier:classify", classify); err != nil {
			return fmt.Errorf("data: register %s callback: %w", name, err)
		}
	}
	return nil
}

// The settings of dbresolver's Write and Read clauses, which the routing
// honours: Clauses(dbresolver.Write) sends a read to the primary.
const (
	writeSetting = "gorm:db_resolver:write"
	readSetting  = "gorm:db_resolver:read"
)

// pinned is the connection a write outside a transaction runs on when its
// request wants the position of its commit, and the pool it replaced.
type pinned struct {
	conn *sql.Conn
	prev gorm.ConnPool
}

type pinnedKey struct{}

// registerRoutingCallbacks sends reads outside transactions to a replica
// that may serve them (see readReplica), and gives read-your-writes to
// requests that carry a session (WithSession) or read-after positions (internal/readafter): writes
// mark the session, and a write outside a transaction runs on a connection
// of its own, on which the position of its commit is asked right after it.
func registerRoutingCallbacks(g *gorm.DB, db *DB) error {
	inTx := func(tx *gorm.DB) bool {
		_, ok := tx.Statement.ConnPool.(gorm.TxCommitter)
		return ok
	}
	read := func(tx *gorm.DB) {
		st := tx.Statement
		if inTx(tx) {
			return
		}
		if _, ok := st.Settings.Load(writeSetting); ok {
			return
		}
		if _, locking := st.Clauses["FOR"]; locking {
			return
		}
		if r := db.readReplica(st.Context); r != nil {
			st.ConnPool = replicaPool{db, r}
		}
	}
	write := func(tx *gorm.DB, pin bool) {
		st := tx.Statement
		if s := sessionFrom(st.Context); s != nil {
			s.markWrote()
		}
		if !pin || inTx(tx) || db.positions(st.Context) == nil {
			return
		}
		conn, err := db.primary.Conn(st.Context)
		if err != nil {
			return // the statement meets the same error on the pool
		}
		st.Settings.Store(pinnedKey{}, pinned{conn, st.ConnPool})
		st.ConnPool = conn
	}
	wrote := func(tx *gorm.DB) {
		v, ok := tx.Statement.Settings.LoadAndDelete(pinnedKey{})
		if !ok {
			return
		}
		p := v.(pinned)
		if tx.Error == nil {
			ctx := tx.Statement.Context
			db.notePosition(ctx, func(text *string) error { return p.conn.QueryRowContext(ctx, currentPosition).Scan(text) })
		}
		_ = p.conn.Close()
		tx.Statement.ConnPool = p.prev
	}
	// Raw statements: SELECTs (and builder queries run with Row) read,
	// everything else writes, as dbresolver guesses. Row's results are
	// read after the callbacks return: its writes cannot be pinned.
	guess := func(pin bool) func(*gorm.DB) {
		return func(tx *gorm.DB) {
			st := tx.Statement
			_, w := st.Settings.Load(writeSetting)
			_, r := st.Settings.Load(readSetting)
			if sql := st.SQL.String(); !w && (r || sql == "" || isSelect(sql)) {
				read(tx)
			} else {
				write(tx, pin)
			}
		}
	}
	writes := func(tx *gorm.DB) { write(tx, true) }
	cb := g.Callback()
	regs := []struct {
		name string
		err  error
	}{
		{"create", cb.Create().Before("*").Register("threetier:route", writes)},
		{"update", cb.Update().Before("*").Register("threetier:route", writes)},
		{"delete", cb.Delete().Before("*").Register("threetier:route", writes)},
		{"query", cb.Query().Before("*").Register("threetier:route", read)},
		{"row", cb.Row().Before("*").Register("threetier:route", guess(false))},
		{"raw", cb.Raw().Before("*").Register("threetier:route", guess(true))},
		{"create", cb.Create().After("*").Register("threetier:route_end", wrote)},
		{"update", cb.Update().After("*").Register("threetier:route_end", wrote)},
		{"delete", cb.Delete().After("*").Register("threetier:route_end", wrote)},
		{"raw", cb.Raw().After("*").Register("threetier:route_end", wrote)},
	}
	for _, r := range regs {
		if r.err != nil {
			return fmt.Errorf("data: register %s routing callback: %w", r.name, r.err)
		}
	}
	return nil
}

type deadlineKey struct{}

type deadline struct {
	orig   context.Context
	cancel context.CancelFunc
}

// registerDeadlineCallbacks bounds a statement by Config.OpTimeout when its
// context has no deadline and it would wait for a connection. Only then:
// a deadline makes database/sql watch the context with a goroutine per
// statement, a cost the common case need not pay. Row and Rows are left
// alone, since their results are read after the callbacks return.
func registerDeadlineCallbacks(g *gorm.DB, db *DB) error {
	if db.cfg.OpTimeout < 0 {
		return nil
	}
	before := func(tx *gorm.DB) {
		ctx := tx.Statement.Context
		if _, ok := ctx.Deadline(); ok || !db.saturated() {
			return
		}
		bounded, cancel := context.WithTimeout(ctx, db.cfg.OpTimeout)
		tx.Statement.Context = bounded
		tx.Statement.Settings.Store(deadlineKey{}, deadline{ctx, cancel})
	}
	// after restores the caller's context: a Statement can be reused.
	after := func(tx *gorm.DB) {
		if v, ok := tx.Statement.Settings.LoadAndDelete(deadlineKey{}); ok {
			d := v.(deadline)
			d.cancel()
			tx.Statement.Context = d.orig
		}
	}
	cb := g.Callback()
	for _, p := range []struct {
		name          string
		before, after error
	}{
		{"create", cb.Create().Before("*").Register("threetier:deadline", before), cb.Create().After("*").Register("threetier:deadline_end", after)},
		{"query", cb.Query().Before("*").Register("threetier:deadline", before), cb.Query().After("*").Register("threetier:deadline_end", after)},
		{"update", cb.Update().Before("*").Register("threetier:deadline", before), cb.Update().After("*").Register("threetier:deadline_end", after)},
		{"delete", cb.Delete().Before("*").Register("threetier:deadline", before), cb.Delete().After("*").Register("threetier:deadline_end", after)},
		{"raw", cb.Raw().Before("*").Register("threetier:deadline", before), cb.Raw().After("*").Register("threetier:deadline_end", after)},
	} {
		if err := errors.Join(p.before, p.after); err != nil {
			return fmt.Errorf("data: register %s deadline callback: %w", p.name, err)
		}
	}
	return nil
}

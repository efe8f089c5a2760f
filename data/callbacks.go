package data

import (
	"context"
	"errors"
	"fmt"

	"gorm.io/gorm"
	"gorm.io/plugin/dbresolver"
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

// registerSessionCallbacks gives read-your-writes to requests that carry a
// session (WithSession): writes mark the session, and reads that follow go
// to the primary instead of a replica that may lag.
func registerSessionCallbacks(g *gorm.DB) error {
	wrote := func(tx *gorm.DB) {
		if s := sessionFrom(tx.Statement.Context); s != nil {
			s.markWrote()
		}
	}
	read := func(tx *gorm.DB) {
		if s := sessionFrom(tx.Statement.Context); s != nil && s.Wrote() {
			dbresolver.Write.ModifyStatement(tx.Statement)
		}
	}
	// Raw statements: dbresolver sends SELECTs (and builder queries run with
	// Row) to replicas, everything else to the primary; mirror that.
	raw := func(tx *gorm.DB) {
		if sql := tx.Statement.SQL.String(); sql == "" || isSelect(sql) {
			read(tx)
		} else {
			wrote(tx)
		}
	}
	// GORM runs the "before *" callbacks last registered first: these run
	// ahead of dbresolver's, registered before them.
	cb := g.Callback()
	regs := []struct {
		name string
		err  error
	}{
		{"create", cb.Create().Before("*").Register("threetier:session", wrote)},
		{"update", cb.Update().Before("*").Register("threetier:session", wrote)},
		{"delete", cb.Delete().Before("*").Register("threetier:session", wrote)},
		{"query", cb.Query().Before("*").Register("threetier:session", read)},
		{"row", cb.Row().Before("*").Register("threetier:session", raw)},
		{"raw", cb.Raw().Before("*").Register("threetier:session", raw)},
	}
	for _, r := range regs {
		if r.err != nil {
			return fmt.Errorf("data: register %s session callback: %w", r.name, r.err)
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

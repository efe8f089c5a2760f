package data

import (
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
		tx.Error = Classify(tx.Error)
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
	cb := g.Callback()
	regs := []struct {
		name string
		err  error
	}{
		{"create", cb.Create().Before("gorm:db_resolver").Register("threetier:session", wrote)},
		{"update", cb.Update().Before("gorm:db_resolver").Register("threetier:session", wrote)},
		{"delete", cb.Delete().Before("gorm:db_resolver").Register("threetier:session", wrote)},
		{"query", cb.Query().Before("gorm:db_resolver").Register("threetier:session", read)},
		{"row", cb.Row().Before("gorm:db_resolver").Register("threetier:session", raw)},
		{"raw", cb.Raw().Before("gorm:db_resolver").Register("threetier:session", raw)},
	}
	for _, r := range regs {
		if r.err != nil {
			return fmt.Errorf("data: register %s session callback: %w", r.name, r.err)
		}
	}
	return nil
}

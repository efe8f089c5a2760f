package data

import (
	"errors"
	"fmt"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"gorm.io/gorm"

	"github.com/threetier/threetier/internal/tracing"
)

type spanKey struct{}

// registerTraceCallbacks gives every statement a client span with the
// OpenTelemetry database attributes: db.system, db.operation, db.sql.table
// and db.statement as GORM built it, with placeholders and never the
// values. Without a recording provider it registers nothing.
func registerTraceCallbacks(g *gorm.DB, tp trace.TracerProvider, dialect Dialect) error {
	tracer := tracing.Tracer(tp)
	if tracer == nil {
		return nil
	}
	system := attribute.String("db.system", "sqlite")
	if dialect == Postgres {
		system = attribute.String("db.system", "postgresql")
	}
	before := func(operation string) func(*gorm.DB) {
		return func(tx *gorm.DB) {
			_, span := tracer.Start(tx.Statement.Context, operation, trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(system))
			tx.Statement.Settings.Store(spanKey{}, span)
		}
	}
	after := func(operation string) func(*gorm.DB) {
		return func(tx *gorm.DB) {
			v, ok := tx.Statement.Settings.LoadAndDelete(spanKey{})
			if !ok {
				return
			}
			endStatement(v.(trace.Span), tx, operation)
		}
	}
	cb := g.Callback()
	for _, p := range []struct {
		name, operation string
		before, after   error
	}{
		{"create", "INSERT", cb.Create().Before("*").Register("threetier:trace", before("INSERT")), cb.Create().After("*").Register("threetier:trace_end", after("INSERT"))},
		{"query", "SELECT", cb.Query().Before("*").Register("threetier:trace", before("SELECT")), cb.Query().After("*").Register("threetier:trace_end", after("SELECT"))},
		{"update", "UPDATE", cb.Update().Before("*").Register("threetier:trace", before("UPDATE")), cb.Update().After("*").Register("threetier:trace_end", after("UPDATE"))},
		{"delete", "DELETE", cb.Delete().Before("*").Register("threetier:trace", before("DELETE")), cb.Delete().After("*").Register("threetier:trace_end", after("DELETE"))},
		// Raw and Row statements say what they do in their first word.
		{"raw", "", cb.Raw().Before("*").Register("threetier:trace", before("SQL")), cb.Raw().After("*").Register("threetier:trace_end", after(""))},
		{"row", "", cb.Row().Before("*").Register("threetier:trace", before("SQL")), cb.Row().After("*").Register("threetier:trace_end", after(""))},
	} {
		if err := errors.Join(p.before, p.after); err != nil {
			return fmt.Errorf("data: register %s trace callback: %w", p.name, err)
		}
	}
	return nil
}

// endStatement names the span "<operation> <table>" and ends it; a
// statement that found nothing is not an error.
func endStatement(span trace.Span, tx *gorm.DB, operation string) {
	sql := tx.Statement.SQL.String()
	if operation == "" {
		operation = firstWord(sql)
	}
	name := operation
	if t := tx.Statement.Table; t != "" {
		name += " " + t
		span.SetAttributes(attribute.String("db.sql.table", t))
	}
	span.SetName(name)
	span.SetAttributes(attribute.String("db.operation", operation), attribute.String("db.statement", sql))
	if err := tx.Error; err != nil && !errors.Is(err, ErrNotFound) && !errors.Is(err, gorm.ErrRecordNotFound) {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

func firstWord(sql string) string {
	sql = strings.TrimSpace(sql)
	if i := strings.IndexAny(sql, " \t\n("); i > 0 {
		sql = sql[:i]
	}
	if sql == "" {
		return "SQL"
	}
	return strings.ToUpper(sql)
}

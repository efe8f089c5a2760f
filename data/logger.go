package data

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"gorm.io/gorm"
	gormlogger "gorm.io/gorm/logger"
)

// slogLogger is GORM's logger over slog: failed statements at error level
// (expected outcomes such as not-found or duplicates at debug), slow ones at
// warn, the rest at debug. SQL is logged with placeholders, never with the
// values, which may be personal data.
type slogLogger struct {
	log  *slog.Logger
	slow time.Duration // <= 0: no slow-query warnings
}

var (
	_ gormlogger.Interface = slogLogger{}
	_ gorm.ParamsFilter    = slogLogger{}
)

func (l slogLogger) LogMode(gormlogger.LogLevel) gormlogger.Interface { return l }

func (l slogLogger) Info(ctx context.Context, msg string, args ...any) {
	l.log.InfoContext(ctx, fmt.Sprintf(msg, args...))
}

func (l slogLogger) Warn(ctx context.Context, msg string, args ...any) {
	l.log.WarnContext(ctx, fmt.Sprintf(msg, args...))
}

func (l slogLogger) Error(ctx context.Context, msg string, args ...any) {
	l.log.ErrorContext(ctx, fmt.Sprintf(msg, args...))
}

// ParamsFilter keeps values out of the logged SQL.
func (l slogLogger) ParamsFilter(_ context.Context, sql string, _ ...any) (string, []any) {
	return sql, nil
}

func (l slogLogger) Trace(ctx context.Context, begin time.Time, fc func() (string, int64), err error) {
	elapsed := time.Since(begin)
	level := slog.LevelDebug
	msg := "sql"
	switch {
	case err != nil && kindOf(err) == ErrRetryable:
		// Serializable transactions lose to each other in the normal run
		// of things, and Tx runs them again: worth a line, not an alarm.
		// If the retries run out, the caller's answer says so.
		level, msg = slog.LevelInfo, "sql conflict"
	case err != nil && lockWait(err):
		// A hot row: the database works, another transaction holds it.
		level, msg = slog.LevelWarn, "sql lock wait"
	case err != nil && !expected(err):
		level, msg = slog.LevelError, "sql failed"
	case l.slow > 0 && elapsed > l.slow:
		level, msg = slog.LevelWarn, "slow sql"
	}
	if !l.log.Enabled(ctx, level) {
		return
	}
	sql, rows := fc()
	attrs := []slog.Attr{slog.String("sql", sql), slog.Int64("rows", rows), slog.Duration("elapsed", elapsed)}
	if err != nil {
		attrs = append(attrs, slog.String("error", err.Error()))
	}
	l.log.LogAttrs(ctx, level, msg, attrs...)
}

// expected reports errors that are answers rather than faults.
func expected(err error) bool {
	k := kindOf(err)
	return k == ErrNotFound || k == ErrDuplicate || k == ErrViolation || errors.Is(err, context.Canceled)
}

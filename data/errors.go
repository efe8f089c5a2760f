package data

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"time"

	gosqlite "github.com/glebarez/go-sqlite"
	"github.com/jackc/pgx/v5/pgconn"
	"gorm.io/gorm"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/threetier/threetier/tier"
)

// The classes every database error falls into. Errors returned by this
// package and by its *gorm.DB match one of them with errors.Is, and still
// match the driver's or GORM's own error (gorm.ErrRecordNotFound, a
// *pgconn.PgError) underneath. Each class is a tier.ProblemError and a
// tier.DependencyError, and so is every *Error of it: the app tier answers
// them and its guards judge them with no adapter. The client is told what
// happened in plain words ("not found"); the error's own text, which logs
// keep, says where ("data: not found: record not found").
var (
	// ErrNotFound: the row does not exist (HTTP 404).
	ErrNotFound error = &class{"data: not found", "not found", http.StatusNotFound, false, false}
	// ErrDuplicate: a unique or primary key constraint refused the write (409).
	ErrDuplicate error = &class{"data: duplicate", "it already exists", http.StatusConflict, false, false}
	// ErrViolation: a foreign key, check or not-null constraint, or a value
	// the column cannot hold (too long, wrong type, out of range) (422).
	ErrViolation error = &class{"data: constraint violation", "a value is out of range or breaks a rule of the data", http.StatusUnprocessableEntity, false, false}
	// ErrRetryable: a serialization failure, deadlock or lock contention that
	// Tx retried until it gave up; the caller may try again later (503 with
	// Retry-After). The database works: it is no failure of it.
	ErrRetryable error = &class{"data: conflict with concurrent transactions", "the request collided with others, try again", http.StatusServiceUnavailable, false, true}
	// ErrTimeout: the statement, lock wait or caller's deadline ran out
	// (504); a failure of the database, unless it ran out waiting for a
	// row lock (see IsFailure).
	ErrTimeout error = &class{"data: timed out", "the database did not answer in time", http.StatusGatewayTimeout, true, false}
	// ErrUnavailable: the database cannot be reached or refuses work (503
	// with Retry-After); a failure of the database, unless a write ran out
	// of disk space (see IsFailure).
	ErrUnavailable error = &class{"data: database unavailable", "the database is unavailable, try again", http.StatusServiceUnavailable, true, true}
)

// retryAfter is the Retry-After suggested for transient errors.
const retryAfter = time.Second

// A class is one of the sentinels above: its text, what the client is
// told, and whether it counts against the database.
type class struct {
	msg       string
	detail    string // for the client: plain words, no package prefix
	status    int
	failure   bool // the database itself is failing
	transient bool // trying again later may succeed: send Retry-After
}

func (c *class) Error() string { return c.msg }

// Problem is the answer for the class. The detail says what happened and
// nothing more: driver messages can quote table names and values, which
// clients should not see.
func (c *class) Problem() *tier.Problem {
	p := tier.NewProblem(c.status, c.detail)
	if c.transient {
		p.RetryAfter = retryAfter
	}
	return p
}

// DependencyFailure is true for the classes that mean the database is
// failing (unavailable, timing out): what a circuit breaker should count.
func (c *class) DependencyFailure() bool { return c.failure }

var sentinels = []error{ErrNotFound, ErrDuplicate, ErrViolation, ErrRetryable, ErrTimeout, ErrUnavailable}

// Error is a classified database error: Kind is one of the sentinels above
// and Err the original error.
type Error struct {
	Kind error
	Err  error
}

func (e *Error) Error() string {
	if e.Err == nil {
		return e.Kind.Error()
	}
	return e.Kind.Error() + ": " + e.Err.Error()
}

// Is matches the sentinel Kind; Unwrap exposes the original error.
func (e *Error) Is(target error) bool { return target == e.Kind }

func (e *Error) Unwrap() error { return e.Err }

var (
	_ tier.ProblemError    = (*Error)(nil)
	_ tier.DependencyError = (*Error)(nil)
)

// Problem is the answer for the error's class, or nil when Kind is not
// one of this package's classes.
func (e *Error) Problem() *tier.Problem {
	if c, ok := e.Kind.(*class); ok {
		return c.Problem()
	}
	return nil
}

// DependencyFailure reports whether the error's class means the database
// is failing; see IsFailure.
func (e *Error) DependencyFailure() bool { return IsFailure(e) }

// Classify wraps err in an *Error whose Kind says what went wrong, or
// returns err unchanged when it is nil, already classified, or unknown (a
// programming error such as bad SQL, or the caller's own cancellation).
func Classify(err error) error {
	if err == nil {
		return nil
	}
	var ce *Error
	if errors.As(err, &ce) {
		return err
	}
	if kind := kindOf(err); kind != nil {
		return &Error{Kind: kind, Err: err}
	}
	return err
}

// within names the step an error comes from after its class, so that its
// text says "data: " once: "data: database unavailable: replica 1: dial
// tcp ...". An error of no class reads "data: <step>: <err>".
func within(step string, err error) error {
	if ce, ok := Classify(err).(*Error); ok {
		return &Error{Kind: ce.Kind, Err: fmt.Errorf("%s: %w", step, ce.Err)}
	}
	return fmt.Errorf("data: %s: %w", step, err)
}

// classifyIn is Classify for an error of a statement run with ctx. When
// the caller cancelled ctx, the driver's report of the interruption
// (SQLite's "interrupted", PostgreSQL's 57014 "canceling statement due to
// user request", or the connection pgx closed to interrupt a COPY) is that
// cancellation, not a timeout or an outage of the database. When ctx's
// deadline passed, the server's report of the cancel it sent is a timeout
// that says so: it matches context.DeadlineExceeded, as the error of a
// statement cut off on the client does.
func classifyIn(ctx context.Context, err error) error {
	if err == nil || ctx == nil {
		return Classify(err)
	}
	switch cerr := ctx.Err(); {
	case errors.Is(cerr, context.Canceled) && !errors.Is(err, context.Canceled) && (kindOf(err) == ErrTimeout || kindOf(err) == ErrUnavailable):
		var ce *Error
		if errors.As(err, &ce) {
			err = ce.Err
		}
		return &canceledError{err}
	case errors.Is(cerr, context.DeadlineExceeded) && !errors.Is(err, context.DeadlineExceeded) && kindOf(err) == ErrTimeout:
		var ce *Error
		if errors.As(err, &ce) {
			err = ce.Err
		}
		return &Error{Kind: ErrTimeout, Err: &deadlineError{err}}
	}
	return Classify(err)
}

// deadlineError is the server's report of a statement it stopped because
// the caller's deadline passed: it matches context.DeadlineExceeded and
// still unwraps to the driver's error.
type deadlineError struct{ err error }

func (e *deadlineError) Error() string   { return e.err.Error() }
func (e *deadlineError) Unwrap() []error { return []error{context.DeadlineExceeded, e.err} }

// canceledError is a driver error caused by the caller's cancellation: it
// matches context.Canceled and still unwraps to the driver's error.
type canceledError struct{ err error }

func (e *canceledError) Error() string   { return "canceled: " + e.err.Error() }
func (e *canceledError) Unwrap() []error { return []error{context.Canceled, e.err} }

// IsFailure reports whether err means the database itself is failing
// (unavailable or timing out): what a circuit breaker in front of the data
// tier should count. Not-found, duplicates, violations, contention and the
// caller's own cancellation are answers, not failures; so is a timeout
// that struck while waiting for a row another transaction holds (see
// lockWait): it is still ErrTimeout to the caller; and so is a write
// refused for want of disk space (see diskFull): it is still
// ErrUnavailable to the caller, but reads go on, and a breaker opened by
// failed writes would refuse them too. Errors of this package say so
// themselves (tier.DependencyError); IsFailure also judges a driver's
// error that did not come through it (from SQL(), say).
func IsFailure(err error) bool {
	c, ok := kindOf(err).(*class)
	return ok && c.failure && !lockWait(err) && !diskFull(err)
}

// lockWait reports whether err is PostgreSQL giving up on waiting for a
// row lock: lock_timeout (55P03), or statement_timeout (57014) striking
// during such a wait, which PostgreSQL tells in the error's context
// ("while updating tuple (0,1) in relation ..."). One hot row says
// nothing of the database's health, and must not open a breaker that
// every other query goes through.
func lockWait(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	switch pgErr.Code {
	case "55P03":
		return true
	case "57014":
		return strings.HasPrefix(pgErr.Where, "while ") && strings.Contains(pgErr.Where, " tuple ")
	}
	return false
}

// diskFull reports whether err is the database out of disk space:
// PostgreSQL's disk_full (53100), SQLite's SQLITE_FULL, or ENOSPC.
func diskFull(err error) bool {
	var pgErr *pgconn.PgError
	var sqErr *gosqlite.Error
	switch {
	case errors.As(err, &pgErr):
		return pgErr.Code == "53100"
	case errors.As(err, &sqErr):
		return sqErr.Code()&0xff == sqlite3.SQLITE_FULL
	}
	return errors.Is(err, syscall.ENOSPC)
}

// kindOf returns the sentinel err belongs to, or nil.
func kindOf(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) {
		// The caller's own doing, whatever the driver made of it.
		return nil
	}
	var ce *Error
	if errors.As(err, &ce) {
		return ce.Kind
	}
	for _, s := range sentinels {
		if errors.Is(err, s) {
			return s
		}
	}
	switch {
	case errors.Is(err, gorm.ErrRecordNotFound):
		return ErrNotFound
	case errors.Is(err, gorm.ErrDuplicatedKey):
		return ErrDuplicate
	case errors.Is(err, gorm.ErrForeignKeyViolated), errors.Is(err, gorm.ErrCheckConstraintViolated):
		return ErrViolation
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgKind(pgErr.Code)
	}
	var sqErr *gosqlite.Error
	if errors.As(err, &sqErr) {
		return sqliteKind(sqErr.Code())
	}
	if errors.Is(err, context.DeadlineExceeded) || pgconn.Timeout(err) {
		return ErrTimeout
	}
	if isArgumentError(err) {
		return ErrViolation
	}
	var connectErr *pgconn.ConnectError
	var netErr net.Error
	if errors.As(err, &connectErr) || errors.As(err, &netErr) ||
		errors.Is(err, driver.ErrBadConn) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, net.ErrClosed) ||
		pgconn.SafeToRetry(err) || isConnClosed(err) {
		return ErrUnavailable
	}
	return nil
}

// commitFailureClass names the cause of a failed commit for logs and
// metrics: disk_full, read_only, io_error (from the driver's code or the
// system's errno), else the class of the error (conflict, timeout,
// unavailable) or other.
func commitFailureClass(err error) string {
	if diskFull(err) {
		return "disk_full"
	}
	var pgErr *pgconn.PgError
	var sqErr *gosqlite.Error
	switch {
	case errors.As(err, &pgErr):
		switch pgErr.Code {
		case "25006":
			return "read_only"
		case "58030":
			return "io_error"
		}
	case errors.As(err, &sqErr):
		switch sqErr.Code() & 0xff {
		case sqlite3.SQLITE_READONLY:
			return "read_only"
		case sqlite3.SQLITE_IOERR:
			return "io_error"
		}
	case errors.Is(err, syscall.EROFS):
		return "read_only"
	case errors.Is(err, syscall.EIO):
		return "io_error"
	}
	switch kindOf(err) {
	case ErrRetryable:
		return "conflict"
	case ErrTimeout:
		return "timeout"
	case ErrUnavailable:
		return "unavailable"
	}
	return "other"
}

// pgKind classifies a PostgreSQL SQLSTATE.
func pgKind(code string) error {
	switch code {
	case "23505":
		return ErrDuplicate
	case "40001", "40P01":
		return ErrRetryable
	case "57014", "55P03": // statement_timeout (or cancel), lock_timeout
		return ErrTimeout
	case "57P01", "57P02", "57P03", "53300", "25006": // shutdown, cannot connect now, too many connections, read-only replica
		return ErrUnavailable
	}
	if len(code) != 5 {
		return nil
	}
	switch code[:2] {
	case "22", "23": // data exception, integrity constraint violation
		return ErrViolation
	case "08", "53", "58": // connection exception, insufficient resources, system error
		return ErrUnavailable
	}
	return nil
}

// sqliteKind classifies a SQLite extended result code.
func sqliteKind(code int) error {
	switch code {
	case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
		return ErrDuplicate
	case sqlite3.SQLITE_TOOBIG, sqlite3.SQLITE_MISMATCH:
		return ErrViolation
	}
	switch code & 0xff {
	case sqlite3.SQLITE_CONSTRAINT:
		return ErrViolation
	case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
		return ErrRetryable
	case sqlite3.SQLITE_INTERRUPT:
		return ErrTimeout
	case sqlite3.SQLITE_IOERR, sqlite3.SQLITE_FULL, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_READONLY,
		sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_PROTOCOL:
		return ErrUnavailable
	}
	return nil
}

// isArgumentError recognises a value the driver could not send as the
// column's type, such as a uint64 above the int64 range: database/sql and
// pgx report it before the statement leaves, as untyped errors. It is the
// same bad input as a value the database refuses (22003, out of range).
func isArgumentError(err error) bool {
	return anyMessage(err, func(msg string) bool {
		return strings.HasPrefix(msg, "sql: converting argument ") || strings.HasPrefix(msg, "failed to encode args[")
	})
}

// isConnClosed recognises pgx's "conn closed" errors, which carry no type.
func isConnClosed(err error) bool {
	return anyMessage(err, func(msg string) bool { return msg == "conn closed" })
}

// anyMessage reports whether the message of err, or of any error it wraps
// (joined errors included), satisfies match: for drivers' untyped errors.
func anyMessage(err error, match func(string) bool) bool {
	if err == nil {
		return false
	}
	if match(err.Error()) {
		return true
	}
	switch e := err.(type) {
	case interface{ Unwrap() error }:
		return anyMessage(e.Unwrap(), match)
	case interface{ Unwrap() []error }:
		for _, inner := range e.Unwrap() {
			if anyMessage(inner, match) {
				return true
			}
		}
	}
	return false
}

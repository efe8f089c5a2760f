package data

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"gorm.io/gorm"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/threetier/threetier/internal/wait"
)

// Bad input (oversized values, wrong types, broken references, injection
// strings) gets a classified error and changes nothing.
func TestBadInputIsClassifiedAndChangesNothing(t *testing.T) {
	dialects(t, func(t *testing.T, cfg Config) {
		db := openTest(t, cfg)
		ctx := context.Background()
		g := db.WithContext(ctx)
		p := Product{Name: "widget", Stock: 3}
		if err := g.Create(&p).Error; err != nil {
			t.Fatal(err)
		}
		snapshot := func() string {
			var ps []Product
			var os []Order
			if err := g.Order("id").Find(&ps).Error; err != nil {
				t.Fatal(err)
			}
			if err := g.Order("id").Find(&os).Error; err != nil {
				t.Fatal(err)
			}
			var b strings.Builder
			for _, p := range ps {
				b.WriteString(p.Name + ";")
			}
			b.WriteString("|")
			for _, o := range os {
				b.WriteString(o.Note + ";")
			}
			return b.String()
		}
		before := snapshot()

		cases := []struct {
			name   string
			run    func() error
			want   error
			status int
		}{
			{"duplicate name", func() error { return g.Create(&Product{Name: "widget", Stock: 1}).Error }, ErrDuplicate, http.StatusConflict},
			{"duplicate key", func() error { return g.Create(&Product{ID: p.ID, Name: "other", Stock: 1}).Error }, ErrDuplicate, http.StatusConflict},
			{"oversized name", func() error { return g.Create(&Product{Name: strings.Repeat("x", 65), Stock: 1}).Error }, ErrViolation, http.StatusUnprocessableEntity},
			{"oversized note", func() error {
				return g.Create(&Order{ProductID: p.ID, Qty: 1, Note: strings.Repeat("'; DROP TABLE orders; --", 20)}).Error
			}, ErrViolation, http.StatusUnprocessableEntity},
			{"negative stock (check)", func() error { return g.Model(&p).Update("stock", -1).Error }, ErrViolation, http.StatusUnprocessableEntity},
			{"zero quantity (check)", func() error { return g.Create(&Order{ProductID: p.ID, Qty: 0, Note: "z"}).Error }, ErrViolation, http.StatusUnprocessableEntity},
			{"unknown product (foreign key)", func() error { return g.Create(&Order{ProductID: p.ID + 1000, Qty: 1}).Error }, ErrViolation, http.StatusUnprocessableEntity},
			{"text in an integer column", func() error {
				return g.Exec("INSERT INTO products (name, stock) VALUES (?, ?)", "typed", "three").Error
			}, ErrViolation, http.StatusUnprocessableEntity},
			{"key beyond the column's range", func() error {
				var got Product
				return g.First(&got, uint64(1)<<63).Error
			}, ErrViolation, http.StatusUnprocessableEntity},
			{"value beyond the column's range", func() error {
				return g.Model(&p).Update("stock", uint64(1)<<63).Error
			}, ErrViolation, http.StatusUnprocessableEntity},
			{"injection in a lookup", func() error {
				var got Product
				return g.Where("name = ?", "widget' OR '1'='1").First(&got).Error
			}, ErrNotFound, http.StatusNotFound},
			{"injection in a key", func() error {
				var got Product
				return g.First(&got, "id = ?", "1; DELETE FROM products").Error
			}, nil, 0}, // PostgreSQL: invalid integer (422); SQLite: no such row (404)
			{"missing row", func() error { var got Product; return g.First(&got, p.ID+1000).Error }, ErrNotFound, http.StatusNotFound},
		}
		for _, c := range cases {
			err := c.run()
			if err == nil {
				t.Errorf("%s: no error", c.name)
				continue
			}
			if c.want == nil {
				if !errors.Is(err, ErrViolation) && !errors.Is(err, ErrNotFound) {
					t.Errorf("%s: %v is neither a violation nor not-found", c.name, err)
				}
				continue
			}
			if !errors.Is(err, c.want) {
				t.Errorf("%s: got %v, want %v", c.name, err, c.want)
			}
			if s := StatusOf(err); s != c.status {
				t.Errorf("%s: status %d, want %d", c.name, s, c.status)
			}
			if IsFailure(err) {
				t.Errorf("%s: counted as a database failure", c.name)
			}
		}
		// Strings that look like SQL are stored as they are.
		evil := Product{Name: "x'); DROP TABLE products; --", Stock: 1}
		if err := g.Create(&evil).Error; err != nil {
			t.Fatal(err)
		}
		var back Product
		if err := g.First(&back, evil.ID).Error; err != nil || back.Name != evil.Name {
			t.Fatalf("injection string stored as %q, %v", back.Name, err)
		}
		if err := g.Delete(&evil).Error; err != nil {
			t.Fatal(err)
		}
		if after := snapshot(); after != before {
			t.Errorf("bad input changed the data:\nbefore %s\nafter  %s", before, after)
		}
		// GORM's own sentinels still match underneath.
		var got Product
		if err := g.First(&got, p.ID+1000).Error; !errors.Is(err, gorm.ErrRecordNotFound) {
			t.Errorf("not found %v does not match gorm.ErrRecordNotFound", err)
		}
	})
}

func TestClassification(t *testing.T) {
	cases := []struct {
		err     error
		status  int
		failure bool
	}{
		{nil, 200, false},
		{gorm.ErrRecordNotFound, 404, false},
		{gorm.ErrDuplicatedKey, 409, false},
		{gorm.ErrForeignKeyViolated, 422, false},
		{context.DeadlineExceeded, 504, true},
		{context.Canceled, 499, false},
		{errors.New("syntax error"), 500, false},
		{&Error{Kind: ErrUnavailable, Err: errors.New("refused")}, 503, true},
		{&Error{Kind: ErrRetryable}, 503, false},
		// Drivers' untyped messages count wherever they sit in the chain.
		{fmt.Errorf("query: %w", errors.Join(errors.New("flush"), errors.New("conn closed"))), 503, true},
		{fmt.Errorf("create: %w", errors.New("failed to encode args[0]: out of range")), 422, false},
	}
	for _, c := range cases {
		if s := StatusOf(c.err); s != c.status {
			t.Errorf("StatusOf(%v) = %d, want %d", c.err, s, c.status)
		}
		if f := IsFailure(c.err); f != c.failure {
			t.Errorf("IsFailure(%v) = %v, want %v", c.err, f, c.failure)
		}
	}
	for code, want := range map[string]error{"23505": ErrDuplicate, "23503": ErrViolation, "22001": ErrViolation, "40001": ErrRetryable, "40P01": ErrRetryable, "57014": ErrTimeout, "57P01": ErrUnavailable, "08006": ErrUnavailable, "42601": nil} {
		if got := pgKind(code); got != want {
			t.Errorf("SQLSTATE %s: %v, want %v", code, got, want)
		}
	}
	// A bind index out of range is a bug in the caller's SQL, not bad input.
	for code, want := range map[int]error{sqlite3.SQLITE_CONSTRAINT_UNIQUE: ErrDuplicate, sqlite3.SQLITE_CONSTRAINT_NOTNULL: ErrViolation, sqlite3.SQLITE_BUSY_SNAPSHOT: ErrRetryable, sqlite3.SQLITE_RANGE: nil} {
		if got := sqliteKind(code); got != want {
			t.Errorf("SQLite code %d: %v, want %v", code, got, want)
		}
	}
	// PostgreSQL's report of a statement the caller cancelled.
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	if err := classifyIn(cancelled, &pgconn.PgError{Code: "57014"}); StatusOf(err) != 499 || IsFailure(err) || !errors.As(err, new(*pgconn.PgError)) {
		t.Errorf("57014 after the caller cancelled: %v, status %d", err, StatusOf(err))
	}
	if p := ProblemFor(context.Canceled); p.Status != 499 || p.Title == "" {
		t.Errorf("problem for a cancelled call: %+v", p)
	}
	p := ProblemFor(&Error{Kind: ErrUnavailable, Err: errors.New("dial tcp 10.0.0.1: secret detail")})
	if p.Status != 503 || p.RetryAfter <= 0 || strings.Contains(p.Detail, "secret") {
		t.Errorf("problem %+v", p)
	}
}

// A statement the caller cancels is the caller's doing: not a timeout, not
// a failure of the database (a breaker must not count it), 499 at the
// edge. One that runs past the caller's deadline is a timeout. Both end a
// statement that is running: on SQLite the statement itself calls back
// into the test, on PostgreSQL the server shows it in pg_stat_activity.
func TestCallerCancellationIsNotATimeout(t *testing.T) {
	dialects(t, func(t *testing.T, cfg Config) {
		db := openTest(t, cfg)
		bg := context.Background()
		// run starts a statement that runs for seconds and calls whileRunning
		// once it runs; on SQLite, whileRunning is called from inside it.
		run := func(ctx context.Context, whileRunning func()) error {
			marker := sanitize(t.Name()) + fmt.Sprint(time.Now().UnixNano())
			if cfg.Dialect() == SQLite {
				defer sqliteHooks.Delete(marker)
				sqliteHooks.Store(marker, whileRunning)
				return db.WithContext(ctx).Exec(`WITH RECURSIVE c(x) AS (SELECT test_hook(?) UNION ALL
					SELECT x+1 FROM c WHERE x < 100000000) SELECT count(*) FROM c`, marker).Error
			}
			done := make(chan error, 1)
			go func() { done <- db.WithContext(ctx).Exec("SELECT pg_sleep(30) -- " + marker).Error }()
			// pgx never misses a deadline (it checks it before sending and
			// cancels on the server after), and waiting for the statement to
			// show would race with it.
			if _, ok := ctx.Deadline(); !ok {
				wait.For(t, 10*time.Second, "the statement to run", func() bool {
					var n int64
					err := db.WithContext(bg).Raw(`SELECT count(*) FROM pg_stat_activity
						WHERE state = 'active' AND query LIKE '%' || ? AND pid <> pg_backend_pid()`, marker).Scan(&n).Error
					if err != nil {
						t.Fatal(err)
					}
					return n > 0
				})
			}
			whileRunning()
			return <-done
		}

		ctx, cancel := context.WithCancel(bg)
		err := run(ctx, cancel)
		if err == nil || errors.Is(err, ErrTimeout) || IsFailure(err) || StatusOf(err) != 499 {
			t.Errorf("cancelled: %v (status %d, failure %v); want 499 and no failure", err, StatusOf(err), IsFailure(err))
		}

		ctx, cancel = context.WithTimeout(bg, 50*time.Millisecond)
		defer cancel()
		err = run(ctx, func() { <-ctx.Done() })
		if !errors.Is(err, ErrTimeout) || !IsFailure(err) || StatusOf(err) != 504 {
			t.Errorf("deadline: %v (status %d, failure %v); want ErrTimeout", err, StatusOf(err), IsFailure(err))
		}
	})
}

func TestProblemOrNil(t *testing.T) {
	if p := ProblemOrNil(errors.New("a bug in the handler")); p != nil {
		t.Fatalf("unclassified error mapped to %+v, want nil", p)
	}
	if p := ProblemOrNil(&Error{Kind: ErrNotFound, Err: errors.New("no rows")}); p == nil || p.Status != 404 {
		t.Fatalf("not found mapped to %+v, want 404", p)
	}
}

// The errors the first attempts meet when PostgreSQL restarts or stops
// (the admin shutdown sent to every session, a refused connect, pgx's
// closed connection, a connection cut mid-reply, a server still starting)
// are outages: unavailable, failures a breaker counts and a guard may
// retry.
func TestOutageErrorsAreRetryableFailures(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: &os.SyscallError{Syscall: "connect", Err: syscall.ECONNREFUSED}}
	for _, err := range []error{
		fmt.Errorf("query: %w", &pgconn.PgError{Severity: "FATAL", Code: "57P01", Message: "terminating connection due to administrator command"}),
		&pgconn.PgError{Severity: "FATAL", Code: "57P03", Message: "the database system is starting up"},
		fmt.Errorf("dial: %w", refused),
		errors.New("conn closed"),
		fmt.Errorf("failed to receive message: %w", io.ErrUnexpectedEOF),
		driver.ErrBadConn,
	} {
		if !IsFailure(err) || !errors.Is(Classify(err), ErrUnavailable) || StatusOf(err) != http.StatusServiceUnavailable {
			t.Errorf("%v: failure %v, status %d; want an unavailable failure (503)", err, IsFailure(err), StatusOf(err))
		}
	}
}

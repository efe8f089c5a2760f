package data

import (
	"bytes"
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"gorm.io/gorm"
	"gorm.io/gorm/schema"

	"github.com/threetier/threetier/internal/wait"
	"github.com/threetier/threetier/tier"
)

// Tags is a driver.Valuer and sql.Scanner stored as comma-separated text.
type Tags []string

func (t Tags) Value() (driver.Value, error) { return strings.Join(t, ","), nil }

func (t *Tags) Scan(src any) error {
	switch s := src.(type) {
	case string:
		*t = nil
		if s != "" {
			*t = strings.Split(s, ",")
		}
		return nil
	case []byte:
		return t.Scan(string(s))
	}
	return fmt.Errorf("tags: cannot scan %T", src)
}

// Gadget has most of what models carry: gorm.Model's soft delete and
// timestamps, nullable columns, a Valuer/Scanner, default: tags, and a
// column the database fills.
type Gadget struct {
	gorm.Model
	Name   string
	Color  *string
	Rating int    // nullable column
	Note   string // nullable column
	Tags   Tags
	Price  sql.NullInt64
	Status string    `gorm:"default:new"`
	Level  int       `gorm:"default:7"`
	Seen   time.Time `gorm:"default:CURRENT_TIMESTAMP"`
	Bytes  []byte
	Grade  Grade
	Extra  string `gorm:"-"`
}

// Grade is a string type of its own.
type Grade string

// HookedProduct maps products with hooks, which Get and Insert leave to GORM.
type HookedProduct struct {
	ID    int64
	Name  string
	Stock int
	found int
}

func (HookedProduct) TableName() string { return "products" }

func (p *HookedProduct) BeforeCreate(*gorm.DB) error { p.Stock += 100; return nil }

func (p *HookedProduct) AfterFind(*gorm.DB) error { p.found++; return nil }

// BoolStock reads products.stock into a bool: database/sql converts, pgx
// does not, so Get must end up on GORM's path with GORM's answer.
type BoolStock struct {
	ID    int64
	Name  string
	Stock bool
}

func (BoolStock) TableName() string { return "products" }

// GradeStock reads products.stock into a Grade, which database/sql refuses.
type GradeStock struct {
	ID    int64
	Stock Grade
}

func (GradeStock) TableName() string { return "products" }

var gadgetMigrations = map[string]string{
	"postgres/00003_gadgets.sql": `-- +goose Up
CREATE TABLE gadgets (
    id         bigserial PRIMARY KEY,
    created_at timestamptz,
    updated_at timestamptz,
    deleted_at timestamptz,
    name       varchar(64) NOT NULL UNIQUE,
    color      text,
    rating     integer,
    note       text,
    tags       text,
    price      bigint,
    status     text NOT NULL DEFAULT 'db',
    level      integer NOT NULL DEFAULT 0,
    seen       timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP,
    bytes      bytea,
    grade      text
);
-- +goose Down
DROP TABLE gadgets;
`,
	"sqlite/00003_gadgets.sql": `-- +goose Up
CREATE TABLE gadgets (
    id         integer PRIMARY KEY AUTOINCREMENT,
    created_at datetime,
    updated_at datetime,
    deleted_at datetime,
    name       text NOT NULL UNIQUE CHECK (length(name) <= 64),
    color      text,
    rating     integer,
    note       text,
    tags       text,
    price      integer,
    status     text NOT NULL DEFAULT 'db',
    level      integer NOT NULL DEFAULT 0,
    seen       datetime NOT NULL DEFAULT CURRENT_TIMESTAMP,
    bytes      blob,
    grade      text
);
-- +goose Down
DROP TABLE gadgets;
`,
}

func openGadgets(t *testing.T, cfg Config, opts ...Option) *DB {
	t.Helper()
	return openTest(t, cfg, append(opts, WithMigrations(testMigrations(t, gadgetMigrations)))...)
}

// sameGadget compares two gadgets field by field, times by instant (and
// by location too unless anyLoc).
func sameGadget(t *testing.T, what string, got, want Gadget, anyLoc ...bool) {
	t.Helper()
	if len(anyLoc) == 0 && got.CreatedAt.Location() != want.CreatedAt.Location() || got.Seen.Location() != want.Seen.Location() {
		t.Errorf("%s: times in %v and %v, want %v and %v", what, got.CreatedAt.Location(), got.Seen.Location(), want.CreatedAt.Location(), want.Seen.Location())
	}
	norm := func(g Gadget) string {
		for _, tm := range []*time.Time{&g.CreatedAt, &g.UpdatedAt, &g.Seen, &g.DeletedAt.Time} {
			*tm = tm.UTC().Truncate(time.Microsecond) // as stored
		}
		color := "<nil>"
		if g.Color != nil {
			color = *g.Color
		}
		g.Color = nil
		return fmt.Sprintf("%+v color=%s", g, color)
	}
	if g, w := norm(got), norm(want); g != w {
		t.Errorf("%s:\n got %s\nwant %s", what, g, w)
	}
}

// Insert and Get give what GORM's Create and Take give, row for row.
func TestTypedMatchesGORM(t *testing.T) {
	dialects(t, func(t *testing.T, cfg Config) {
		db := openGadgets(t, cfg)
		ctx := context.Background()
		red := "red"
		when := time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)
		inputs := []Gadget{
			{Name: "plain"},
			{Name: "full", Color: &red, Rating: 5, Note: "n", Tags: Tags{"a", "b"}, Price: sql.NullInt64{Int64: 1250, Valid: true},
				Status: "sold", Level: 3, Seen: when, Model: gorm.Model{CreatedAt: when, UpdatedAt: when}},
			{Name: "injection'); DROP TABLE gadgets; --", Tags: Tags{}, Bytes: []byte{}},
			{Name: "bytes", Bytes: []byte{0, 1, 2}, Grade: "A"},
		}
		for i, in := range inputs {
			viaTyped, viaGorm := in, in
			viaGorm.Name += " (gorm)"
			if err := Insert(ctx, db, &viaTyped); err != nil {
				t.Fatalf("Insert %d: %v", i, err)
			}
			if err := db.WithContext(ctx).Create(&viaGorm).Error; err != nil {
				t.Fatalf("Create %d: %v", i, err)
			}
			if viaTyped.ID == 0 || viaTyped.CreatedAt.IsZero() || viaTyped.Seen.IsZero() {
				t.Errorf("Insert %d did not fill the key, timestamps or database default: %+v", i, viaTyped)
			}
			// The rows differ in key, name and the times taken at insert.
			cmp := viaGorm
			cmp.ID, cmp.Name = viaTyped.ID, viaTyped.Name
			if in.CreatedAt.IsZero() {
				cmp.CreatedAt, cmp.UpdatedAt = viaTyped.CreatedAt, viaTyped.UpdatedAt
			}
			if in.Seen.IsZero() {
				cmp.Seen = viaTyped.Seen
			}
			sameGadget(t, fmt.Sprintf("row %d as inserted", i), viaTyped, cmp)

			got, err := Get[Gadget](ctx, db, viaTyped.ID)
			if err != nil {
				t.Fatalf("Get %d: %v", i, err)
			}
			var want Gadget
			if err := db.WithContext(ctx).Take(&want, viaTyped.ID).Error; err != nil {
				t.Fatal(err)
			}
			sameGadget(t, fmt.Sprintf("row %d as read", i), *got, want)
			sameGadget(t, fmt.Sprintf("row %d read back", i), *got, viaTyped, true) // SQLite reads UTC
		}

		// NULLs in nullable columns read as zero values, as GORM reads them.
		if err := db.Gorm().Exec("INSERT INTO gadgets (name) VALUES ('nulls')").Error; err != nil {
			t.Fatal(err)
		}
		var want Gadget
		if err := db.Gorm().Where("name = ?", "nulls").Take(&want).Error; err != nil {
			t.Fatal(err)
		}
		got, err := Get[Gadget](ctx, db, want.ID)
		if err != nil {
			t.Fatalf("Get of a row of NULLs: %v", err)
		}
		sameGadget(t, "row of NULLs", *got, want)
		if got.Color != nil || got.Rating != 0 || got.Tags != nil || got.Price.Valid || !got.CreatedAt.IsZero() || got.Status != "db" {
			t.Errorf("row of NULLs: %+v", got)
		}

		// A soft-deleted row is not found, as by Take.
		if err := db.WithContext(ctx).Delete(&Gadget{}, want.ID).Error; err != nil {
			t.Fatal(err)
		}
		if _, err := Get[Gadget](ctx, db, want.ID); !errors.Is(err, ErrNotFound) || !errors.Is(err, gorm.ErrRecordNotFound) {
			t.Errorf("Get of a soft-deleted row: %v, want not found", err)
		}
		if p, _ := db.planFor(reflect.TypeFor[Gadget]()); p.readBroken.Load() {
			t.Error("Get left the fast path for Gadget")
		}
	})
}

// OrderWithProduct has a belongs-to association: Get reads it directly,
// Insert leaves it to GORM (which saves associations).
type OrderWithProduct struct {
	ID        int64
	ProductID int64
	Qty       int
	Note      string
	Product   Product
}

func (OrderWithProduct) TableName() string { return "orders" }

func TestTypedAssociations(t *testing.T) {
	dialects(t, func(t *testing.T, cfg Config) {
		db := openTest(t, cfg)
		ctx := context.Background()
		o := OrderWithProduct{Qty: 2, Note: "n", Product: Product{Name: "assoc", Stock: 5}}
		if err := Insert(ctx, db, &o); err != nil {
			t.Fatal(err)
		}
		if o.ID == 0 || o.ProductID == 0 || o.Product.ID != o.ProductID {
			t.Fatalf("association not saved as GORM saves it: %+v", o)
		}
		got, err := Get[OrderWithProduct](ctx, db, o.ID)
		if err != nil {
			t.Fatal(err)
		}
		var want OrderWithProduct
		if err := db.WithContext(ctx).Take(&want, o.ID).Error; err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(*got, want) || got.Product.ID != 0 {
			t.Errorf("Get %+v, Take %+v", *got, want)
		}
		p, _ := db.planFor(reflect.TypeFor[OrderWithProduct]())
		if !p.readFast || p.writeFast || p.readBroken.Load() {
			t.Errorf("fast read %v (broken %v), fast write %v", p.readFast, p.readBroken.Load(), p.writeFast)
		}
	})
}

// Models with hooks go through GORM, hooks included.
func TestTypedHooksFallBack(t *testing.T) {
	dialects(t, func(t *testing.T, cfg Config) {
		db := openTest(t, cfg)
		ctx := context.Background()
		p := HookedProduct{Name: "hooked", Stock: 1}
		if err := Insert(ctx, db, &p); err != nil {
			t.Fatal(err)
		}
		got, err := Get[HookedProduct](ctx, db, p.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Stock != 101 || got.found != 1 {
			t.Errorf("hooks did not run: %+v", got)
		}
		// A column pgx cannot decode into its field: GORM's conversion.
		one := Product{Name: "one", Stock: 1}
		if err := Insert(ctx, db, &one); err != nil {
			t.Fatal(err)
		}
		for range 2 {
			bs, err := Get[BoolStock](ctx, db, one.ID)
			if err != nil || !bs.Stock || bs.Name != "one" {
				t.Errorf("Get[BoolStock]: %+v, %v", bs, err)
			}
		}
		if p, _ := db.planFor(reflect.TypeFor[BoolStock]()); cfg.Dialect() == Postgres && !p.readBroken.Load() {
			t.Error("BoolStock still on the fast path")
		}
		// One that database/sql refuses (an integer into a string type of
		// its own) and pgx would convert: GORM's error.
		var want GradeStock
		wantErr := db.WithContext(ctx).Take(&want, one.ID).Error
		if _, err := Get[GradeStock](ctx, db, one.ID); err == nil || wantErr == nil {
			t.Errorf("Get[GradeStock]: %v; GORM's Take: %v; want both to fail", err, wantErr)
		}
	})
}

// LevelFlag reads gadgets.level, an integer the database defaults, into a
// bool: database/sql converts it, pgx does not.
type LevelFlag struct {
	ID    int64
	Name  string
	Level bool `gorm:"default:abs(0)"`
}

func (LevelFlag) TableName() string { return "gadgets" }

// A returned column pgx cannot decode into its field does not turn an
// insert that is done into an error: a caller would insert the row again.
func TestTypedInsertReturningDecode(t *testing.T) {
	dialects(t, func(t *testing.T, cfg Config) {
		db := openGadgets(t, cfg)
		ctx := context.Background()
		for i := range 2 {
			f := LevelFlag{Name: fmt.Sprintf("flag%d", i)}
			if err := Insert(ctx, db, &f); err != nil || f.ID == 0 || f.Level {
				t.Fatalf("Insert %d: %+v, %v", i, f, err)
			}
			got, err := Get[LevelFlag](ctx, db, f.ID)
			if err != nil || *got != f {
				t.Errorf("Get %d: %+v, %v; want %+v", i, got, err, f)
			}
		}
		if n := count(t, db, "gadgets"); n != 2 {
			t.Errorf("%d gadgets, want 2", n)
		}
	})
}

// The fast path sends the SQL GORM would.
func TestTypedSQLIsGORMs(t *testing.T) {
	db := openGadgets(t, Config{DSN: pgSchema(t)})
	dry := db.Gorm().Session(&gorm.Session{DryRun: true})
	for _, c := range []struct {
		model any
		plan  func() (*typedPlan, error)
	}{
		{&Gadget{}, func() (*typedPlan, error) { return db.planFor(reflect.TypeFor[Gadget]()) }},
		{&Event{}, func() (*typedPlan, error) { return db.planFor(reflect.TypeFor[Event]()) }},
	} {
		p, err := c.plan()
		if err != nil {
			t.Fatal(err)
		}
		if !p.readFast || !p.writeFast {
			t.Fatalf("%s: fast read %v, fast write %v", p.schema.Name, p.readFast, p.writeFast)
		}
		take := dry.Take(c.model, 1).Statement.SQL.String()
		if take != p.read.sql {
			t.Errorf("%s: Get sends\n%s\nGORM's Take sends\n%s", p.schema.Name, p.read.sql, take)
		}
		create := dry.Create(c.model).Statement.SQL.String()
		if create != p.inserts[0].sql {
			t.Errorf("%s: Insert sends\n%s\nGORM's Create sends\n%s", p.schema.Name, p.inserts[0].sql, create)
		}
	}
	// A row that sets its database-defaulted fields sends them too.
	p, _ := db.planFor(reflect.TypeFor[Gadget]())
	g := Gadget{Model: gorm.Model{ID: 9}, Seen: time.Now()}
	create := dry.Create(&g).Statement.SQL.String()
	if all := p.inserts[len(p.inserts)-1].sql; create != all {
		t.Errorf("Insert with every default set sends\n%s\nGORM's Create sends\n%s", all, create)
	}
	if hp, _ := db.planFor(reflect.TypeFor[HookedProduct]()); hp.readFast || hp.writeFast {
		t.Errorf("a model with hooks is on the fast path")
	}
}

// Errors are classified and counted as GORM's are; bad input is harmless.
func TestTypedErrors(t *testing.T) {
	dialects(t, func(t *testing.T, cfg Config) {
		db := openTest(t, cfg)
		ctx := context.Background()
		errs := func(kind string) float64 { return counterValue(t, db.metrics.errors.WithLabelValues(kind)) }

		_, err := Get[Product](ctx, db, 12345)
		if !errors.Is(err, ErrNotFound) || !errors.Is(err, gorm.ErrRecordNotFound) || statusOf(err) != 404 {
			t.Errorf("missing row: %v", err)
		}
		if n := errs("not_found"); n != 1 {
			t.Errorf("not_found counted %v times, want 1", n)
		}

		p := Product{Name: "dup", Stock: 1}
		if err := Insert(ctx, db, &p); err != nil || p.ID == 0 {
			t.Fatalf("insert: %v (id %d)", err, p.ID)
		}
		again := Product{Name: "dup", Stock: 2}
		err = Insert(ctx, db, &again)
		if !errors.Is(err, ErrDuplicate) || !errors.Is(err, gorm.ErrDuplicatedKey) || statusOf(err) != 409 {
			t.Errorf("duplicate: %v", err)
		}
		if n := errs("duplicate"); n != 1 {
			t.Errorf("duplicate counted %v times, want 1", n)
		}

		long := Product{Name: strings.Repeat("x", 65), Stock: 1}
		if err := Insert(ctx, db, &long); !errors.Is(err, ErrViolation) {
			t.Errorf("oversized value: %v, want a violation", err)
		}
		if err := Insert(ctx, db, &Product{Name: "negative", Stock: -1}); !errors.Is(err, ErrViolation) {
			t.Errorf("check constraint: %v, want a violation", err)
		}

		for _, key := range []any{"1 OR 1=1", "1; DROP TABLE products", "0) OR (1=1"} {
			got, err := Get[Product](ctx, db, key)
			if got != nil || err == nil || statusOf(err) == 0 || IsFailure(err) {
				t.Errorf("Get(%q): %+v, %v (status %d)", key, got, err, statusOf(err))
			}
		}
		if _, err := Get[Product](ctx, db, uint64(1)<<63); !errors.Is(err, ErrViolation) {
			t.Errorf("key beyond int64: %v, want a violation", err)
		}
		if _, err := Get[Product](ctx, db, []int64{1, 2}); !errors.Is(err, gorm.ErrInvalidValue) {
			t.Errorf("slice key: %v", err)
		}
		if got, err := Get[Product](ctx, db, p.ID); err != nil || got.Name != "dup" {
			t.Errorf("after the bad input: %+v, %v", got, err)
		}
		if err := Insert[Product](ctx, db, nil); err == nil {
			t.Error("nil row inserted")
		}
		if _, err := Get[int](ctx, db, 1); err == nil {
			t.Error("Get of a non-struct succeeded")
		}
	})
}

// A statement that has to wait for a connection gives up after OpTimeout.
func TestTypedOpTimeout(t *testing.T) {
	dialects(t, func(t *testing.T, cfg Config) {
		cfg.MaxOpenConns, cfg.OpTimeout = 1, 300*time.Millisecond
		db := openTest(t, cfg)
		ctx := context.Background()
		p := Product{Name: "p", Stock: 1}
		if err := Insert(ctx, db, &p); err != nil {
			t.Fatal(err)
		}
		held, err := db.SQL().Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer held.Close()
		start := time.Now()
		_, err = Get[Product](ctx, db, p.ID)
		if !errors.Is(err, ErrTimeout) {
			t.Errorf("Get with the pool exhausted: %v, want a timeout", err)
		}
		err = Insert(ctx, db, &Product{Name: "q", Stock: 1})
		if !errors.Is(err, ErrTimeout) {
			t.Errorf("Insert with the pool exhausted: %v, want a timeout", err)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("took %v", d)
		}
		if n := counterValue(t, db.metrics.errors.WithLabelValues("timeout")); n != 2 {
			t.Errorf("timeouts counted: %v, want 2", n)
		}
	})
}

// Inside a Tx closure, Get and Insert join the transaction.
func TestTypedInTx(t *testing.T) {
	dialects(t, func(t *testing.T, cfg Config) {
		db := openTest(t, cfg)
		ctx := context.Background()
		errRollback := errors.New("roll back")
		var id int64
		err := db.Tx(ctx, func(tx *gorm.DB) error {
			ctx := tx.Statement.Context
			p := Product{Name: "in-tx", Stock: 3}
			if err := Insert(ctx, db, &p); err != nil {
				return err
			}
			id = p.ID
			got, err := Get[Product](ctx, db, p.ID)
			if err != nil || got.Stock != 3 {
				return fmt.Errorf("read inside the tx: %+v, %w", got, err)
			}
			return errRollback
		})
		if !errors.Is(err, errRollback) {
			t.Fatalf("tx: %v", err)
		}
		if _, err := Get[Product](ctx, db, id); !errors.Is(err, ErrNotFound) {
			t.Errorf("row of a rolled-back tx: %v", err)
		}
		if n := count(t, db, "products"); n != 0 {
			t.Errorf("%d products after rollback", n)
		}
	})
}

// Reads go to a replica unless the session wrote; inserts go to the primary
// and mark the session (see openWithReplica).
func TestTypedReadYourWrites(t *testing.T) {
	db := openWithReplica(t)
	bg := context.Background()

	fresh := Product{Name: "fresh", Stock: 1}
	if err := Insert(bg, db, &fresh); err != nil {
		t.Fatal(err)
	}
	if got, err := Get[Product](bg, db, fresh.ID); err != nil || got.Name != "replica-only" {
		t.Errorf("read without a session: %+v, %v; want the replica's row", got, err)
	}
	s := WithSession(bg)
	if got, err := Get[Product](s, db, fresh.ID); err != nil || got.Name != "replica-only" {
		t.Errorf("session before any write: %+v, %v; want the replica's row", got, err)
	}
	other := Product{Name: "other", Stock: 1}
	if err := Insert(s, db, &other); err != nil {
		t.Fatal(err)
	}
	if got, err := Get[Product](s, db, fresh.ID); err != nil || got.Name != "fresh" {
		t.Errorf("read after a write in the session: %+v, %v; want the primary's row", got, err)
	}
}

// Statements are logged as GORM's are: slow ones at warn, without values.
func TestTypedLogging(t *testing.T) {
	postgresBackends(t, func(t *testing.T, cfg Config) {
		var buf bytes.Buffer
		log, err := tier.NewLogger(tier.LogConfig{Level: "info", Format: "json"}, &buf)
		if err != nil {
			t.Fatal(err)
		}
		cfg.SlowQuery = time.Nanosecond
		db := openTest(t, cfg, WithLogger(log))
		ctx := context.Background()
		buf.Reset()
		p := Product{Name: "secret-value", Stock: 1}
		if err := Insert(ctx, db, &p); err != nil {
			t.Fatal(err)
		}
		if _, err := Get[Product](ctx, db, p.ID); err != nil {
			t.Fatal(err)
		}
		_, _ = Get[Product](ctx, db, p.ID+1)
		if err := Insert(ctx, db, &Product{Name: "secret-value", Stock: 1}); !errors.Is(err, ErrDuplicate) {
			t.Fatal(err)
		}
		if strings.Contains(buf.String(), "secret-value") {
			t.Errorf("values leaked into the log:\n%s", buf.String())
		}
		var got []string
		for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
			var r map[string]any
			if err := json.Unmarshal([]byte(line), &r); err != nil {
				t.Fatalf("log line %q: %v", line, err)
			}
			got = append(got, fmt.Sprintf("%s %s %.6s", r["level"], r["msg"], r["sql"]))
		}
		want := []string{"WARN slow sql INSERT", "WARN slow sql SELECT", "WARN slow sql SELECT", "WARN slow sql INSERT"}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("log records %q, want %q", got, want)
		}
	})
}

// scanOnly is a list GORM would bind element by element.
type scanOnly []string

func (s *scanOnly) Scan(any) error { return nil }

// Which field types the fast path handles itself.
func TestDirectField(t *testing.T) {
	for _, c := range []struct {
		typ  reflect.Type
		want bool
	}{
		{reflect.TypeFor[string](), true},
		{reflect.TypeFor[*int64](), true},
		{reflect.TypeFor[time.Time](), true},
		{reflect.TypeFor[json.RawMessage](), false},
		{reflect.TypeFor[Grade](), true},
		{reflect.TypeFor[gorm.DeletedAt](), true},
		{reflect.TypeFor[sql.NullString](), true},
		{reflect.TypeFor[Tags](), true},
		{reflect.TypeFor[scanOnly](), false},
		{reflect.TypeFor[[]string](), false},
		{reflect.TypeFor[[16]byte](), false},
		{reflect.TypeFor[map[string]any](), false},
		{reflect.TypeFor[Product](), false},
	} {
		f := &schema.Field{FieldType: c.typ, StructField: reflect.StructField{Index: []int{0}}}
		if got := directField(f); got != c.want {
			t.Errorf("%s: direct %v, want %v", c.typ, got, c.want)
		}
	}
	embeddedPtr := &schema.Field{FieldType: reflect.TypeFor[string](), StructField: reflect.StructField{Index: []int{-1, 0}}}
	if directField(embeddedPtr) {
		t.Error("a field of an embedded pointer is direct")
	}
}

// An Insert blocked behind another transaction's uncommitted row: the
// caller's cancellation is 499 and no failure, its deadline a timeout, and
// Stop cuts it off when its context ends.
func TestTypedCancellationAndStop(t *testing.T) {
	postgresBackends(t, func(t *testing.T, cfg Config) {
		db := openTest(t, cfg)
		dsn := directDSN(cfg)
		bg := context.Background()
		holder, err := pgx.Connect(bg, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer holder.Close(bg)
		tx, err := holder.Begin(bg)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = tx.Rollback(bg) }()
		if _, err := tx.Exec(bg, "INSERT INTO products (name, stock) VALUES ('held', 1)"); err != nil {
			t.Fatal(err)
		}
		blocked := func(ctx context.Context) error { return Insert(ctx, db, &Product{Name: "held", Stock: 1}) }
		observer, err := pgx.Connect(bg, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer observer.Close(bg)
		// A busy pool connection is not proof enough: one given up on by an
		// earlier phase can still be closing. Wait for PostgreSQL to show a
		// statement, started after the call, that waits on the holder's lock.
		goBlocked := func(ctx context.Context, done chan<- error) {
			var since time.Time
			if err := observer.QueryRow(bg, "SELECT clock_timestamp()").Scan(&since); err != nil {
				t.Fatal(err)
			}
			go func() { done <- blocked(ctx) }()
			wait.For(t, 10*time.Second, "the insert waiting on the held row", func() bool {
				var n int
				err := observer.QueryRow(bg, `SELECT count(*) FROM pg_stat_activity
					WHERE $1::int = ANY(pg_blocking_pids(pid)) AND query_start >= $2`, holder.PgConn().PID(), since).Scan(&n)
				if err != nil {
					t.Fatal(err)
				}
				return n > 0
			})
		}

		ctx, cancel := context.WithCancel(bg)
		done := make(chan error, 1)
		goBlocked(ctx, done)
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) || IsFailure(err) || statusOf(err) != 0 {
			t.Errorf("cancelled: %v (status %d, failure %v); want the cancellation and no failure", err, statusOf(err), IsFailure(err))
		}

		// The deadline's cancel stops the insert on the server, which says
		// it was waiting for the row: a timeout, and no failure of the
		// database, as a lock_timeout.
		ctx, cancel = context.WithTimeout(bg, 100*time.Millisecond)
		defer cancel()
		if err := blocked(ctx); !errors.Is(err, ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) || IsFailure(err) || statusOf(err) != 504 {
			t.Errorf("deadline: %v (status %d, failure %v); want ErrTimeout, the deadline's, no failure", err, statusOf(err), IsFailure(err))
		}

		goBlocked(bg, done)
		stopCutsOff(t, db, done)
	})
}

// Many goroutines share one plan per model, built by whichever comes first.
func TestTypedConcurrent(t *testing.T) {
	dialects(t, func(t *testing.T, cfg Config) {
		db := openGadgets(t, cfg)
		ctx := context.Background()
		const workers, each = 8, 10
		errs := make(chan error, workers)
		for w := range workers {
			go func() {
				for i := range each {
					g := Gadget{Name: fmt.Sprintf("g%d-%d", w, i), Grade: "B"}
					if err := Insert(ctx, db, &g); err != nil {
						errs <- err
						return
					}
					got, err := Get[Gadget](ctx, db, g.ID)
					if err != nil || got.Name != g.Name || got.Grade != "B" || got.Status != "new" {
						errs <- fmt.Errorf("read back %+v: %v", got, err)
						return
					}
				}
				errs <- nil
			}()
		}
		for range workers {
			if err := <-errs; err != nil {
				t.Error(err)
			}
		}
		if n := count(t, db, "gadgets"); n != workers*each {
			t.Errorf("%d gadgets, want %d", n, workers*each)
		}
	})
}

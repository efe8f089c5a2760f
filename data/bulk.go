package data

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"gorm.io/gorm"
	"gorm.io/gorm/schema"
)

// ErrBulkInput is returned (wrapped) by BulkInsert when rows is not a slice
// of structs or pointers to structs that GORM can map.
var ErrBulkInput = errors.New("data: bulk insert needs a slice of GORM models")

// BulkInsert inserts rows (a slice of GORM models, or of pointers to them)
// in one call and returns how many rows it wrote. On PostgreSQL it streams
// them with COPY, which is atomic and several times faster than INSERT; on
// SQLite, or inside a Tx, it runs multi-row INSERTs of Config.BulkBatch
// rows, in a transaction of its own unless it joins ctx's. Columns the
// database fills itself (an auto-increment key, a column with a DEFAULT)
// are left out when every row leaves them zero; COPY does not read back
// generated keys, so those stay zero in rows. Hooks (BeforeCreate...) do
// not run. Without a deadline in ctx, the call is bounded by
// Config.OpTimeout: give large loads a deadline of their own.
func (db *DB) BulkInsert(ctx context.Context, rows any) (int64, error) {
	v := reflect.Indirect(reflect.ValueOf(rows))
	if v.Kind() != reflect.Slice {
		return 0, fmt.Errorf("%w, got %T", ErrBulkInput, rows)
	}
	if v.Len() == 0 {
		return 0, nil
	}
	for i := range v.Len() {
		if e := v.Index(i); e.Kind() == reflect.Pointer && e.IsNil() {
			return 0, fmt.Errorf("%w: row %d is nil", ErrBulkInput, i)
		}
	}
	stmt := &gorm.Statement{DB: db.gorm}
	if err := stmt.Parse(rows); err != nil {
		return 0, fmt.Errorf("%w: %w", ErrBulkInput, err)
	}
	fields, err := copyFields(ctx, stmt.Schema, v)
	if err != nil {
		return 0, err
	}
	if db.Dialect() != Postgres || db.txFrom(ctx) != nil {
		return db.insertBatches(ctx, rows, v.Len())
	}
	cols := make([]string, len(fields))
	for i, f := range fields {
		cols[i] = f.DBName
	}
	table := pgx.Identifier(strings.Split(stmt.Table, "."))

	ctx, cancel := withOpTimeout(ctx, db.cfg.OpTimeout)
	defer cancel()
	conn, err := db.primary.Conn(ctx)
	if err != nil {
		return 0, Classify(err)
	}
	defer conn.Close()
	var n int64
	err = conn.Raw(func(dc any) error {
		pc := dc.(*stdlib.Conn).Conn()
		var err error
		n, err = pc.CopyFrom(ctx, table, cols, &rowSource{ctx: ctx, rows: v, fields: fields, now: time.Now()})
		return err
	})
	if err != nil {
		if s := sessionFrom(ctx); s != nil {
			s.markWrote()
		}
		err = classifyIn(ctx, err)
		db.metrics.countError(err)
		return n, err
	}
	if s := sessionFrom(ctx); s != nil {
		s.markWrote()
	}
	return n, nil
}

// insertBatches is BulkInsert with INSERT statements, atomically.
func (db *DB) insertBatches(ctx context.Context, rows any, n int) (int64, error) {
	err := db.Tx(ctx, func(tx *gorm.DB) error {
		return tx.Session(&gorm.Session{CreateBatchSize: db.cfg.BulkBatch}).Create(rows).Error
	}, Attempts(1))
	if err != nil {
		return 0, err
	}
	return int64(n), nil
}

// copyFields lists the columns COPY writes: every creatable column, less
// those the database defaults that every row leaves zero. Such a column
// that only some rows set is refused: one COPY cannot default it for some
// rows only, and would store the others' zero.
func copyFields(ctx context.Context, s *schema.Schema, rows reflect.Value) ([]*schema.Field, error) {
	var out []*schema.Field
	for _, f := range s.Fields {
		if f.DBName == "" || !f.Creatable {
			continue
		}
		if f.HasDefaultValue && f.DefaultValueInterface == nil && f.AutoCreateTime == 0 {
			switch zeros := countZero(ctx, f, rows); zeros {
			case rows.Len():
				continue
			case 0:
			default:
				return nil, fmt.Errorf("%w: column %s is set in some rows and left to its database default in %d others: insert those apart", ErrBulkInput, f.DBName, zeros)
			}
		}
		out = append(out, f)
	}
	return out, nil
}

func countZero(ctx context.Context, f *schema.Field, rows reflect.Value) int {
	n := 0
	for i := range rows.Len() {
		if _, zero := f.ValueOf(ctx, reflect.Indirect(rows.Index(i))); zero {
			n++
		}
	}
	return n
}

// rowSource feeds a slice of models to CopyFrom one row at a time.
type rowSource struct {
	ctx    context.Context
	rows   reflect.Value
	fields []*schema.Field
	now    time.Time
	i      int
	vals   []any
}

func (r *rowSource) Next() bool {
	r.i++
	return r.i <= r.rows.Len()
}

func (r *rowSource) Values() ([]any, error) {
	row := reflect.Indirect(r.rows.Index(r.i - 1))
	if r.vals == nil {
		r.vals = make([]any, len(r.fields))
	}
	for j, f := range r.fields {
		v, zero := f.ValueOf(r.ctx, row)
		switch {
		case zero && (f.AutoCreateTime > 0 || f.AutoUpdateTime > 0):
			v = autoTime(f, r.now)
		case zero && f.DefaultValueInterface != nil:
			v = f.DefaultValueInterface
		}
		if dv, ok := v.(driver.Valuer); ok {
			var err error
			if v, err = dv.Value(); err != nil {
				return nil, fmt.Errorf("row %d, %s: %w", r.i-1, f.DBName, err)
			}
		}
		r.vals[j] = v
	}
	return r.vals, nil
}

func (r *rowSource) Err() error { return nil }

// autoTime is what GORM would store in an autoCreateTime/autoUpdateTime
// column.
func autoTime(f *schema.Field, now time.Time) any {
	switch f.AutoCreateTime | f.AutoUpdateTime {
	case schema.UnixNanosecond:
		return now.UnixNano()
	case schema.UnixMillisecond:
		return now.UnixMilli()
	case schema.UnixSecond:
		if f.FieldType.Kind() != reflect.Struct {
			return now.Unix()
		}
	}
	return now
}

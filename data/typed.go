package data

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/stdlib"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"
	"gorm.io/gorm/schema"
	"gorm.io/plugin/dbresolver"
)

// Get reads the row of model T whose primary key equals key, like
// db.WithContext(ctx).Take(&row, key) but with key always bound as a
// parameter (a string key is a value, never SQL). It returns nil and an
// error matching ErrNotFound (and gorm.ErrRecordNotFound) when there is no
// such row, or when it is soft-deleted (a gorm.DeletedAt field). T must be
// a struct with exactly one primary key field; key must be a single value.
//
// On PostgreSQL, outside a Tx, Get runs the query on a connection of the
// data tier's pools through pgx directly, without GORM's statement
// building or database/sql's row scanning: same SQL, same pool limits,
// replica choice (see WithSession), op timeout, error classification,
// metrics and logging as the GORM path. It takes GORM's path instead, with
// the same results, on SQLite, inside a Tx closure's context, and for
// models it cannot read exactly as GORM does: an AfterFind hook, query
// clauses other than gorm.DeletedAt's soft delete, or a column field that
// is a serializer field, sits in an embedded struct pointer, or has a type
// other than booleans, numbers, strings, byte slices, time.Time,
// sql.Scanner types (lists among them also driver.Valuers) and pointers to
// these, gorm.Valuer types excepted. Association fields do not matter. A
// column pgx cannot decode into its field (one database/sql converts, such
// as an integer into a bool) moves T to GORM's path for good, with a
// warning logged. A NULL leaves the field's zero value, as GORM does.
func Get[T any](ctx context.Context, db *DB, key any) (*T, error) {
	p, err := db.planFor(reflect.TypeFor[T]())
	if err != nil {
		return nil, err
	}
	if err := checkKey(key); err != nil {
		return nil, err
	}
	row := new(T)
	if db.cfg.Dialect() != Postgres || !p.readFast || p.readBroken.Load() || db.txFrom(ctx) != nil {
		if err := p.takeGorm(ctx, db, row, key); err != nil {
			return nil, err
		}
		return row, nil
	}
	err = p.get(ctx, db, reflect.ValueOf(row).Elem(), key)
	if errors.Is(err, errDecode) {
		// pgx could not decode a column that database/sql converts:
		// GORM's answer is the reference, from now on for this model.
		if p.readBroken.CompareAndSwap(false, true) {
			db.log.WarnContext(ctx, "data: Get reads this model through GORM: a column does not decode directly", "model", p.schema.Name, "error", err.Error())
		}
		row = new(T)
		err = p.takeGorm(ctx, db, row, key)
	}
	if err != nil {
		return nil, err
	}
	return row, nil
}

// Insert inserts row, a model T, like db.WithContext(ctx).Create(row): the
// same columns and values (a zero auto-increment key and zero fields with a
// database default left out, default: tag values and autoCreateTime /
// autoUpdateTime set from GORM's NowFunc, driver.Valuer fields as is), and
// the generated key and defaulted columns read back into row through
// RETURNING. A duplicate key is an error matching ErrDuplicate.
//
// On PostgreSQL, outside a Tx, Insert runs the statement on a connection
// of the primary's pool through pgx directly, with the data tier's op
// timeout, error classification, metrics, logging and read-your-writes
// marking. It takes GORM's path instead, with the same results, on SQLite,
// inside a Tx closure's context (it then joins the transaction), and for
// models whose insert GORM does more for: create or save hooks,
// associations, create clauses, or inserted and returned fields that Get
// would not read directly (see Get), or more than six fields with a
// database default. A returned column pgx cannot decode into its field
// moves T to GORM's path for good, with a warning logged; the row it was
// returned for is read back through GORM.
func Insert[T any](ctx context.Context, db *DB, row *T) error {
	if row == nil {
		return fmt.Errorf("data: Insert: %w", gorm.ErrInvalidValue)
	}
	p, err := db.planFor(reflect.TypeFor[T]())
	if err != nil {
		return err
	}
	if db.cfg.Dialect() != Postgres || !p.writeFast || p.writeBroken.Load() || db.txFrom(ctx) != nil {
		return db.WithContext(ctx).Create(row).Error
	}
	return p.insert(ctx, db, reflect.ValueOf(row).Elem())
}

// errDecode marks a column the fast path could not decode into its field.
var errDecode = errors.New("data: cannot decode column directly")

// maxDefaultFields bounds the INSERT variants a plan prepares: one per
// subset of the database-defaulted fields a row sets.
const maxDefaultFields = 6

// A typedPlan is what Get and Insert need of one model, worked out once per
// DB and type from GORM's parsed schema (its cache and naming strategy).
type typedPlan struct {
	schema *schema.Schema
	pk     *schema.Field // nil unless exactly one primary key

	readFast   bool
	readBroken atomic.Bool // a column did not decode: GORM from now on
	read       *statement
	columns    map[string]*schema.Field // result column -> field, as GORM's scan maps them
	indirect   map[string]bool          // columns GORM maps to fields the fast path cannot set
	textOnly   map[string]bool          // columns of named string types: see textual

	writeFast   bool
	writeBroken atomic.Bool     // a returned column did not decode: GORM from now on
	fixed       []*schema.Field // always inserted, in GORM's order
	defaulted   []*schema.Field // left to the database when zero
	inserts     []*statement    // by bit mask of the defaulted fields set
	returning   []*schema.Field // read back through RETURNING, in its order
}

func (db *DB) planFor(t reflect.Type) (*typedPlan, error) {
	if v, ok := db.plans.Load(t); ok {
		return v.(*typedPlan), nil
	}
	p, err := newTypedPlan(db, t)
	if err != nil {
		return nil, err
	}
	v, _ := db.plans.LoadOrStore(t, p)
	return v.(*typedPlan), nil
}

func newTypedPlan(db *DB, t reflect.Type) (*typedPlan, error) {
	if t.Kind() != reflect.Struct {
		return nil, fmt.Errorf("data: %s is not a struct model: %w", t, gorm.ErrInvalidData)
	}
	stmt := &gorm.Statement{DB: db.gorm}
	if err := stmt.Parse(reflect.New(t).Interface()); err != nil {
		return nil, fmt.Errorf("data: model %s: %w", t, err)
	}
	s := stmt.Schema
	p := &typedPlan{schema: s, columns: make(map[string]*schema.Field, len(s.Fields)), indirect: map[string]bool{}, textOnly: map[string]bool{}}
	if len(s.PrimaryFields) == 1 {
		p.pk = s.PrimaryFields[0]
	}
	// GORM's scan looks a column up by database name, then by Go field
	// name, and skips it unless the field is readable.
	for name, f := range s.FieldsByName {
		p.columns[name] = f
	}
	for name, f := range s.FieldsByDBName {
		p.columns[name] = f
	}
	p.readFast = p.pk != nil && !s.AfterFind
	for name, f := range p.columns {
		switch {
		case !f.Readable:
			delete(p.columns, name)
		case !directField(f):
			// A field without a column (an association) only meets a
			// result column named like it by accident: then GORM reads it.
			p.readFast = p.readFast && f.DBName == ""
			p.indirect[name] = true
			delete(p.columns, name)
		case namedString(f.FieldType):
			p.textOnly[name] = true
		}
	}
	softDelete, ok := softDeleteField(s)
	p.readFast = p.readFast && ok
	if p.readFast {
		p.read = newStatement(buildSelect(stmt, p.pk, softDelete))
	}

	for _, name := range s.DBNames {
		if f := s.FieldsByDBName[name]; f.Creatable && (!f.HasDefaultValue || f.DefaultValueInterface != nil) {
			p.fixed = append(p.fixed, f)
		}
	}
	var returning []*schema.Field
	for _, f := range s.FieldsWithDefaultDBValue {
		if f.Creatable {
			p.defaulted = append(p.defaulted, f)
		}
		if f.Readable {
			returning = append(returning, f)
		}
	}
	p.returning = returning
	p.writeFast = !s.BeforeSave && !s.BeforeCreate && !s.AfterCreate && !s.AfterSave &&
		len(s.Relationships.Relations) == 0 && len(s.Relationships.EmbeddedRelations) == 0 &&
		len(s.CreateClauses) == 0 && len(p.defaulted) <= maxDefaultFields &&
		allDirect(p.fixed) && allDirect(p.defaulted) && allDirect(returning)
	if p.writeFast {
		p.inserts = make([]*statement, 1<<len(p.defaulted))
		for mask := range p.inserts {
			p.inserts[mask] = newStatement(buildInsert(stmt, p.fixed, p.defaulted, mask, returning))
		}
	}
	return p, nil
}

// softDeleteField returns the gorm.DeletedAt field whose soft delete the
// read must honour, and whether the model's query clauses are that alone.
func softDeleteField(s *schema.Schema) (*schema.Field, bool) {
	var field *schema.Field
	for _, c := range s.QueryClauses {
		sd, ok := c.(gorm.SoftDeleteQueryClause)
		if !ok || sd.ZeroValue.Valid || sd.Field == nil || field != nil {
			return nil, false
		}
		field = sd.Field
	}
	return field, true
}

// buildSelect writes the query GORM's Take(&row, key) sends.
func buildSelect(stmt *gorm.Statement, pk, softDelete *schema.Field) string {
	defer stmt.SQL.Reset()
	stmt.WriteString("SELECT * FROM ")
	stmt.WriteQuoted(clause.Table{Name: clause.CurrentTable})
	stmt.WriteString(" WHERE ")
	stmt.WriteQuoted(clause.Column{Table: clause.CurrentTable, Name: pk.DBName})
	stmt.WriteString(" = $1")
	if softDelete != nil {
		stmt.WriteString(" AND ")
		stmt.WriteQuoted(clause.Column{Table: clause.CurrentTable, Name: softDelete.DBName})
		stmt.WriteString(" IS NULL")
	}
	stmt.WriteString(" LIMIT $2")
	return stmt.SQL.String()
}

// buildInsert writes the INSERT GORM's Create sends for a row that sets
// the defaulted fields in mask.
func buildInsert(stmt *gorm.Statement, fixed, defaulted []*schema.Field, mask int, returning []*schema.Field) string {
	defer stmt.SQL.Reset()
	cols := append([]*schema.Field(nil), fixed...)
	for i, f := range defaulted {
		if mask&(1<<i) != 0 {
			cols = append(cols, f)
		}
	}
	stmt.WriteString("INSERT INTO ")
	stmt.WriteQuoted(clause.Table{Name: clause.CurrentTable})
	stmt.WriteByte(' ')
	if len(cols) == 0 {
		stmt.WriteString("DEFAULT VALUES")
	} else {
		stmt.WriteByte('(')
		for i, f := range cols {
			if i > 0 {
				stmt.WriteByte(',')
			}
			stmt.WriteQuoted(clause.Column{Name: f.DBName})
		}
		stmt.WriteString(") VALUES (")
		for i := range cols {
			if i > 0 {
				stmt.WriteByte(',')
			}
			stmt.WriteString("$" + strconv.Itoa(i+1))
		}
		stmt.WriteByte(')')
	}
	if len(returning) > 0 {
		stmt.WriteString(" RETURNING ")
		for i, f := range returning {
			if i > 0 {
				stmt.WriteByte(',')
			}
			stmt.WriteQuoted(clause.Column{Name: f.DBName})
		}
	}
	return stmt.SQL.String()
}

var (
	scannerType    = reflect.TypeFor[sql.Scanner]()
	valuerType     = reflect.TypeFor[driver.Valuer]()
	gormValuerType = reflect.TypeFor[gorm.Valuer]()
	exprType       = reflect.TypeFor[clause.Expression]()
	timeType       = reflect.TypeFor[time.Time]()
	bytesType      = reflect.TypeFor[[]byte]()
	stringType     = reflect.TypeFor[string]()
)

// allDirect reports whether every field can be read and written without
// GORM: a plain field of a type that pgx and database/sql treat alike.
func allDirect(fields []*schema.Field) bool {
	for _, f := range fields {
		if !directField(f) {
			return false
		}
	}
	return true
}

func directField(f *schema.Field) bool {
	if f.Serializer != nil {
		return false
	}
	for _, i := range f.StructField.Index {
		if i < 0 { // inside an embedded struct pointer
			return false
		}
	}
	t := f.FieldType
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	pt := reflect.PointerTo(t)
	for _, it := range []reflect.Type{gormValuerType, exprType} {
		if t.Implements(it) || pt.Implements(it) {
			return false
		}
	}
	if t == timeType {
		return true
	}
	scanner := pt.Implements(scannerType)
	switch t.Kind() {
	case reflect.Bool, reflect.String, reflect.Float32, reflect.Float64,
		reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return true
	case reflect.Slice, reflect.Array:
		if t == bytesType {
			// Not a named byte slice: database/sql does not convert a
			// string into one, pgx does.
			return true
		}
		// GORM binds any other list element by element, unless it is a
		// driver.Valuer.
		return scanner && t.Implements(valuerType)
	}
	return scanner
}

// namedString reports a string type of its own (type Status string), not
// a sql.Scanner: database/sql fills one only from a string or byte value.
func namedString(t reflect.Type) bool {
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t.Kind() == reflect.String && t != stringType && !reflect.PointerTo(t).Implements(scannerType)
}

// textual reports whether pgx's database/sql adapter returns a column of
// this type as a string or bytes, the values database/sql converts into a
// named string type; pgx would convert the others (numbers, times) too.
func textual(oid uint32) bool {
	switch oid {
	case pgtype.BoolOID, pgtype.CIDOID, pgtype.OIDOID, pgtype.XIDOID, pgtype.DateOID,
		pgtype.Float4OID, pgtype.Float8OID, pgtype.Int2OID, pgtype.Int4OID, pgtype.Int8OID,
		pgtype.TimestampOID, pgtype.TimestamptzOID:
		return false
	}
	return true
}

// checkKey refuses keys that GORM would expand into a list.
func checkKey(key any) error {
	if key == nil {
		return nil
	}
	if _, ok := key.(driver.Valuer); ok {
		return nil
	}
	if t := reflect.TypeOf(key); (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) && t.Elem().Kind() != reflect.Uint8 {
		return fmt.Errorf("data: Get: key must be a single value, got %T: %w", key, gorm.ErrInvalidValue)
	}
	return nil
}

// takeGorm is Get through GORM.
func (p *typedPlan) takeGorm(ctx context.Context, db *DB, row any, key any) error {
	if p.pk == nil {
		return fmt.Errorf("data: Get: model %s needs exactly one primary key: %w", p.schema.Name, gorm.ErrPrimaryKeyRequired)
	}
	return db.WithContext(ctx).Where(clause.Eq{Column: clause.Column{Table: clause.CurrentTable, Name: p.pk.DBName}, Value: key}).Take(row).Error
}

// get is Get through pgx, on a replica that may serve the read (see
// readReplica), or when it fails the read, on the primary.
func (p *typedPlan) get(ctx context.Context, db *DB, row reflect.Value, key any) error {
	begin := time.Now()
	n, err := int64(0), error(nil)
	if r := db.readReplica(ctx); r != nil {
		n, err = p.getOn(ctx, db, r.pool, row, key)
		if !db.fellBack(ctx, r, err) {
			return p.got(ctx, db, begin, n, err)
		}
	}
	n, err = p.getOn(ctx, db, db.primary, row, key)
	return p.got(ctx, db, begin, n, err)
}

// got finishes a Get.
func (p *typedPlan) got(ctx context.Context, db *DB, begin time.Time, n int64, err error) error {
	if err == nil && n == 0 {
		err = gorm.ErrRecordNotFound
	}
	if errors.Is(err, errDecode) {
		return err
	}
	return db.finish(ctx, begin, p.read, n, err)
}

// getOn runs Get's query on pool.
func (p *typedPlan) getOn(ctx context.Context, db *DB, pool *sql.DB, row reflect.Value, key any) (int64, error) {
	ctx, cancel := db.boundOp(ctx, pool)
	defer cancel()
	var n int64
	err := db.onConn(ctx, pool, func(dc any) error {
		rows, err := pgxConn(dc).Query(ctx, p.read.sql, key, 1)
		if err != nil {
			return retryable(err)
		}
		defer rows.Close()
		if !rows.Next() {
			return retryable(rows.Err())
		}
		n = 1
		if err := p.scan(ctx, rows, row); err != nil {
			return err
		}
		rows.Close()
		return rows.Err()
	})
	return n, err
}

// scan sets row's fields from the current row the way GORM's scan does:
// columns without a readable field are skipped, and so are NULLs (the
// field keeps its value). It decodes column by column rather than through
// rows.Scan, which closes the rows on a failure: the row stays readable.
func (p *typedPlan) scan(ctx context.Context, rows pgx.Rows, row reflect.Value) error {
	raw := rows.RawValues()
	m := rows.Conn().TypeMap()
	for i, fd := range rows.FieldDescriptions() {
		if raw[i] == nil {
			continue
		}
		f, ok := p.columns[fd.Name]
		if !ok {
			if p.indirect[fd.Name] {
				return fmt.Errorf("%w: column %s", errDecode, fd.Name)
			}
			continue
		}
		if len(p.textOnly) > 0 && p.textOnly[fd.Name] && !textual(fd.DataTypeOID) {
			return fmt.Errorf("%w: column %s of type %d into %s", errDecode, fd.Name, fd.DataTypeOID, f.FieldType)
		}
		if err := m.Scan(fd.DataTypeOID, fd.Format, raw[i], f.ReflectValueOf(ctx, row).Addr().Interface()); err != nil {
			return fmt.Errorf("%w: column %s: %w", errDecode, fd.Name, err)
		}
	}
	return nil
}

// insert is Insert through pgx.
func (p *typedPlan) insert(ctx context.Context, db *DB, row reflect.Value) error {
	begin := time.Now()
	args := make([]any, 0, len(p.fixed)+len(p.defaulted))
	var now time.Time
	for _, f := range p.fixed {
		v, zero := f.ValueOf(ctx, row)
		if zero {
			switch {
			case f.DefaultValueInterface != nil:
				v = f.DefaultValueInterface
				if err := f.Set(ctx, row, v); err != nil {
					return db.finish(ctx, begin, nil, 0, err)
				}
			case f.AutoCreateTime > 0 || f.AutoUpdateTime > 0:
				if now.IsZero() {
					now = db.gorm.NowFunc()
				}
				if err := f.Set(ctx, row, now); err != nil {
					return db.finish(ctx, begin, nil, 0, err)
				}
				v, _ = f.ValueOf(ctx, row)
			}
		}
		args = append(args, v) // GORM binds a direct field's value as is
	}
	mask := 0
	for i, f := range p.defaulted {
		if v, zero := f.ValueOf(ctx, row); !zero {
			mask |= 1 << i
			args = append(args, v) // GORM binds a direct field's value as is
		}
	}
	st := p.inserts[mask]
	if s := sessionFrom(ctx); s != nil {
		s.markWrote()
	}
	ctx, cancel := db.boundOp(ctx, db.primary)
	defer cancel()
	var n int64
	var returned []any // when a returned column did not decode
	var decodeErr error
	err := db.onConn(ctx, db.primary, func(dc any) error {
		c := pgxConn(dc)
		if len(p.returning) == 0 {
			tag, err := c.Exec(ctx, st.sql, args...)
			n = tag.RowsAffected()
			if err == nil {
				db.notePosition(ctx, func(text *string) error { return c.QueryRow(ctx, currentPosition).Scan(text) })
			}
			return retryable(err)
		}
		rows, err := c.Query(ctx, st.sql, args...)
		if err != nil {
			return retryable(err)
		}
		defer rows.Close()
		if rows.Next() {
			n = 1
			if decodeErr = p.scan(ctx, rows, row); decodeErr != nil {
				if !errors.Is(decodeErr, errDecode) {
					return decodeErr
				}
				// The row is in: an error would have the caller
				// insert it again. Keep the key to read it back by.
				if returned, err = rows.Values(); err != nil {
					return err
				}
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return retryable(err)
		}
		db.notePosition(ctx, func(text *string) error { return c.QueryRow(ctx, currentPosition).Scan(text) })
		return nil
	})
	if err == nil && returned != nil {
		if p.writeBroken.CompareAndSwap(false, true) {
			db.log.WarnContext(ctx, "data: Insert writes this model through GORM: a returned column does not decode directly", "model", p.schema.Name, "error", decodeErr.Error())
		}
		err = p.readBack(ctx, db, row, returned)
	}
	return db.finish(ctx, begin, st, n, err)
}

// readBack sets row's returned fields through GORM, from the row just
// inserted: its primary key is among the returned values or in row.
func (p *typedPlan) readBack(ctx context.Context, db *DB, row reflect.Value, returned []any) error {
	if len(p.schema.PrimaryFields) == 0 {
		return fmt.Errorf("data: Insert: the row of %s is inserted, but without a primary key its returned columns cannot be read back: %w", p.schema.Name, errDecode)
	}
	var where []clause.Expression
	for _, pk := range p.schema.PrimaryFields {
		v, _ := pk.ValueOf(ctx, row)
		for i, f := range p.returning {
			if f == pk {
				v = returned[i]
			}
		}
		where = append(where, clause.Eq{Column: clause.Column{Table: clause.CurrentTable, Name: pk.DBName}, Value: v})
	}
	cols := make([]string, len(p.returning))
	for i, f := range p.returning {
		cols[i] = f.DBName
	}
	return db.gorm.WithContext(ctx).Session(&gorm.Session{SkipHooks: true}).Clauses(dbresolver.Write).
		Select(cols).Where(clause.And(where...)).Take(row.Addr().Interface()).Error
}

// boundOp bounds ctx by Config.OpTimeout when it has no deadline and the
// statement would wait for one of pool's connections, as the deadline
// callbacks do for GORM's statements (they look at every pool, not knowing
// which one dbresolver will pick; this looks at the one it uses).
func (db *DB) boundOp(ctx context.Context, pool *sql.DB) (context.Context, context.CancelFunc) {
	if db.cfg.OpTimeout < 0 {
		return ctx, func() {}
	}
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	if s := pool.Stats(); s.InUse < s.MaxOpenConnections {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, db.cfg.OpTimeout)
}

// badConn makes database/sql drop the connection a statement failed on
// before sending anything, so that it can be retried on another.
type badConn struct{ err error }

func (e badConn) Error() string   { return e.err.Error() }
func (e badConn) Unwrap() []error { return []error{driver.ErrBadConn, e.err} }

// retryable marks an error of a statement that never reached the server
// (see onConn).
func retryable(err error) error {
	if err != nil && pgconn.SafeToRetry(err) {
		return badConn{err}
	}
	return err
}

// pgxConn is the pgx connection under a driver connection of the pools.
func pgxConn(dc any) *pgx.Conn { return dc.(*stdlib.Conn).Conn() }

// onConn runs fn with a driver connection borrowed from pool (see pgxConn):
// the pool's limits, waits and statistics are those of any other
// statement. Like database/sql, it reruns on another connection a
// statement that failed before reaching the server (a connection that died
// while idle), which fn reports through retryable.
func (db *DB) onConn(ctx context.Context, pool *sql.DB, fn func(dc any) error) error {
	const attempts = 3
	for attempt := 1; ; attempt++ {
		conn, err := pool.Conn(ctx)
		if err != nil {
			return err
		}
		err = conn.Raw(fn)
		_ = conn.Close() // after a badConn, the pool has closed it already
		var bc badConn
		if !errors.As(err, &bc) {
			return err
		}
		if attempt == attempts || ctx.Err() != nil {
			return bc.err
		}
	}
}

// finish gives a fast-path statement's outcome what GORM's callbacks and
// logger give theirs: the dialect's error translation, classification,
// the error metric and the statement log.
func (db *DB) finish(ctx context.Context, begin time.Time, st *statement, rows int64, err error) error {
	if err != nil {
		if t, ok := db.gorm.Dialector.(gorm.ErrorTranslator); ok && db.gorm.TranslateError {
			err = t.Translate(err)
		}
		err = classifyIn(ctx, err)
		db.metrics.countError(err)
	}
	if st != nil {
		db.gorm.Logger.Trace(ctx, begin, st.trace[min(rows, 1)], err)
	}
	return err
}

// A statement is the SQL of a plan with what the logger asks of it made
// once, rather than a closure per call.
type statement struct {
	sql   string
	trace [2]func() (string, int64) // by rows affected: 0 or 1
}

func newStatement(sql string) *statement {
	return &statement{sql: sql, trace: [2]func() (string, int64){
		func() (string, int64) { return sql, 0 },
		func() (string, int64) { return sql, 1 },
	}}
}

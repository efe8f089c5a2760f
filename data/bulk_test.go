package data

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/threetier/threetier/internal/wait"
)

func makeEvents(n int, kind string) []Event {
	rows := make([]Event, n)
	for i := range rows {
		rows[i] = Event{Kind: kind, Payload: fmt.Sprintf(`{"n":%d}`, i), Amount: int64(i)}
	}
	return rows
}

func TestBulkInsert(t *testing.T) {
	dialects(t, func(t *testing.T, cfg Config) {
		db := openTest(t, cfg)
		ctx := context.Background()
		// The embedded SQLite is slow under the race detector: fewer rows.
		rows := int64(10_000)
		if cfg.Dialect() == SQLite {
			rows = 2_000
		}
		start := time.Now().Add(-time.Second)
		n, err := db.BulkInsert(ctx, makeEvents(int(rows), "bulk"))
		if err != nil || n != rows {
			t.Fatalf("BulkInsert: %d, %v", n, err)
		}
		if got := count(t, db, "events"); got != rows {
			t.Fatalf("%d rows", got)
		}
		var sum int64
		var oldest time.Time
		if err := db.Gorm().Model(&Event{}).Select("sum(amount)").Scan(&sum).Error; err != nil || sum != (rows-1)*rows/2 {
			t.Errorf("sum(amount) %d, %v", sum, err)
		}
		var e Event
		if err := db.Gorm().Order("id").First(&e).Error; err != nil {
			t.Fatal(err)
		}
		oldest = e.CreatedAt
		if oldest.Before(start) || e.Payload != `{"n":0}` || e.ID == 0 {
			t.Errorf("first row %+v: created_at not filled in, or payload wrong", e)
		}

		// Pointers work too, and inside a Tx the rows join the transaction.
		ptrs := []*Event{{Kind: "ptr", Payload: "a"}, {Kind: "ptr", Payload: "b"}}
		err = db.Tx(ctx, func(tx *gorm.DB) error {
			if _, err := db.BulkInsert(tx.Statement.Context, ptrs); err != nil {
				return err
			}
			return errors.New("roll back")
		})
		if err == nil || count(t, db, "events") != rows {
			t.Errorf("bulk insert inside a rolled back Tx was kept (err %v)", err)
		}

		// One bad row fails the whole call and writes nothing.
		bad := makeEvents(1000, "bad")
		bad[700].Kind = "a kind that is far longer than thirty-two characters"
		if n, err := db.BulkInsert(ctx, bad); !errors.Is(err, ErrViolation) {
			t.Errorf("bad row: %d, %v; want ErrViolation", n, err)
		}
		if got := count(t, db, "events"); got != rows {
			t.Errorf("%d rows after a failed bulk insert, want %d", got, rows)
		}
		dup := []Event{{ID: e.ID, Kind: "dup", Payload: "x"}}
		if _, err := db.BulkInsert(ctx, dup); !errors.Is(err, ErrDuplicate) {
			t.Errorf("duplicate key: %v", err)
		}

		for _, in := range []any{nil, 42, "rows", []int{1}, []*Event{nil}} {
			if _, err := db.BulkInsert(ctx, in); !errors.Is(err, ErrBulkInput) {
				t.Errorf("BulkInsert(%#v): %v, want ErrBulkInput", in, err)
			}
		}
		if n, err := db.BulkInsert(ctx, []Event{}); n != 0 || err != nil {
			t.Errorf("empty: %d, %v", n, err)
		}
	})
}

// A column the database fills (the auto-increment key here) that some rows
// set and others leave zero cannot go in one COPY: the zero would be
// stored as such. BulkInsert refuses it, on every dialect, and writes
// nothing.
func TestBulkInsertRefusesPartlySetDefaultedColumns(t *testing.T) {
	dialects(t, func(t *testing.T, cfg Config) {
		db := openTest(t, cfg)
		rows := []Event{{Kind: "a", Payload: "x"}, {ID: 1_000_000, Kind: "b", Payload: "y"}}
		if n, err := db.BulkInsert(context.Background(), rows); !errors.Is(err, ErrBulkInput) || !strings.Contains(err.Error(), "id") {
			t.Errorf("partly set ids: %d, %v; want ErrBulkInput naming the column", n, err)
		}
		if n := count(t, db, "events"); n != 0 {
			t.Errorf("%d rows written", n)
		}
	})
}

// cancelPayload cancels a context when COPY encodes the row it is in.
type cancelPayload struct {
	s      string
	cancel context.CancelFunc
}

func (p cancelPayload) Value() (driver.Value, error) {
	if p.cancel != nil {
		p.cancel()
	}
	return p.s, nil
}

type cancellingEvent struct {
	ID        int64
	Kind      string
	Payload   cancelPayload
	Amount    int64
	CreatedAt time.Time
}

func (cancellingEvent) TableName() string { return "events" }

// A bulk insert cancelled halfway writes nothing, reports the
// cancellation (not a database failure), and gives its connection back.
func TestBulkInsertCancelledMidway(t *testing.T) {
	postgresBackends(t, func(t *testing.T, cfg Config) {
		db := openTest(t, cfg)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		rows := make([]cancellingEvent, 50_000)
		for i := range rows {
			rows[i] = cancellingEvent{Kind: "c", Payload: cancelPayload{s: "x"}, Amount: int64(i)}
		}
		rows[20_000].Payload.cancel = cancel
		n, err := db.BulkInsert(ctx, rows)
		if !errors.Is(err, context.Canceled) || IsFailure(err) || statusOf(err) != 0 {
			t.Errorf("cancelled bulk insert: %d, %v (status %d); want the cancellation", n, err, statusOf(err))
		}
		if got := count(t, db, "events"); got != 0 {
			t.Errorf("%d rows after a cancelled bulk insert", got)
		}
		wait.For(t, 10*time.Second, "the connection returned to the pool", func() bool { return db.SQL().Stats().InUse == 0 })
	})
}

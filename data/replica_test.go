package data

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"gorm.io/gorm"
)

// Reads go to the replica unless the same session wrote: then they go to
// the primary (see openWithReplica).
func TestReadYourWritesWithReplicas(t *testing.T) {
	db := openWithReplica(t)
	find := func(ctx context.Context, name string) error {
		var p Product
		return db.WithContext(ctx).Where("name = ?", name).First(&p).Error
	}
	bg := context.Background()

	if err := db.WithContext(bg).Create(&Product{Name: "fresh", Stock: 1}).Error; err != nil {
		t.Fatal(err)
	}
	if err := find(bg, "fresh"); !errors.Is(err, ErrNotFound) {
		t.Errorf("read without a session: %v, want not found (served by the replica)", err)
	}
	if err := find(bg, "replica-only"); err != nil {
		t.Errorf("read without a session did not reach the replica: %v", err)
	}

	// A session that has not written yet still reads from the replica.
	s := WithSession(bg)
	if err := find(s, "replica-only"); err != nil {
		t.Errorf("session before any write: %v", err)
	}
	if err := db.WithContext(s).Model(&Product{}).Where("name = ?", "fresh").Update("stock", 2).Error; err != nil {
		t.Fatal(err)
	}
	if err := find(s, "fresh"); err != nil {
		t.Errorf("read after a write in the same session: %v (not served by the primary)", err)
	}
	var n int64
	if err := db.WithContext(s).Raw("SELECT count(*) FROM products WHERE name = 'fresh'").Scan(&n).Error; err != nil || n != 1 {
		t.Errorf("raw read after a write: %d, %v", n, err)
	}
	if err := find(s, "replica-only"); !errors.Is(err, ErrNotFound) {
		t.Errorf("session read after a write reached the replica: %v", err)
	}

	// A committed Tx marks the session; a read-only one does not.
	s2 := WithSession(bg)
	if err := db.Tx(s2, func(tx *gorm.DB) error { var p Product; return tx.First(&p).Error }, ReadOnly()); err != nil {
		t.Fatal(err)
	}
	if err := find(s2, "replica-only"); err != nil {
		t.Errorf("after a read-only Tx: %v", err)
	}
	if err := db.Tx(s2, func(tx *gorm.DB) error { return tx.Create(&Product{Name: "tx", Stock: 1}).Error }); err != nil {
		t.Fatal(err)
	}
	if err := find(s2, "tx"); err != nil {
		t.Errorf("after a Tx: %v", err)
	}

	// The middleware gives each request its own session.
	status := func(err error) int {
		if err == nil {
			return http.StatusOK
		}
		return statusOf(err)
	}
	h := SessionMiddleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			if err := db.WithContext(r.Context()).Create(&Product{Name: r.URL.Query().Get("name"), Stock: 1}).Error; err != nil {
				w.WriteHeader(status(err))
				return
			}
		}
		w.WriteHeader(status(find(r.Context(), r.URL.Query().Get("name"))))
	}))
	for _, c := range []struct {
		method, name string
		want         int
	}{{"POST", "via-http", 200}, {"GET", "via-http", 404}, {"GET", "replica-only", 200}} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(c.method, "/?name="+c.name, nil))
		if rec.Code != c.want {
			t.Errorf("%s %s: %d, want %d", c.method, c.name, rec.Code, c.want)
		}
	}
}

// Capacity reports the pools a guard sizes its bulkheads by: the
// primary's, and the standbys' added up.
func TestCapacity(t *testing.T) {
	db := openTest(t, Config{DSN: pgSchema(t), MaxOpenConns: 7})
	if p, s := db.Capacity(); p != 7 || s != 0 {
		t.Errorf("Capacity() = %d, %d; want 7, 0", p, s)
	}
	if p, s := openWithReplica(t).Capacity(); p != 10 || s != 10 {
		t.Errorf("with a replica: Capacity() = %d, %d; want 10, 10", p, s)
	}
	if p, s := openTest(t, Config{Path: ":memory:"}).Capacity(); p != 1 || s != 0 {
		t.Errorf("in-memory SQLite: Capacity() = %d, %d; want 1, 0", p, s)
	}
}

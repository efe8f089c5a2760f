package main

import (
	"context"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/threetier/threetier/data"
	"github.com/threetier/threetier/internal/pgtest"
)

// startStore opens the shop's store on a private PostgreSQL server with the
// migrations applied and plenty of stock.
func startStore(t *testing.T) store {
	t.Helper()
	pg := pgtest.Start(t)
	mig, err := fs.Sub(migrations, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	db, err := data.New(data.Config{DSN: pg.DSN(), MaxOpenConns: 10}, data.WithMigrations(mig))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := db.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := db.Gorm().Exec("UPDATE products SET stock = 1000000").Error; err != nil {
		t.Fatal(err)
	}
	return store{db: db}
}

// Concurrent orders of a few items each, overlapping on a small catalogue,
// are not contention a client should see: none fails, and every unit
// sold left the stock.
func TestConcurrentOrdersDoNotConflict(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a private PostgreSQL server")
	}
	s := startStore(t)
	var products []Product
	if err := s.db.Gorm().Order("id").Find(&products).Error; err != nil || len(products) < 3 {
		t.Fatalf("catalogue: %d products, %v", len(products), err)
	}
	before := 0
	for _, p := range products {
		before += p.Stock
	}

	const clients = 8
	deadline := time.Now().Add(3 * time.Second)
	var placed, failed, units atomic.Int64
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			for i := 0; time.Now().Before(deadline); i++ {
				// Two to four lines, in any order, over the catalogue's
				// first few products: orders overlap on most of their rows.
				var in []NewItem
				for range 2 + rand.IntN(3) {
					in = append(in, NewItem{ProductID: products[rand.IntN(min(len(products), 4))].ID, Quantity: 1 + rand.IntN(3)})
				}
				items, err := mergeItems(in)
				if err != nil {
					t.Error(err)
					return
				}
				key := ""
				if i%2 == 0 {
					key = fmt.Sprintf("client-%d-order-%d", c, i)
				}
				if _, _, err := s.place(context.Background(), key, items); err != nil {
					failed.Add(1)
					t.Logf("order failed: %v", err)
					continue
				}
				placed.Add(1)
				for _, it := range items {
					units.Add(int64(it.Quantity))
				}
			}
		})
	}
	wg.Wait()

	var after int
	if err := s.db.Gorm().Model(&Product{}).Select("sum(stock)").Scan(&after).Error; err != nil {
		t.Fatal(err)
	}
	if n := failed.Load(); n != 0 {
		t.Errorf("%d of %d orders failed", n, n+placed.Load())
	}
	if placed.Load() < 100 {
		t.Errorf("only %d orders placed in 3s", placed.Load())
	}
	if sold := int64(before - after); sold != units.Load() {
		t.Errorf("stock went down by %d, orders took %d", sold, units.Load())
	}
	t.Logf("%d clients: %d orders placed, %d failed", clients, placed.Load(), failed.Load())
}

package data_test

import (
	"context"
	"embed"
	"errors"
	"fmt"
	iofs "io/fs"
	"os"
	"path/filepath"

	"gorm.io/gorm"

	"github.com/threetier/threetier/data"
)

// Migrations live beside the code, one directory per dialect.
//
//go:embed testdata/migrations
var migrations embed.FS

// fs strips the embed directory prefix.
func fs(e embed.FS) (iofs.FS, error) { return iofs.Sub(e, "testdata/migrations") }

type Product struct {
	ID    int64
	Name  string
	Stock int
}

// Open the embedded SQLite database (no DSN), apply the migrations, and use
// GORM as usual; errors come back classified.
func ExampleOpen() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	ctx := context.Background()

	fsys, _ := fs(migrations)
	db, err := data.Open(ctx, data.Config{Path: filepath.Join(dir, "shop.db")}, data.WithMigrations(fsys))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer db.Close()
	if err := db.Start(ctx); err != nil { // applies pending migrations
		fmt.Println(err)
		return
	}

	g := db.WithContext(ctx)
	g.Create(&Product{Name: "widget", Stock: 3})
	err = g.Create(&Product{Name: "widget", Stock: 1}).Error
	fmt.Println(errors.Is(err, data.ErrDuplicate), data.StatusOf(err), data.IsFailure(err))

	var p Product
	err = g.First(&p, 42).Error
	fmt.Println(errors.Is(err, data.ErrNotFound), data.StatusOf(err))
	// Output:
	// true 409 false
	// true 404
}

// Tx reruns the closure when concurrent transactions conflict; a Tx opened
// with the closure's context nests under a savepoint.
func ExampleDB_Tx() {
	ctx := context.Background()
	db, done, err := migratedShop(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer done()
	db.WithContext(ctx).Create(&Product{Name: "widget", Stock: 3})

	err = db.Tx(ctx, func(tx *gorm.DB) error {
		var p Product
		if err := tx.Where("name = ?", "widget").First(&p).Error; err != nil {
			return err
		}
		if err := tx.Model(&p).Update("stock", p.Stock-1).Error; err != nil {
			return err
		}
		// A helper that takes a context joins the transaction.
		return db.Tx(tx.Statement.Context, func(tx *gorm.DB) error {
			return tx.Exec("INSERT INTO orders (product_id, qty) VALUES (?, 1)", p.ID).Error
		})
	}, data.Serializable())
	fmt.Println(err)

	var stock int
	db.WithContext(ctx).Model(&Product{}).Where("name = ?", "widget").Pluck("stock", &stock)
	fmt.Println(stock)
	// Output:
	// <nil>
	// 2
}

// Get and Insert are the typed primary-key read and single-row insert: on
// PostgreSQL they skip GORM's statement building, with GORM's results; on
// SQLite (as here) and inside a Tx they run through GORM.
func ExampleGet() {
	ctx := context.Background()
	db, done, err := migratedShop(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer done()

	p := Product{Name: "widget", Stock: 3}
	if err := data.Insert(ctx, db, &p); err != nil {
		fmt.Println(err)
		return
	}
	got, err := data.Get[Product](ctx, db, p.ID)
	fmt.Println(got.Name, got.Stock, err)

	_, err = data.Get[Product](ctx, db, 42)
	fmt.Println(data.StatusOf(err))
	// Output:
	// widget 3 <nil>
	// 404
}

// The edge turns a data error into an HTTP status, or a whole problem+json
// body; the app tier's breaker counts only IsFailure errors.
func ExampleStatusOf() {
	for _, err := range []error{data.ErrNotFound, data.ErrDuplicate, data.ErrViolation, data.ErrTimeout, data.ErrUnavailable} {
		fmt.Println(data.StatusOf(err), data.IsFailure(err), data.ProblemFor(err).Title)
	}
	// Output:
	// 404 false Not Found
	// 409 false Conflict
	// 422 false Unprocessable Entity
	// 504 true Gateway Timeout
	// 503 true Service Unavailable
}

// migratedShop opens the shop database of the examples in a temporary
// directory and applies its migrations; done closes and removes it.
func migratedShop(ctx context.Context) (db *data.DB, done func(), err error) {
	dir, err := os.MkdirTemp("", "example")
	if err != nil {
		return nil, nil, err
	}
	fsys, _ := fs(migrations)
	db, err = data.Open(ctx, data.Config{Path: filepath.Join(dir, "shop.db")}, data.WithMigrations(fsys))
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, err
	}
	done = func() {
		db.Close()
		os.RemoveAll(dir)
	}
	if _, err := db.Migrate(ctx); err != nil {
		done()
		return nil, nil, err
	}
	return db, done, nil
}

package main

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/threetier/threetier/app"
	"github.com/threetier/threetier/data"
	"github.com/threetier/threetier/tier"
)

// Product is one line of the catalogue. Price is in cents.
type Product struct {
	ID          uint64 `json:"id" gorm:"primaryKey"`
	Name        string `json:"name"`
	Description string `json:"description"`
	Price       int64  `json:"price"`
	Stock       int    `json:"stock"`
}

// Order is a placed order with its items. The idempotency key and the hash
// of the request it came with stay in the database: they are how a retry
// finds the order, not something a client reads back.
type Order struct {
	ID             uint64      `json:"id" gorm:"primaryKey"`
	IdempotencyKey *string     `json:"-"`
	RequestHash    string      `json:"-"`
	Total          int64       `json:"total"`
	CreatedAt      time.Time   `json:"created_at"`
	Items          []OrderItem `json:"items" gorm:"-"`
}

// OrderItem is one product of an order, with its name and price as they
// were when the order was placed.
type OrderItem struct {
	OrderID   uint64 `json:"-" gorm:"primaryKey;autoIncrement:false"`
	ProductID uint64 `json:"product_id" gorm:"primaryKey;autoIncrement:false"`
	Name      string `json:"name"`
	Quantity  int    `json:"quantity"`
	Price     int64  `json:"price"`
}

// NewOrder is the body of POST /api/orders.
type NewOrder struct {
	Items []NewItem `json:"items" validate:"required,min=1,max=50,dive"`
}

// NewItem is one line of a NewOrder.
type NewItem struct {
	ProductID uint64 `json:"product_id" validate:"required,min=1"`
	Quantity  int    `json:"quantity" validate:"required,min=1,max=1000"`
}

// maxQuantity is the most of one product an order takes, its lines added
// up: the max of NewItem.Quantity.
const maxQuantity = 1000

// maxKeyLen bounds an Idempotency-Key: long enough for a UUID or any
// client's own scheme, short enough for a unique index.
const maxKeyLen = 255

// store is the shop's data logic over the data tier; handlers call it
// through the app tier's guard.
type store struct{ db *data.DB }

// products lists the catalogue by id.
func (s store) products(ctx context.Context) ([]Product, error) {
	list := []Product{}
	err := s.db.WithContext(ctx).Order("id").Find(&list).Error
	return list, err
}

// product reads one product; a missing one matches data.ErrNotFound.
func (s store) product(ctx context.Context, id uint64) (*Product, error) {
	return data.Get[Product](ctx, s.db, id)
}

// order reads one order with its items.
func (s store) order(ctx context.Context, id uint64) (*Order, error) {
	var o *Order
	err := s.db.Tx(ctx, func(tx *gorm.DB) error {
		var err error
		o, err = loadOrder(tx, tx.Where("id = ?", id))
		return err
	}, data.ReadOnly())
	return o, err
}

// loadOrder reads the one order q selects, and its items.
func loadOrder(tx *gorm.DB, q *gorm.DB) (*Order, error) {
	var o Order
	if err := q.Take(&o).Error; err != nil {
		return nil, err
	}
	o.Items = []OrderItem{}
	if err := tx.Where("order_id = ?", o.ID).Order("product_id").Find(&o.Items).Error; err != nil {
		return nil, err
	}
	return &o, nil
}

// place stores an order and takes its items out of stock, in one
// transaction that locks the order's products before it reads them (see
// placeIn) and that data.Tx reruns on a deadlock or serialization
// failure: stock can never go below zero, two orders never sell the same
// last item, and concurrent orders wait for each other rather than fail.
//
// With a key, a retry of the same request (from the client, or from a
// balancer that retried it on another instance) answers the order the
// first one placed, replayed reports so, and nothing is taken twice. The
// key is stored with the order under a unique constraint, so that two
// attempts running at once on different instances cannot both place it:
// the loser of the race reads the winner's order.
func (s store) place(ctx context.Context, key string, items []NewItem) (o *Order, replayed bool, err error) {
	hash := requestHash(items)
	err = s.db.Tx(ctx, func(tx *gorm.DB) error {
		o, replayed = nil, false
		if key != "" {
			prev, err := loadOrder(tx, tx.Where("idempotency_key = ?", key))
			switch {
			case err == nil:
				o, replayed = prev, true
				return nil
			case !errors.Is(err, data.ErrNotFound):
				return err
			}
		}
		placed, err := placeIn(tx, key, hash, items)
		o = placed
		return err
	})
	if key != "" && errors.Is(err, data.ErrDuplicate) {
		// A concurrent attempt with the same key committed first.
		o, err = s.orderByKey(ctx, key)
		replayed = err == nil
	}
	if err != nil {
		return nil, false, err
	}
	if replayed && o.RequestHash != hash {
		return nil, false, tier.NewProblem(http.StatusUnprocessableEntity,
			"this Idempotency-Key was already used for an order with other items; use a new key for a new order")
	}
	return o, replayed, nil
}

func (s store) orderByKey(ctx context.Context, key string) (*Order, error) {
	var o *Order
	err := s.db.Tx(ctx, func(tx *gorm.DB) error {
		var err error
		o, err = loadOrder(tx, tx.Where("idempotency_key = ?", key))
		return err
	}, data.ReadOnly())
	return o, err
}

// placeIn checks every item against the catalogue, takes the quantities
// out of stock and writes the order, inside tx. items come from
// mergeItems: one line per product.
func placeIn(tx *gorm.DB, key, hash string, items []NewItem) (*Order, error) {
	ids := make([]uint64, 0, len(items))
	for _, it := range items {
		// An id beyond a BIGINT names no product: the database would
		// refuse the query rather than find nothing.
		if it.ProductID <= math.MaxInt64 {
			ids = append(ids, it.ProductID)
		}
	}
	// The rows are locked before they are read, in the order of their
	// ids: concurrent orders for the same products queue on the locks
	// one after the other instead of failing on each other (a
	// serializable transaction would abort the later one), and two
	// orders cannot deadlock by locking the same rows in another order.
	// SQLite takes its write lock for the whole transaction instead.
	slices.Sort(ids)
	q := tx.Where("id IN ?", ids).Order("id")
	if tx.Dialector.Name() == "postgres" {
		q = q.Clauses(clause.Locking{Strength: clause.LockingStrengthUpdate})
	}
	var found []Product
	if err := q.Find(&found).Error; err != nil {
		return nil, err
	}
	byID := make(map[uint64]Product, len(found))
	for _, p := range found {
		byID[p.ID] = p
	}
	o := &Order{RequestHash: hash, CreatedAt: time.Now().UTC().Truncate(time.Microsecond), Items: make([]OrderItem, 0, len(items))}
	if key != "" {
		o.IdempotencyKey = &key
	}
	for _, it := range items {
		p, ok := byID[it.ProductID]
		if !ok {
			return nil, tier.NewProblem(http.StatusNotFound, fmt.Sprintf("product %d does not exist", it.ProductID))
		}
		if p.Stock < it.Quantity {
			return nil, tier.NewProblem(http.StatusConflict, fmt.Sprintf("not enough stock of %q: %d asked, %d left", p.Name, it.Quantity, p.Stock))
		}
		// The condition repeats the check in the statement: stock stays
		// non-negative even if this ran outside a serializable
		// transaction, and the CHECK constraint backs it up.
		res := tx.Model(&Product{}).Where("id = ? AND stock >= ?", p.ID, it.Quantity).
			Update("stock", gorm.Expr("stock - ?", it.Quantity))
		if res.Error != nil {
			return nil, res.Error
		}
		if res.RowsAffected != 1 {
			return nil, tier.NewProblem(http.StatusConflict, fmt.Sprintf("not enough stock of %q", p.Name))
		}
		o.Items = append(o.Items, OrderItem{ProductID: p.ID, Name: p.Name, Quantity: it.Quantity, Price: p.Price})
		o.Total += p.Price * int64(it.Quantity)
	}
	if err := tx.Omit("Items").Create(o).Error; err != nil {
		return nil, err
	}
	for i := range o.Items {
		o.Items[i].OrderID = o.ID
	}
	if err := tx.Create(&o.Items).Error; err != nil {
		return nil, err
	}
	return o, nil
}

// mergeItems adds up the lines that name the same product and sorts them
// by product, so that an order is one line per product and the same
// request always hashes the same. Lines that add up to more than
// maxQuantity of a product are refused (422), each line that goes past it
// named: repeating a line does not lift the limit.
func mergeItems(in []NewItem) ([]NewItem, error) {
	qty := map[uint64]int{}
	var over []tier.FieldProblem
	for i, it := range in {
		qty[it.ProductID] += it.Quantity
		if q := qty[it.ProductID]; q > maxQuantity {
			over = append(over, tier.FieldProblem{Field: fmt.Sprintf("items[%d].quantity", i),
				Detail: fmt.Sprintf("makes %d of product %d with the lines before it; an order takes at most %d of a product", q, it.ProductID, maxQuantity)})
		}
	}
	if over != nil {
		return nil, &app.ValidationError{Fields: over}
	}
	out := make([]NewItem, 0, len(qty))
	for id, q := range qty {
		out = append(out, NewItem{ProductID: id, Quantity: q})
	}
	slices.SortFunc(out, func(a, b NewItem) int { return cmp.Compare(a.ProductID, b.ProductID) })
	return out, nil
}

// requestHash identifies what an order asked for, so that a key reused
// for a different order is refused rather than answered with the wrong
// order.
func requestHash(items []NewItem) string {
	var b strings.Builder
	for _, it := range items {
		b.WriteString(strconv.FormatUint(it.ProductID, 10))
		b.WriteByte('x')
		b.WriteString(strconv.Itoa(it.Quantity))
		b.WriteByte(';')
	}
	sum := sha256.Sum256([]byte(b.String()))
	return hex.EncodeToString(sum[:])
}

// validKey accepts the visible ASCII characters a header carries safely.
func validKey(k string) bool {
	if k == "" || len(k) > maxKeyLen {
		return false
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x21 || k[i] > 0x7e {
			return false
		}
	}
	return true
}

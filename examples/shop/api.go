package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/threetier/threetier/app"
	"github.com/threetier/threetier/data"
	"github.com/threetier/threetier/tier"
)

// Headers the API sends beside its JSON.
const (
	// headerServedBy names the app instance that answered, so that a
	// person (or a test) can see the balancing.
	headerServedBy = "X-Served-By"
	// headerReplayed marks the answer to a retried order: the order is
	// the one the first request placed (Stripe's name for it).
	headerReplayed = "Idempotent-Replayed"
	// headerIdempotencyKey is the request header that makes an order safe
	// to retry.
	headerIdempotencyKey = "Idempotency-Key"
)

// api is one app-tier instance's handlers. Every database call goes
// through the "db" guard, so a dead database trips a breaker instead of
// piling up requests.
type api struct {
	store    store
	guard    *app.Guard
	instance string
	cat      catalogue
}

// newAPI builds one app-tier instance; log names the instance. Its guard
// on the database admits as many calls as pools serve: db's pools, or its
// share of them when instances of one process share db
// (app.SharedCapacity).
func newAPI(cfg app.Config, guardCfg app.GuardConfig, db *data.DB, pools app.Capacity, instance string, log *slog.Logger, tp trace.TracerProvider, reg prometheus.Registerer) (*app.Server, error) {
	setIfZero(&cfg.Name, instance)
	srv, err := app.New(cfg,
		app.WithLogger(log),
		app.WithRegistry(reg), app.WithTracerProvider(tp))
	if err != nil {
		return nil, err
	}
	// Ready once the database answered and the migrations are applied;
	// after that, readiness does not follow the database (see README).
	srv.Health().Register("data", tier.CheckFunc(db.Started))
	guard, err := srv.Guards().Add("db", guardCfg, app.WithCapacity(pools))
	if err != nil {
		return nil, err
	}
	a := &api{store: store{db: db}, guard: guard, instance: instance}
	e := srv.Echo()
	e.Use(func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			c.Response().Header().Set(headerServedBy, instance)
			return next(c)
		}
	})
	// A shopper's next read counts the order just placed, on any
	// instance, even when it goes to a replica (THREETIER_DATA_REPLICAS).
	e.Use(app.ReadAfter())
	e.GET("/api/products", a.listProducts)
	e.GET("/api/products/:id", a.getProduct)
	e.POST("/api/orders", a.placeOrder)
	e.GET("/api/orders/:id", a.getOrder)
	return srv, nil
}

// listProducts answers GET /api/products. When the database cannot answer,
// the catalogue this instance last read is served instead, marked stale
// (Cache-Status, Age): a shop window that shows yesterday's stock beats
// one that shows an error, and orders are still checked against the real
// stock.
func (a *api) listProducts(c echo.Context) error {
	var stale time.Duration
	call := app.Call[[]Product]{Guard: a.guard, Idempotent: true, Fallback: func(_ context.Context, err error) ([]Product, error) {
		list, age, ok := a.cat.all()
		if !ok {
			return nil, err
		}
		stale = age
		return list, nil
	}}
	list, err := call.Do(c.Request().Context(), a.store.products)
	if err != nil {
		return err
	}
	if stale > 0 {
		markStale(c, stale)
	} else {
		a.cat.setAll(list)
	}
	return c.JSON(http.StatusOK, list)
}

// getProduct answers GET /api/products/:id, with the same fallback.
func (a *api) getProduct(c echo.Context) error {
	id, err := app.PathID(c, "id")
	if err != nil {
		return err
	}
	var stale time.Duration
	call := app.Call[*Product]{Guard: a.guard, Idempotent: true, Fallback: func(_ context.Context, err error) (*Product, error) {
		p, age, ok := a.cat.one(id)
		if !ok {
			return nil, err
		}
		stale = age
		return &p, nil
	}}
	p, err := call.Do(c.Request().Context(), func(ctx context.Context) (*Product, error) { return a.store.product(ctx, id) })
	if errors.Is(err, data.ErrNotFound) {
		return tier.NewProblem(http.StatusNotFound, fmt.Sprintf("product %d does not exist", id))
	}
	if err != nil {
		return err
	}
	if stale > 0 {
		markStale(c, stale)
	} else {
		a.cat.setOne(*p)
	}
	return c.JSON(http.StatusOK, p)
}

// placeOrder answers POST /api/orders: 201 with the order, or the
// order a previous request with the same Idempotency-Key placed.
func (a *api) placeOrder(c echo.Context) error {
	key := c.Request().Header.Get(headerIdempotencyKey)
	if _, sent := c.Request().Header[headerIdempotencyKey]; sent && !validKey(key) {
		return tier.NewProblem(http.StatusBadRequest, fmt.Sprintf("Idempotency-Key must be 1 to %d visible ASCII characters", maxKeyLen))
	}
	in, err := app.Bind[NewOrder](c)
	if err != nil {
		return err
	}
	items, err := mergeItems(in.Items)
	if err != nil {
		return err
	}
	type result struct {
		order    *Order
		replayed bool
	}
	// With a key the order is safe to repeat, so the guard retries it
	// and waits out a database blip; without one, a failure may have
	// placed it, and only the client can tell whether to send it again.
	// The transaction retries its own conflicts either way. The order
	// names the product rows it locks: while one of them is held (a hot
	// product), the guard lets only a few orders for it wait on the lock
	// and refuses the others at once, so that they take no connection
	// from the rest of the shop.
	place := app.Call[result]{Guard: a.guard, Idempotent: key != "", Keys: productKeys(items)}
	r, err := place.Do(c.Request().Context(), func(ctx context.Context) (result, error) {
		o, replayed, err := a.store.place(ctx, key, items)
		return result{o, replayed}, err
	})
	if err != nil {
		return err
	}
	h := c.Response().Header()
	h.Set(echo.HeaderLocation, fmt.Sprintf("/api/orders/%d", r.order.ID))
	if r.replayed {
		h.Set(headerReplayed, "true")
	}
	return c.JSON(http.StatusCreated, r.order)
}

// getOrder answers GET /api/orders/:id.
func (a *api) getOrder(c echo.Context) error {
	id, err := app.PathID(c, "id")
	if err != nil {
		return err
	}
	call := app.Call[*Order]{Guard: a.guard, Idempotent: true}
	o, err := call.Do(c.Request().Context(), func(ctx context.Context) (*Order, error) { return a.store.order(ctx, id) })
	if errors.Is(err, data.ErrNotFound) {
		return tier.NewProblem(http.StatusNotFound, fmt.Sprintf("order %d does not exist", id))
	}
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, o)
}

// productKeys names the product rows an order locks, for the guard's cap
// per key.
func productKeys(items []NewItem) []string {
	keys := make([]string, len(items))
	for i, it := range items {
		keys[i] = "product:" + strconv.FormatUint(it.ProductID, 10)
	}
	return keys
}

// markStale says, in the standard headers, that the answer is this
// instance's copy of an earlier one (RFC 9211 Cache-Status, RFC 9111 Age).
func markStale(c echo.Context, age time.Duration) {
	h := c.Response().Header()
	h.Set("Cache-Status", `shop-app; hit; detail="database unavailable"`)
	h.Set("Age", strconv.FormatInt(int64(age/time.Second), 10))
	h.Set(echo.HeaderCacheControl, "no-store")
}

// catalogue is an instance's copy of the last catalogue it read, for when
// the database cannot be asked: the whole list as last listed, and each
// product as last read, listed or on its own, so that a product read
// alone after a restart can be served stale before anyone lists them all.
type catalogue struct {
	mu   sync.Mutex
	list []Product // the order of the last list; the products are in byID
	at   time.Time // when the list was read
	byID map[uint64]readProduct
}

// readProduct is a product as read at a time.
type readProduct struct {
	Product
	at time.Time
}

func (c *catalogue) setAll(list []Product) {
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	// A list says what exists: products read alone before it and gone
	// from it are dropped.
	c.list, c.at = list, now
	c.byID = make(map[uint64]readProduct, len(list))
	for _, p := range list {
		c.byID[p.ID] = readProduct{p, now}
	}
}

func (c *catalogue) setOne(p Product) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.byID == nil {
		c.byID = make(map[uint64]readProduct)
	}
	c.byID[p.ID] = readProduct{p, time.Now()}
}

// all returns the copy and its age (never zero: a stale answer is marked
// even when it is a few milliseconds old).
func (c *catalogue) all() ([]Product, time.Duration, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.list == nil {
		return nil, 0, false
	}
	list := make([]Product, len(c.list))
	for i, p := range c.list {
		list[i] = c.byID[p.ID].Product
	}
	return list, max(time.Since(c.at), time.Nanosecond), true
}

func (c *catalogue) one(id uint64) (Product, time.Duration, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.byID[id]
	return p.Product, max(time.Since(p.at), time.Nanosecond), ok
}

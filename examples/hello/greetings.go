package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/threetier/threetier/app"
	"github.com/threetier/threetier/data"
)

// Greeting is the one table of the example.
type Greeting struct {
	ID        uint      `json:"id" gorm:"primaryKey"`
	Name      string    `json:"name" gorm:"size:64;not null"`
	CreatedAt time.Time `json:"created_at"`
}

// NewGreeting is the body of POST /api/greetings.
type NewGreeting struct {
	Name string `json:"name" validate:"required,min=1,max=64"`
}

// Hello is the body of GET /api/hello.
type Hello struct {
	Message   string `json:"message"`
	Greetings int64  `json:"greetings"`
	ServedBy  string `json:"served_by"`
}

// greetings is the business logic: every database call goes through the
// "db" guard, so a dead database trips a breaker instead of piling up
// requests. The reads serve GETs, so app.Do retries them and waits out a
// breaker that a database blip opened; the insert of a POST is made once.
type greetings struct {
	db       *data.DB
	guard    *app.Guard
	instance string
}

// newAPIs builds cfg.apps identical app-tier instances, app-1 to app-n.
// Each is ready while the database answers, and its metrics carry its
// name (server="app-1").
func newAPIs(cfg config, db *data.DB, log *slog.Logger, reg prometheus.Registerer) ([]*app.Server, error) {
	apps := make([]*app.Server, cfg.apps)
	for i := range apps {
		name := fmt.Sprintf("app-%d", i+1)
		api, err := newAPI(cfg, db, name, log.With("instance", name), prometheus.WrapRegistererWith(prometheus.Labels{"server": name}, reg))
		if err != nil {
			return nil, err
		}
		apps[i] = api
	}
	return apps, nil
}

// newAPI builds one app-tier instance, with its guard on the database.
func newAPI(cfg config, db *data.DB, instance string, log *slog.Logger, reg prometheus.Registerer) (*app.Server, error) {
	named := cfg.app
	named.Name = instance
	api, err := app.New(named, app.WithLogger(log), app.WithRegistry(reg), app.WithTracerProvider(cfg.tracer))
	if err != nil {
		return nil, err
	}
	api.Health().Register("data", db)
	// The instances share db's pools: each guard admits its share of
	// the calls they serve at once.
	guard, err := api.Guards().Add("db", cfg.guard, app.WithCapacity(app.SharedCapacity(db, cfg.apps)))
	if err != nil {
		return nil, err
	}
	g := &greetings{db: db, guard: guard, instance: instance}
	e := api.Echo()
	e.GET("/api/hello", g.hello)
	e.GET("/api/greetings", g.list)
	e.GET("/api/greetings/:id", g.get)
	e.POST("/api/greetings", app.Handle(http.StatusCreated, g.create))
	return api, nil
}

func (g *greetings) hello(c echo.Context) error {
	n, err := app.Do(c.Request().Context(), g.guard, func(ctx context.Context) (int64, error) {
		var n int64
		err := g.db.WithContext(ctx).Model(&Greeting{}).Count(&n).Error
		return n, err
	})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, Hello{Message: "hello, threetier", Greetings: n, ServedBy: g.instance})
}

func (g *greetings) list(c echo.Context) error {
	list, err := app.Do(c.Request().Context(), g.guard, func(ctx context.Context) ([]Greeting, error) {
		list := []Greeting{}
		err := g.db.WithContext(ctx).Order("id DESC").Limit(20).Find(&list).Error
		return list, err
	})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, list)
}

// get answers GET /api/greetings/:id; a missing greeting is a 404 problem
// (data.ErrNotFound answers 404 itself).
func (g *greetings) get(c echo.Context) error {
	id, err := app.PathID(c, "id")
	if err != nil {
		return err
	}
	row, err := app.Do(c.Request().Context(), g.guard, func(ctx context.Context) (*Greeting, error) {
		return data.Get[Greeting](ctx, g.db, id)
	})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, row)
}

// create stores one greeting: a single statement needs no transaction.
func (g *greetings) create(c echo.Context, in NewGreeting) (Greeting, error) {
	return app.Do(c.Request().Context(), g.guard, func(ctx context.Context) (Greeting, error) {
		row := Greeting{Name: in.Name}
		err := data.Insert(ctx, g.db, &row)
		return row, err
	})
}

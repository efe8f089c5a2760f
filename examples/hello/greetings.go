package main

import (
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

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
// requests.
type greetings struct {
	db       *data.DB
	guard    *app.Guard
	instance string
}

// newAPI builds one app-tier instance on a loopback port of its own.
func newAPI(db *data.DB, instance string, log *slog.Logger) (*app.Server, error) {
	api, err := app.New(app.Config{Listen: "127.0.0.1:0"},
		app.WithLogger(log.With("instance", instance)),
		app.WithProblems(data.ProblemOrNil))
	if err != nil {
		return nil, err
	}
	guard, err := api.Guards().Add("db", app.DefaultGuardConfig(), app.WithIsFailure(data.IsFailure))
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
		return n, data.Classify(err)
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
		return list, data.Classify(err)
	})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, list)
}

// get answers GET /api/greetings/:id; a missing greeting is a 404 problem
// (data.ErrNotFound, mapped by data.ProblemOrNil).
func (g *greetings) get(c echo.Context) error {
	id, err := strconv.ParseUint(c.Param("id"), 10, 64)
	if err != nil {
		return echo.NewHTTPError(http.StatusBadRequest, "id must be a positive integer")
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

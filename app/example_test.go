package app_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/threetier/threetier/app"
	"github.com/threetier/threetier/balancer"
	"github.com/threetier/threetier/tier"
)

type CreateUser struct {
	Name  string `json:"name" validate:"required,min=2"`
	Email string `json:"email" validate:"required,email"`
}

type User struct {
	ID   int    `json:"id"`
	Name string `json:"name"`
}

// A server with one typed route: invalid requests never reach the handler
// and get a 422 problem naming each field.
func ExampleNew() {
	srv, err := app.New(app.Config{Listen: "127.0.0.1:0"})
	if err != nil {
		fmt.Println(err)
		return
	}
	srv.Echo().POST("/users", app.Handle(http.StatusCreated, func(c echo.Context, in CreateUser) (User, error) {
		return User{ID: 1, Name: in.Name}, nil
	}))
	if err := srv.Start(context.Background()); err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Stop(context.Background())

	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	for _, body := range []string{`{"name":"Ada","email":"ada@example.com"}`, `{"name":"A","email":"nope"}`} {
		resp, err := client.Post("http://"+srv.Addr()+"/users", "application/json", strings.NewReader(body))
		if err != nil {
			fmt.Println(err)
			return
		}
		var p tier.Problem
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Println(resp.StatusCode, resp.Header.Get("Content-Type"))
		if json.Unmarshal(b, &p) == nil {
			for _, f := range p.Errors {
				fmt.Printf("  %s %s\n", f.Field, f.Detail)
			}
		}
	}
	// Output:
	// 201 application/json
	// 422 application/problem+json
	//   name must be at least 2 characters
	//   email must be an email address
}

// Calls to a dependency go through its guard; a handler returns the error
// as it is and the server answers 503 with Retry-After or 504.
func ExampleDo() {
	guards := app.NewGuards()
	users, err := guards.Add("users-db", app.GuardConfig{ConsecutiveFailures: 2, OpenFor: 10 * time.Second})
	if err != nil {
		fmt.Println(err)
		return
	}
	down := errors.New("connection refused")
	for range 3 {
		_, err := app.Do(context.Background(), users, func(ctx context.Context) (User, error) {
			return User{}, down
		})
		fmt.Println(err, "->", app.ProblemFor(err).Status)
	}
	// Output:
	// connection refused -> 500
	// connection refused -> 500
	// dependency "users-db": circuit breaker open -> 503
}

// A Call marks an operation idempotent (so it is retried) and gives it a
// fallback for when the dependency cannot answer.
func ExampleCall() {
	guards := app.NewGuards()
	prices, _ := guards.Add("prices", app.GuardConfig{Attempts: 3, Backoff: time.Millisecond})
	getPrice := app.Call[int]{
		Guard:      prices,
		Idempotent: true,
		Fallback: func(ctx context.Context, err error) (int, error) {
			return 100, nil // the list price, when live prices are out
		},
	}
	attempts := 0
	price, err := getPrice.Do(context.Background(), func(ctx context.Context) (int, error) {
		attempts++
		return 0, errors.New("prices service: 503")
	})
	fmt.Println(price, err, attempts)
	// Output:
	// 100 <nil> 3
}

// A Client calls another service: a balancer Pool over its instances, a
// guard in front.
func ExampleNewClient() {
	instance := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"id":7,"name":"Ada"}`)
	}))
	defer instance.Close()

	transport := &http.Transport{}
	defer transport.CloseIdleConnections()
	pool, err := balancer.New(balancer.Config{Name: "users", Endpoints: []string{instance.URL}}, balancer.WithTransport(transport))
	if err != nil {
		fmt.Println(err)
		return
	}
	guard, _ := app.NewGuards().Add("users", app.GuardConfig{Timeout: time.Second})
	users := app.NewClient(pool, guard)

	var u User
	err = users.JSON(context.Background(), http.MethodGet, "/users/7", nil, &u)
	fmt.Println(u.Name, err)
	// Output:
	// Ada <nil>
}

// The guards a server knows are listed on /readyz; the ones configured with
// UnreadyWhenOpen make the tier unready while their breaker is open.
func ExampleGuards() {
	guards := app.NewGuards()
	_, _ = guards.Add("db", app.GuardConfig{UnreadyWhenOpen: true})
	_, _ = guards.Add("search", app.GuardConfig{})
	srv, _ := app.New(app.Config{}, app.WithGuards(guards))

	report := srv.Health().Check(context.Background())
	fmt.Println(report.Ready, len(report.Checks))
	for _, g := range guards.Status() {
		fmt.Println(g.Name, g.State)
	}
	// Output:
	// true 2
	// db closed
	// search closed
}

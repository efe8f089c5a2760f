package balancer_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/threetier/threetier/balancer"
)

// A pool is an http.RoundTripper: a client built on it spreads its requests
// over the endpoints, retries a failed GET on another one, and stops sending
// to an endpoint that keeps failing.
func ExampleNew() {
	app1 := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "app1") }))
	defer app1.Close()
	app2 := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "app2") }))
	defer app2.Close()

	pool, err := balancer.New(balancer.Config{
		Name:      "app",
		Endpoints: []string{app1.URL, app2.URL},
		Policy:    balancer.PolicyRoundRobin,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	client := pool.Client()
	served := map[string]int{}
	for range 4 {
		resp, err := client.Get("http://app/orders") // the host is replaced by an endpoint's
		if err != nil {
			fmt.Println(err)
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		served[string(body)]++
	}
	fmt.Println(served)
	// Output:
	// map[app1:2 app2:2]
}

// Config errors name the field and say what is allowed.
func ExampleConfig_Validate() {
	_, err := balancer.New(balancer.Config{Endpoints: []string{"http://10.0.0.1:8080"}, Policy: "fastest"})
	fmt.Println(err)
	// Output:
	// Policy="fastest": unknown policy (allowed: round_robin, least_request, p2c_ewma, hash, first, random)
}

// A server in front of a pool answers 503 problem+json with Retry-After
// when no endpoint can take the request.
func ExampleWriteUnavailable() {
	pool, _ := balancer.New(balancer.Config{Endpoints: []string{"http://127.0.0.1:1"}})
	_ = pool.Drain(context.Background(), "http://127.0.0.1:1") // nothing left to send to

	front := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, r.Method, "http://app"+r.URL.Path, nil)
		resp, err := pool.RoundTrip(req)
		if errors.Is(err, balancer.ErrNoEndpoint) {
			balancer.WriteUnavailable(w, r, err)
			return
		}
		if err == nil {
			resp.Body.Close()
		}
	})
	rec := httptest.NewRecorder()
	front.ServeHTTP(rec, httptest.NewRequest("GET", "/orders", nil))
	fmt.Println(rec.Code, rec.Header().Get("Content-Type"), rec.Header().Get("Retry-After"))
	// Output:
	// 503 application/problem+json 1
}

// The hash policy keeps a user on one instance (for its caches), and moves
// as few users as possible when instances come and go.
func ExampleConfig_hash() {
	var urls []string
	for i := range 3 {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, i) }))
		defer srv.Close()
		urls = append(urls, srv.URL)
	}
	pool, err := balancer.New(balancer.Config{Endpoints: urls, Policy: balancer.PolicyHash, HashKey: "header:X-User"})
	if err != nil {
		fmt.Println(err)
		return
	}
	instanceOf := func(user string) string {
		req, _ := http.NewRequest("GET", "http://app/cart", nil)
		req.Header.Set("X-User", user)
		resp, err := pool.Client().Do(req)
		if err != nil {
			return err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	first := instanceOf("alice")
	fmt.Println(instanceOf("alice") == first, instanceOf("alice") == first)
	// Output:
	// true true
}

// Snapshot tells what each endpoint is doing, for a stats page or an
// admin API.
func ExamplePool_Snapshot() {
	pool, _ := balancer.New(balancer.Config{Endpoints: []string{"http://10.0.0.1:8080", "http://10.0.0.2:8080"}})
	_ = pool.SetWeight("http://10.0.0.2:8080", 3)
	for _, s := range pool.Snapshot() {
		fmt.Println(s.URL, s.State, s.Weight, s.InFlight)
	}
	// Output:
	// http://10.0.0.1:8080 up 1 0
	// http://10.0.0.2:8080 up 3 0
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/threetier/threetier/balancer/stats"
	"github.com/threetier/threetier/internal/leaks"
	"github.com/threetier/threetier/internal/syncbuf"
	"github.com/threetier/threetier/internal/wait"
	"github.com/threetier/threetier/tier"
)

// runMainEnv makes the test binary the shop command itself (see
// TestMain), for the tests of what the command prints and how it exits.
const runMainEnv = "SHOP_TEST_AS_COMMAND"

// testAdminListen is where every web and app server the tests start puts
// its admin listener, unless a test says otherwise: a port of its own, so
// that two roles of one test, or two tests, never meet on the default.
const testAdminListen = tier.AdminEnvPrefix + "LISTEN=127.0.0.1:0"

func TestMain(m *testing.M) {
	if os.Getenv(runMainEnv) == "1" {
		main()
		os.Exit(0)
	}
	name, value, _ := strings.Cut(testAdminListen, "=")
	if err := os.Setenv(name, value); err != nil {
		panic(err)
	}
	goleak.VerifyTestMain(m, leaks.FastHTTP()...)
}

// shop is the whole topology started through run, as `go run
// ./examples/shop` starts it, on ports of its own.
type shop struct {
	l      listening
	client *http.Client
	stop   func() error
}

func startShop(t *testing.T, args ...string) *shop {
	t.Helper()
	return startRun(t, append([]string{"-listen", "127.0.0.1:0,127.0.0.1:0", "-stats", "127.0.0.1:0", "-db", filepath.Join(t.TempDir(), "shop.db")}, args...)...)
}

// startRun runs the command with args until the test ends.
func startRun(t *testing.T, args ...string) *shop {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan listening, 1)
	done := make(chan error, 1)
	go func() { done <- run(ctx, args, io.Discard, ready) }()
	s := &shop{client: &http.Client{Timeout: 10 * time.Second}}
	select {
	case s.l = <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("shop ended before serving: %v", err)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatal("shop not ready within 30s")
	}
	var once sync.Once
	var stopErr error
	s.stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case stopErr = <-done:
			case <-time.After(30 * time.Second):
				stopErr = fmt.Errorf("shop did not stop within 30s")
			}
			s.client.CloseIdleConnections()
		})
		return stopErr
	}
	t.Cleanup(func() {
		if err := s.stop(); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	return s
}

func (s *shop) door(i int) string { return "http://" + s.l.Doors[i%len(s.l.Doors)] }

type answer struct {
	status int
	header http.Header
	body   string
}

func (a answer) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(a.body), v); err != nil {
		t.Fatalf("decode %q: %v", a.body, err)
	}
}

func do(t *testing.T, c *http.Client, method, url, body string, header ...string) answer {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: body: %v", method, url, err)
	}
	return answer{resp.StatusCode, resp.Header, string(b)}
}

// problem checks that a is an RFC 9457 problem with the status.
func problem(t *testing.T, what string, a answer, status int) tier.Problem {
	t.Helper()
	if a.status != status {
		t.Fatalf("%s: status %d, want %d: %s", what, a.status, status, a.body)
	}
	if ct := a.header.Get("Content-Type"); !strings.HasPrefix(ct, tier.ContentTypeProblem) {
		t.Fatalf("%s: Content-Type %q, want %s: %s", what, ct, tier.ContentTypeProblem, a.body)
	}
	var p tier.Problem
	a.decode(t, &p)
	if p.Status != status || p.Title == "" {
		t.Fatalf("%s: problem %+v", what, p)
	}
	// Plain words for the client: the error chain is the log's.
	if strings.Contains(p.Detail, "data: ") {
		t.Errorf("%s: the detail %q shows the error chain", what, p.Detail)
	}
	return p
}

func (s *shop) product(t *testing.T, id uint64) Product {
	t.Helper()
	a := do(t, s.client, "GET", fmt.Sprintf("%s/api/products/%d", s.door(0), id), "")
	if a.status != 200 {
		t.Fatalf("product %d: %d %s", id, a.status, a.body)
	}
	var p Product
	a.decode(t, &p)
	return p
}

func orderBody(items ...[2]int) string {
	var parts []string
	for _, it := range items {
		parts = append(parts, fmt.Sprintf(`{"product_id":%d,"quantity":%d}`, it[0], it[1]))
	}
	return `{"items":[` + strings.Join(parts, ",") + `]}`
}

// TestShopEndToEnd goes through both front doors, both web instances and
// both app instances: the storefront, every endpoint, and every error.
func TestShopEndToEnd(t *testing.T) {
	s := startShop(t)
	if len(s.l.Doors) != 2 || len(s.l.Webs) != 2 || len(s.l.Apps) != 2 || s.l.Stats == "" {
		t.Fatalf("topology: %+v", s.l)
	}

	// The storefront, from the web tier through each front door.
	for i := range 2 {
		a := do(t, s.client, "GET", s.door(i)+"/", "")
		if a.status != 200 || !strings.Contains(a.body, "<title>threetier shop</title>") || !strings.Contains(a.body, `src="/shop.js"`) {
			t.Fatalf("page through door %d: %d %.200s", i, a.status, a.body)
		}
		for _, asset := range []string{"/shop.js", "/shop.css"} {
			if a := do(t, s.client, "GET", s.door(i)+asset, ""); a.status != 200 || a.header.Get("ETag") == "" {
				t.Fatalf("%s: %d %v", asset, a.status, a.header)
			}
		}
	}

	// The catalogue, served by both app instances.
	servedBy := map[string]bool{}
	var list []Product
	for i := range 8 {
		a := do(t, s.client, "GET", s.door(i)+"/api/products", "")
		if a.status != 200 || !strings.HasPrefix(a.header.Get("Content-Type"), "application/json") {
			t.Fatalf("products: %d %s", a.status, a.body)
		}
		a.decode(t, &list)
		servedBy[a.header.Get(headerServedBy)] = true
	}
	if len(servedBy) != 2 {
		t.Errorf("catalogue served by %v, want both app instances", servedBy)
	}
	if len(list) != 8 {
		t.Fatalf("%d products, want the 8 seeded: %+v", len(list), list)
	}
	var raw []map[string]any
	do(t, s.client, "GET", s.door(0)+"/api/products", "").decode(t, &raw)
	for _, field := range []string{"id", "name", "price", "stock"} {
		if _, ok := raw[0][field]; !ok {
			t.Errorf("product without %q: %v", field, raw[0])
		}
	}
	if p := s.product(t, 1); p.ID != 1 || p.Name != list[0].Name || p.Price != list[0].Price || p.Stock != list[0].Stock {
		t.Fatalf("product 1: %+v, list says %+v", p, list[0])
	}
	problem(t, "unknown product", do(t, s.client, "GET", s.door(0)+"/api/products/999", ""), 404)
	problem(t, "product id not a number", do(t, s.client, "GET", s.door(0)+"/api/products/abc", ""), 400)
	problem(t, "product id zero", do(t, s.client, "GET", s.door(0)+"/api/products/0", ""), 400)

	// An order: 201 with its id, items, total and Location; readable back.
	before1, before2 := s.product(t, 1), s.product(t, 2)
	a := do(t, s.client, "POST", s.door(0)+"/api/orders", orderBody([2]int{1, 2}, [2]int{2, 1}))
	if a.status != http.StatusCreated {
		t.Fatalf("order: %d %s", a.status, a.body)
	}
	var o Order
	a.decode(t, &o)
	if o.ID == 0 || len(o.Items) != 2 || o.Total != 2*before1.Price+before2.Price || o.CreatedAt.IsZero() {
		t.Fatalf("order: %+v", o)
	}
	if loc := a.header.Get("Location"); loc != fmt.Sprintf("/api/orders/%d", o.ID) {
		t.Errorf("Location %q", loc)
	}
	if a.header.Get(headerReplayed) != "" {
		t.Errorf("a first order is marked replayed")
	}
	var got Order
	a = do(t, s.client, "GET", fmt.Sprintf("%s/api/orders/%d", s.door(1), o.ID), "")
	if a.status != 200 {
		t.Fatalf("get order: %d %s", a.status, a.body)
	}
	a.decode(t, &got)
	if got.ID != o.ID || got.Total != o.Total || len(got.Items) != 2 || got.Items[0] != o.Items[0] || got.Items[1] != o.Items[1] || !got.CreatedAt.Equal(o.CreatedAt) {
		t.Fatalf("order read back: %+v, placed %+v", got, o)
	}
	if p := s.product(t, 1); p.Stock != before1.Stock-2 {
		t.Errorf("stock of 1: %d, want %d", p.Stock, before1.Stock-2)
	}
	problem(t, "unknown order", do(t, s.client, "GET", s.door(0)+"/api/orders/999999", ""), 404)
	problem(t, "order id not a number", do(t, s.client, "GET", s.door(0)+"/api/orders/x", ""), 400)

	// Lines naming the same product are one line.
	a = do(t, s.client, "POST", s.door(1)+"/api/orders", orderBody([2]int{4, 1}, [2]int{4, 2}))
	a.decode(t, &o)
	if a.status != 201 || len(o.Items) != 1 || o.Items[0].Quantity != 3 {
		t.Fatalf("merged lines: %d %s", a.status, a.body)
	}

	// Every refusal is a problem and changes nothing.
	scarce := s.product(t, 8)
	for _, c := range []struct {
		what, body, key string
		status          int
	}{
		{"malformed JSON", `{"items":`, "", 400},
		{"not an object", `[1,2]`, "", 400},
		{"trailing data", `{"items":[{"product_id":1,"quantity":1}]} {}`, "", 400},
		{"unknown product", orderBody([2]int{8, 1}, [2]int{999, 1}), "", 404},
		{"not enough stock", orderBody([2]int{1, 1}, [2]int{8, scarce.Stock + 1}), "", 409},
		{"no items", `{"items":[]}`, "", 422},
		{"no body", ``, "", 422},
		{"zero quantity", orderBody([2]int{8, 0}), "", 422},
		{"negative quantity", orderBody([2]int{8, -1}), "", 422},
		{"missing product id", `{"items":[{"quantity":1}]}`, "", 422},
		{"quantity not a number", `{"items":[{"product_id":8,"quantity":"2"}]}`, "", 422},
		{"key too long", orderBody([2]int{8, 1}), strings.Repeat("k", maxKeyLen+1), 400},
		{"key with a space", orderBody([2]int{8, 1}), "a b", 400},
	} {
		var h []string
		if c.key != "" {
			h = []string{headerIdempotencyKey, c.key}
		}
		p := problem(t, c.what, do(t, s.client, "POST", s.door(0)+"/api/orders", c.body, h...), c.status)
		if c.status == 422 && c.what != "no items" && c.what != "no body" && len(p.Errors) == 0 {
			t.Errorf("%s: 422 without the invalid fields: %+v", c.what, p)
		}
	}
	if p := s.product(t, 8); p.Stock != scarce.Stock {
		t.Fatalf("refused orders changed the stock of 8: %d, was %d", p.Stock, scarce.Stock)
	}
	if p := s.product(t, 1); p.Stock != before1.Stock-2 {
		t.Fatalf("a refused order changed the stock of 1: %d", p.Stock)
	}
	a = do(t, s.client, "POST", s.door(0)+"/api/orders", orderBody([2]int{1, 1}), "Content-Type", "text/plain")
	problem(t, "body not JSON", a, 415)

	// Unknown API routes are the app tier's 404 problem, not the
	// storefront: as a page for a browser.
	problem(t, "unknown route", do(t, s.client, "GET", s.door(0)+"/api/nope", ""), 404)
	if a := do(t, s.client, "GET", s.door(0)+"/api/nope", "", "Accept", "text/html"); a.status != 404 || !strings.Contains(a.body, "<h1>404 Not Found</h1>") || a.header.Get(headerServedBy) == "" {
		t.Errorf("unknown route, to a browser: %d %s %.300s", a.status, a.header, a.body)
	}

	// The metrics are not the clients' business: the front doors pass
	// /metrics on to the web tier, which serves none; the admin listener
	// serves every instance's, by name.
	for i := range 2 {
		if a := do(t, s.client, "GET", s.door(i)+"/metrics", ""); a.status != 404 || strings.Contains(a.body, "threetier_") {
			t.Errorf("door %d /metrics: %d %.300s", i, a.status, a.body)
		}
	}
	metrics := do(t, s.client, "GET", "http://"+s.l.Stats+"/metrics", "")
	for _, want := range []string{"threetier_web_requests_total{", "threetier_app_requests_total{", "threetier_balancer_", "threetier_data_",
		`server="web-1"`, `server="web-2"`, `server="app-1"`, `server="app-2"`, `server="door-1"`, `server="door-2"`} {
		if metrics.status != 200 || !strings.Contains(metrics.body, want) {
			t.Errorf("stats /metrics (%d) lacks %s", metrics.status, want)
		}
	}

	// Probes: the front doors answer for themselves, the admin listener
	// too, with the cluster view.
	for i := range 2 {
		for _, path := range []string{"/healthz", "/readyz"} {
			if a := do(t, s.client, "GET", s.door(i)+path, ""); a.status != 200 {
				t.Errorf("door %d %s: %d %s", i, path, a.status, a.body)
			}
		}
	}
	if a := do(t, s.client, "GET", "http://"+s.l.Stats+"/readyz", ""); a.status != 200 || !strings.Contains(a.body, `"cluster"`) {
		t.Errorf("stats /readyz: %d %s", a.status, a.body)
	}
	var rep stats.Report
	do(t, s.client, "GET", "http://"+s.l.Stats+"/api/status", "").decode(t, &rep)
	if len(rep.Pools) != 1 || len(rep.Pools[0].Endpoints) != 2 || rep.Node != "door-1" {
		t.Errorf("stats: %+v", rep)
	}
	if a := do(t, s.client, "GET", "http://"+s.l.Stats+"/", ""); a.status != 200 || !strings.Contains(a.body, "<html") {
		t.Errorf("stats page: %d", a.status)
	}
}

// TestShopIDsAndLimits: ids beyond a BIGINT name nothing (404), malformed
// ones are a 400; the per-product limit holds however the lines are split;
// every invalid line is named by its index, with the same words for 0 and
// -1.
func TestShopIDsAndLimits(t *testing.T) {
	s := startShop(t)
	for path, status := range map[string]int{
		"/api/orders/9223372036854775808":    404,
		"/api/orders/18446744073709551615":   404,
		"/api/products/9223372036854775808":  404,
		"/api/products/99999999999999999999": 404,
		"/api/orders/-1":                     400,
		"/api/products/1e3":                  400,
	} {
		p := problem(t, path, do(t, s.client, "GET", s.door(0)+path, ""), status)
		if status == 400 && !strings.Contains(p.Detail, "must be a positive integer") {
			t.Errorf("%s: detail %q", path, p.Detail)
		}
	}
	p := problem(t, "product beyond int64", do(t, s.client, "POST", s.door(0)+"/api/orders",
		`{"items":[{"product_id":1,"quantity":1},{"product_id":9223372036854775808,"quantity":1}]}`), 404)
	if p.Detail != "product 9223372036854775808 does not exist" {
		t.Errorf("product beyond int64: %q", p.Detail)
	}

	before := s.product(t, 1)
	fields := func(p tier.Problem) map[string]string {
		m := map[string]string{}
		for _, f := range p.Errors {
			m[f.Field] = f.Detail
		}
		return m
	}
	p = problem(t, "a product past the limit in two lines", do(t, s.client, "POST", s.door(0)+"/api/orders",
		orderBody([2]int{1, 600}, [2]int{2, 1}, [2]int{1, 401})), 422)
	if got := fields(p); len(got) != 1 || !strings.Contains(got["items[2].quantity"], "at most 1000") {
		t.Errorf("merged lines past the limit: %+v", p)
	}
	if p := s.product(t, 1); p.Stock != before.Stock {
		t.Errorf("a refused order took stock: %d, was %d", p.Stock, before.Stock)
	}
	p = problem(t, "zero and negative quantities", do(t, s.client, "POST", s.door(0)+"/api/orders",
		orderBody([2]int{1, 1}, [2]int{2, 0}, [2]int{3, -1}, [2]int{0, 1})), 422)
	want := map[string]string{"items[1].quantity": "must be at least 1", "items[2].quantity": "must be at least 1", "items[3].product_id": "must be at least 1"}
	if got := fields(p); !maps.Equal(got, want) {
		t.Errorf("invalid lines: %v, want %v", got, want)
	}
	p = problem(t, "a quantity of the wrong type", do(t, s.client, "POST", s.door(0)+"/api/orders",
		`{"items":[{"product_id":1,"quantity":1},{"product_id":2,"quantity":"2"}]}`), 422)
	if got := fields(p); len(got) != 1 || got["items[1].quantity"] == "" {
		t.Errorf("wrong type: %+v", p)
	}
	p = problem(t, "no items", do(t, s.client, "POST", s.door(0)+"/api/orders", `{"items":[]}`), 422)
	if got := fields(p); got["items"] != "must be at least 1 item" {
		t.Errorf("no items: %+v", p)
	}
}

// TestShopIdempotency: a retried order, on any instance, answers the first
// order and takes the stock once; concurrent attempts with one key place
// one order.
func TestShopIdempotency(t *testing.T) {
	s := startShop(t)
	before := s.product(t, 5).Stock

	body := orderBody([2]int{5, 2})
	var first Order
	a := do(t, s.client, "POST", s.door(0)+"/api/orders", body, headerIdempotencyKey, "order-1")
	if a.status != 201 {
		t.Fatalf("first: %d %s", a.status, a.body)
	}
	a.decode(t, &first)
	servedBy := map[string]bool{a.header.Get(headerServedBy): true}
	for i := range 4 {
		a := do(t, s.client, "POST", s.door(i)+"/api/orders", body, headerIdempotencyKey, "order-1")
		var again Order
		a.decode(t, &again)
		if a.status != 201 || again.ID != first.ID || a.header.Get(headerReplayed) != "true" || !again.CreatedAt.Equal(first.CreatedAt) {
			t.Fatalf("retry %d: %d %s, first was %+v", i, a.status, a.body, first)
		}
		servedBy[a.header.Get(headerServedBy)] = true
	}
	if len(servedBy) != 2 {
		t.Errorf("retries answered by %v only", servedBy)
	}
	if got := s.product(t, 5).Stock; got != before-2 {
		t.Fatalf("stock %d after one order and retries, want %d", got, before-2)
	}

	// The key is the order's: another body with it is refused.
	problem(t, "key reused for another order", do(t, s.client, "POST", s.door(1)+"/api/orders", orderBody([2]int{5, 3}), headerIdempotencyKey, "order-1"), 422)

	// Concurrent attempts with one key, through both doors.
	const n = 12
	ids := make([]uint64, n)
	statuses := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			req, _ := http.NewRequest("POST", s.door(i)+"/api/orders", strings.NewReader(orderBody([2]int{5, 1})))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set(headerIdempotencyKey, "order-2")
			resp, err := s.client.Do(req)
			if err != nil {
				return
			}
			defer resp.Body.Close()
			var o Order
			_ = json.NewDecoder(resp.Body).Decode(&o)
			ids[i], statuses[i] = o.ID, resp.StatusCode
		})
	}
	wg.Wait()
	for i := range n {
		if statuses[i] != 201 || ids[i] == 0 || ids[i] != ids[0] {
			t.Fatalf("concurrent same-key orders: statuses %v, ids %v", statuses, ids)
		}
	}
	if got := s.product(t, 5).Stock; got != before-3 {
		t.Fatalf("stock %d after %d concurrent same-key orders, want %d", got, n, before-3)
	}
}

// TestShopStockNeverNegative sends more concurrent orders than there is
// stock: exactly the stock is sold, the rest get 409, none gets a 5xx.
func TestShopStockNeverNegative(t *testing.T) {
	s := startShop(t)
	const id = 8 // the scarce one
	stock := s.product(t, id).Stock
	const n = 16
	statuses := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			req, _ := http.NewRequest("POST", s.door(i)+"/api/orders", strings.NewReader(orderBody([2]int{id, 1}, [2]int{1, 1})))
			req.Header.Set("Content-Type", "application/json")
			resp, err := s.client.Do(req)
			if err != nil {
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			statuses[i] = resp.StatusCode
		})
	}
	wg.Wait()
	sold := 0
	for _, st := range statuses {
		switch st {
		case 201:
			sold++
		case 409:
		default:
			t.Fatalf("statuses %v: want only 201 and 409", statuses)
		}
	}
	if sold != stock {
		t.Fatalf("%d orders placed for a stock of %d (statuses %v)", sold, stock, statuses)
	}
	if got := s.product(t, id).Stock; got != 0 {
		t.Fatalf("stock %d, want 0", got)
	}
}

// TestShopStopsGracefully: Ctrl-C (the context) stops every tier, in
// flight requests finish, and every port is closed after.
func TestShopStopsGracefully(t *testing.T) {
	s := startShop(t)
	// A keep-alive connection is open on each door when the stop comes.
	for i := range 2 {
		if a := do(t, s.client, "GET", s.door(i)+"/api/products", ""); a.status != 200 {
			t.Fatal(a.status)
		}
	}
	start := time.Now()
	if err := s.stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("stop took %s", d)
	}
	addrs := append(append(append([]string{s.l.Stats}, s.l.Doors...), s.l.Webs...), s.l.Apps...)
	for _, addr := range addrs {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			t.Errorf("%s still accepts connections after the stop", addr)
		}
	}
}

// TestShopRoles runs one process of each role in this test's process,
// wired by flags as a deployment wires them: app, web, then a front door.
func TestShopRoles(t *testing.T) {
	start := roleStarter(t)
	db := filepath.Join(t.TempDir(), "shop.db")
	ap := start("-role", "app", "-listen", "127.0.0.1:0", "-db", db, "-name", "app-a", "-admin", "127.0.0.1:0")
	wb := start("-role", "web", "-listen", "127.0.0.1:0", "-backends", "http://"+ap.Apps[0], "-admin", "127.0.0.1:0")
	lb := start("-role", "balancer", "-listen", "127.0.0.1:0", "-backends", "http://"+wb.Webs[0], "-stats", "127.0.0.1:0")
	c := &http.Client{Timeout: 10 * time.Second}
	defer c.CloseIdleConnections()
	a := do(t, c, "GET", "http://"+lb.Doors[0]+"/api/products", "")
	if a.status != 200 || a.header.Get(headerServedBy) != "app-a" {
		t.Fatalf("through the roles: %d %v %s", a.status, a.header, a.body)
	}
	for _, u := range []string{"http://" + lb.Doors[0] + "/readyz", "http://" + lb.Stats + "/readyz", "http://" + wb.Webs[0] + "/readyz", "http://" + ap.Apps[0] + "/readyz",
		"http://" + wb.Admin + "/readyz", "http://" + ap.Admin + "/readyz"} {
		if a := do(t, c, "GET", u, ""); a.status != 200 {
			t.Errorf("%s: %d %s", u, a.status, a.body)
		}
	}
	// Each role's metrics are on its admin listener, none on its public
	// port.
	for _, r := range []struct{ public, admin, want string }{
		{lb.Doors[0], lb.Stats, "threetier_balancer_"},
		{wb.Webs[0], wb.Admin, "threetier_web_requests_total"},
		{ap.Apps[0], ap.Admin, `threetier_app_requests_total{code="200",method="GET",route="/api/products"}`},
	} {
		if a := do(t, c, "GET", "http://"+r.public+"/metrics", ""); a.status != 404 || strings.Contains(a.body, "threetier_") {
			t.Errorf("public %s/metrics: %d %.300s", r.public, a.status, a.body)
		}
		if a := do(t, c, "GET", "http://"+r.admin+"/metrics", ""); a.status != 200 || !strings.Contains(a.body, r.want) {
			t.Errorf("admin %s/metrics lacks %s: %d", r.admin, r.want, a.status)
		}
	}
}

func TestShopRejectsBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-role", "db"},
		{"extra"},
		{"-listen", "127.0.0.1:0"},         // -role all runs two doors
		{"-role", "balancer"},              // no backends
		{"-role", "web", "-db", "x.db"},    // -db is the app's
		{"-role", "app", "-backends", "x"}, // the app has no next tier
		{"-role", "balancer", "-backends", "http://127.0.0.1:1", "-cluster-key", "k"},
		{"-role", "balancer", "-backends", "http://127.0.0.1:1", "-peers", "127.0.0.1:7946"}, // no key
		{"-role", "web", "-backends", "ftp://x"},
		{"-role", "balancer", "-backends", "http://127.0.0.1:1", "-admin", "127.0.0.1:0"}, // -stats is the door's
		{"-role", "web", "-backends", "http://127.0.0.1:1", "-admin", "nowhere"},
	} {
		var stderr bytes.Buffer
		if err := run(context.Background(), args, &stderr, nil); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
}

// The front doors log every request unless -access-log=false says
// otherwise.
func TestShopDoorAccessLogOnByDefault(t *testing.T) {
	for _, c := range []struct {
		args []string
		on   bool
	}{
		{nil, true},
		{[]string{"-access-log=false"}, false},
		{[]string{"-access-log"}, true},
	} {
		f, err := parseFlags(append([]string{"-role", "balancer"}, c.args...), nil, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if f.accessLog != c.on {
			t.Errorf("%v: access log %v, want %v", c.args, f.accessLog, c.on)
		}
	}
}

func TestShopSaysADurationNeedsAUnit(t *testing.T) {
	_, err := parseFlags([]string{"-drain-delay", "5"}, nil, io.Discard)
	want := `invalid value "5" for flag -drain-delay: a duration needs a unit: 5s, 5ms or 5m`
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v, want %s", err, want)
	}
}

func TestShopRejectsAMisspeltVariable(t *testing.T) {
	environ := []string{"THREETIER_APP_GUARD_DB_TIMEOUT=1s", "THREETIER_WEB_LISTEN=127.0.0.1:0", "THREETIER_WEB_LISTNE=127.0.0.1:0"}
	_, err := parseFlags([]string{"-role", "web"}, environ, io.Discard)
	want := "THREETIER_WEB_LISTNE: unknown variable; did you mean THREETIER_WEB_LISTEN?"
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v, want %s", err, want)
	}
}

// The data tier's settings are validated once merged: a primary given by
// -db or DATABASE_URL serves THREETIER_DATA_REPLICAS, and -db naming an
// SQLite file cannot.
func TestShopMergesTheDatabaseFlagWithTheVariables(t *testing.T) {
	replicas := "THREETIER_DATA_REPLICAS=postgres://postgres@127.0.0.1:1/shop?sslmode=disable"
	for _, c := range []struct {
		args    []string
		environ []string
		want    string // "" for no error
	}{
		{[]string{"-role", "app", "-db", "postgres://postgres@127.0.0.1:1/shop?sslmode=disable"}, []string{replicas}, ""},
		{[]string{"-role", "app"}, []string{replicas, "DATABASE_URL=postgres://postgres@127.0.0.1:1/shop?sslmode=disable"}, ""},
		{[]string{"-role", "app", "-db", filepath.Join(t.TempDir(), "x.db")}, []string{replicas, "THREETIER_DATA_DSN=postgres://postgres@127.0.0.1:1/shop"}, "replicas need a PostgreSQL primary DSN"},
	} {
		f, err := parseFlags(c.args, c.environ, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		db, err := openDB(f, nil, nil, prometheus.NewRegistry())
		if err == nil {
			_ = db.Close()
		}
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%v with %v: %v, want %q", c.args, c.environ, err, c.want)
		}
	}
}

// In one process, every instance has a name of its own: the lifecycle
// lines name the instance of each tier (its pool, its cluster node), and
// each access line names its instance.
func TestOneProcessNamesEachTier(t *testing.T) {
	t.Setenv("THREETIER_LOG_FORMAT", "json")
	var logs syncbuf.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan listening, 1)
	done := make(chan error, 1)
	args := []string{"-listen", "127.0.0.1:0,127.0.0.1:0", "-stats", "127.0.0.1:0", "-db", filepath.Join(t.TempDir(), "shop.db")}
	go func() { done <- run(ctx, args, &logs, ready) }()
	var l listening
	select {
	case l = <-ready:
	case err := <-done:
		t.Fatalf("shop ended before serving: %v", err)
	}
	c := &http.Client{Timeout: 10 * time.Second}
	defer c.CloseIdleConnections()
	wait.For(t, 20*time.Second, "the catalogue through a door", func() bool {
		resp, err := c.Get("http://" + l.Doors[0] + "/api/products")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	stopping := map[string]int{}
	for line := range strings.SplitSeq(strings.TrimSpace(logs.String()), "\n") {
		var rec struct{ Msg, Tier, Instance string }
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			continue // the announcement for people
		}
		switch {
		case rec.Msg == "tier stopping":
			stopping[rec.Tier]++
		case rec.Msg == "access" && rec.Instance == "":
			t.Errorf("an access line names no instance: %s", line)
		}
	}
	// No tier goes by a name that several instances share ("web",
	// "app", "cluster"): each names its instance.
	for name := range stopping {
		switch name {
		case "web", "app", "cluster", "balancer":
			t.Errorf("a tier called %q stops: %v", name, stopping)
		}
	}
	for _, instance := range []string{"app-1", "app-2", "web-1", "web-2", "door-1", "door-2"} {
		named := 0
		for name, n := range stopping {
			if strings.Contains(name, instance) {
				named += n
			}
		}
		if named < 1 || strings.HasPrefix(instance, "web") && named < 2 || strings.HasPrefix(instance, "door") && named < 3 {
			t.Errorf("%d lifecycle lines name %s: %v", named, instance, stopping)
		}
	}
}

// roleStarter returns a func that runs the shop with args in this test's
// process, as a one-role process, and returns once it listens; every
// process it started is stopped, and waited for, when the test ends.
func roleStarter(t *testing.T) func(args ...string) listening {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
	return func(args ...string) listening {
		t.Helper()
		ready, done := make(chan listening, 1), make(chan error, 1)
		wg.Go(func() { done <- run(ctx, args, io.Discard, ready) })
		select {
		case l := <-ready:
			wg.Go(func() {
				if err := <-done; err != nil {
					t.Errorf("%v: %v", args, err)
				}
			})
			return l
		case err := <-done:
			t.Fatalf("%v: %v", args, err)
		case <-time.After(30 * time.Second):
			t.Fatalf("%v: not ready within 30s", args)
		}
		return listening{}
	}
}

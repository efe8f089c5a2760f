//go:build unix

package main

import (
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"strings"
	"testing"
	"time"

	"github.com/threetier/threetier/internal/pgtest"
	"github.com/threetier/threetier/internal/wait"
	"github.com/threetier/threetier/tier"
)

// TestShopOnAStandby runs the shop split by role, a front door, a web
// server and two app servers, over a private primary and a real streaming
// standby replaying a second behind. A client that keeps cookies places an
// order and at once reads the product's stock through the front door, 20
// times: the read counts the order every time, on either app server. An
// API client that sends the position back by header counts it too, and a
// client that sends neither reads from the standby and misses it.
func TestShopOnAStandby(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a private PostgreSQL primary and standby")
	}
	primary := pgtest.Start(t)
	standby := primary.Standby(0)
	t.Setenv("THREETIER_LOG_LEVEL", "error")
	t.Setenv("THREETIER_DATA_REPLICAS", standby.DSN())
	t.Setenv("THREETIER_DATA_REPLICA_POLL_INTERVAL", "20ms")
	var apps []string
	for i := range 2 {
		ap := startRun(t, "-role", "app", "-listen", "127.0.0.1:0", "-db", primary.DSN(), "-name", fmt.Sprintf("app-%d", i+1))
		apps = append(apps, "http://"+ap.l.Apps[0])
	}
	wb := startRun(t, "-role", "web", "-listen", "127.0.0.1:0", "-backends", strings.Join(apps, ","))
	lb := startRun(t, "-role", "balancer", "-listen", "127.0.0.1:0", "-backends", "http://"+wb.l.Webs[0], "-stats", "127.0.0.1:0")
	door := lb.door(0)

	plain := &http.Client{Timeout: 10 * time.Second}
	defer plain.CloseIdleConnections()
	// The product with the most stock, once the standby has replayed the
	// migrations; then it falls a second behind.
	var id uint64
	var stock int
	wait.For(t, 30*time.Second, "the catalogue through the front door", func() bool {
		a := do(t, plain, "GET", door+"/api/products", "")
		var list []Product
		if a.status != http.StatusOK {
			return false
		}
		a.decode(t, &list)
		for _, p := range list {
			if p.Stock > stock {
				id, stock = p.ID, p.Stock
			}
		}
		return id != 0
	})
	standby.SetApplyDelay(time.Second)
	// readStock reads the product's stock through the front door.
	readStock := func(c *http.Client, header ...string) (answer, int) {
		t.Helper()
		a := do(t, c, "GET", fmt.Sprintf("%s/api/products/%d", door, id), "", header...)
		if a.status != http.StatusOK {
			t.Fatalf("product %d: %d %s", id, a.status, a.body)
		}
		var p Product
		a.decode(t, &p)
		return a, p.Stock
	}

	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	shopper := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	defer shopper.CloseIdleConnections()
	const orders = 20
	counted, byHeader, stale, crossed := 0, 0, 0, 0
	for i := range orders {
		a := do(t, shopper, "POST", door+"/api/orders", orderBody([2]int{int(id), 1}))
		if a.status != http.StatusCreated {
			t.Fatalf("order %d: %d %s", i, a.status, a.body)
		}
		stock--
		pos := a.header.Get(tier.ReadAfterHeader)
		if i == 0 {
			checkPassedThrough(t, a.header, pos)
		}
		r, got := readStock(shopper)
		if got == stock {
			counted++
		}
		if r.header.Get(headerServedBy) != a.header.Get(headerServedBy) {
			crossed++
		}
		if _, got := readStock(plain, tier.ReadAfterHeader, pos); got == stock {
			byHeader++
		}
		if _, got := readStock(plain); got > stock {
			stale++
		}
	}
	if counted != orders {
		t.Errorf("the stock read right after an order counted it %d of %d times for a client that keeps cookies", counted, orders)
	}
	if byHeader != orders {
		t.Errorf("the stock read right after an order counted it %d of %d times for a client that sends %s back", byHeader, orders, tier.ReadAfterHeader)
	}
	if stale == 0 {
		t.Errorf("a read without a position never missed the order just placed: the standby a second behind served no read")
	}
	if crossed == 0 {
		t.Errorf("every read was served by the app server of the order before it; want the other one too")
	}
	t.Logf("%d of %d reads without a position missed the order just placed; %d of %d reads with the cookie went to the other app server", stale, orders, crossed, orders)
}

// checkPassedThrough asserts that an order's answer, through the front
// door and the web server, carries the app server's position as it set
// it: the header, exposed to scripts of other origins, and the cookie
// with all its attributes.
func checkPassedThrough(t *testing.T, h http.Header, pos string) {
	t.Helper()
	if _, err := tier.ParsePosition(pos); err != nil {
		t.Errorf("the order's answer: %s %q: %v", tier.ReadAfterHeader, pos, err)
	}
	if got := h.Values("Access-Control-Expose-Headers"); len(got) != 1 || got[0] != tier.ReadAfterHeader {
		t.Errorf("Access-Control-Expose-Headers %q, want %s", got, tier.ReadAfterHeader)
	}
	c := h.Values("Set-Cookie")
	if len(c) != 1 {
		t.Errorf("Set-Cookie %q, want the position's cookie alone", c)
		return
	}
	for _, attr := range []string{tier.ReadAfterCookie + "=" + pos + ";", "Path=/", "Max-Age=60", "HttpOnly", "SameSite=Lax"} {
		if !strings.Contains(c[0], attr) {
			t.Errorf("Set-Cookie %q lacks %s", c[0], attr)
		}
	}
}

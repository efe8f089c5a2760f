package app

import (
	"context"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"gorm.io/gorm"

	"github.com/threetier/threetier/data"
	"github.com/threetier/threetier/internal/pgtest"
	"github.com/threetier/threetier/internal/readafter"
	"github.com/threetier/threetier/internal/wait"
	"github.com/threetier/threetier/tier"
)

// item is the table of the read-after tests: a stock that buying lowers.
type item struct {
	ID    int64
	Stock int
}

// newShopInstance is one app instance over the data tier of cfg, with
// ReadAfter on: POST /buy/:id lowers an item's stock in a transaction,
// GET /items/:id reads it, GET /standby says whether a standby answered.
func newShopInstance(t *testing.T, cfg data.Config) string {
	t.Helper()
	ctx := context.Background()
	db, err := data.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	s := newTestServer(t, Config{})
	e := s.Echo()
	e.Use(ReadAfter())
	e.POST("/buy/:id", func(c echo.Context) error {
		return db.Tx(c.Request().Context(), func(tx *gorm.DB) error {
			return tx.Model(&item{}).Where("id = ?", c.Param("id")).Update("stock", gorm.Expr("stock - 1")).Error
		})
	})
	e.GET("/items/:id", func(c echo.Context) error {
		it, err := data.Get[item](c.Request().Context(), db, c.Param("id"))
		if err != nil {
			return err
		}
		return c.String(http.StatusOK, strconv.Itoa(it.Stock))
	})
	e.GET("/standby", func(c echo.Context) error {
		var recovering bool
		if err := db.WithContext(c.Request().Context()).Raw("SELECT pg_is_in_recovery()").Scan(&recovering).Error; err != nil {
			return err
		}
		return c.String(http.StatusOK, strconv.FormatBool(recovering))
	})
	return startServer(t, s)
}

// A purchase on one app instance is counted by the very next read, on
// the other instance, with the standby a second behind: 100 of 100, for a
// client that keeps cookies and for one that sends the header back. A
// read without a position is served by the standby.
func TestReadAfterAcrossInstances(t *testing.T) {
	primary := pgtest.Start(t)
	standby := primary.Standby(0)
	ctx := context.Background()
	cfg := data.Config{DSN: primary.DSN(), Replicas: []string{standby.DSN()}, Replica: data.ReplicaConfig{PollInterval: 20 * time.Millisecond}}
	setup, err := data.Open(ctx, data.Config{DSN: primary.DSN()})
	if err != nil {
		t.Fatal(err)
	}
	defer setup.Close()
	it := item{Stock: 1000}
	if err := setup.AutoMigrate(ctx, &item{}); err != nil {
		t.Fatal(err)
	}
	if err := setup.WithContext(ctx).Create(&it).Error; err != nil {
		t.Fatal(err)
	}
	servers := []string{newShopInstance(t, cfg), newShopInstance(t, cfg)}
	client := testClient(t)
	wait.For(t, 20*time.Second, "the standby to serve reads of the item", func() bool {
		x := do(t, client, "GET", servers[0]+"/items/"+strconv.FormatInt(it.ID, 10), "", nil)
		return x.status == http.StatusOK && string(x.body) == "1000"
	})
	standby.SetApplyDelay(time.Second)

	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	browser := &http.Client{Transport: client.Transport, Jar: jar, Timeout: 30 * time.Second}
	path := "/items/" + strconv.FormatInt(it.ID, 10)
	want, counted := it.Stock, 0
	for i := range 100 {
		a, b := servers[i%2], servers[(i+1)%2]
		var read exchange
		if i%4 < 2 { // a browser, by cookie
			x := do(t, browser, "POST", a+"/buy/"+strconv.FormatInt(it.ID, 10), "", nil)
			if x.status != http.StatusOK {
				t.Fatalf("buy: %d %s", x.status, x.body)
			}
			if i == 0 {
				checkReadAfterCookie(t, x.header)
			}
			read = do(t, browser, "GET", b+path, "", nil)
		} else { // an API client, by header
			x := do(t, client, "POST", a+"/buy/"+strconv.FormatInt(it.ID, 10), "", nil)
			pos := x.header.Get(tier.ReadAfterHeader)
			if _, err := tier.ParsePosition(pos); err != nil {
				t.Fatalf("buy answered %s: %q, %v", tier.ReadAfterHeader, pos, err)
			}
			read = do(t, client, "GET", b+path, "", nil, tier.ReadAfterHeader, pos)
		}
		want--
		if read.status == http.StatusOK && string(read.body) == strconv.Itoa(want) {
			counted++
		}
		if x := do(t, client, "GET", b+"/standby", "", nil); string(x.body) != "true" {
			t.Errorf("a read without a position answered pg_is_in_recovery() %s, want true (the standby)", x.body)
		}
	}
	if counted != 100 {
		t.Errorf("the read right after a purchase counted it %d of 100 times", counted)
	}

	// A position that does not parse is a 400 problem that clears the cookie.
	x := do(t, client, "GET", servers[0]+path, "", nil, tier.ReadAfterHeader, "yesterday")
	checkProblem(t, x, http.StatusBadRequest, path)
	x = do(t, client, "GET", servers[0]+path, "", nil, "Cookie", tier.ReadAfterCookie+"=0/zz")
	checkProblem(t, x, http.StatusBadRequest, path)
	if c := x.header.Get("Set-Cookie"); !strings.Contains(c, tier.ReadAfterCookie+"=;") || !strings.Contains(c, "Max-Age=0") {
		t.Errorf("a bad cookie is not cleared: %q", c)
	}
}

// checkReadAfterCookie asserts the cookie's attributes.
func checkReadAfterCookie(t *testing.T, h http.Header) {
	t.Helper()
	c := h.Get("Set-Cookie")
	for _, attr := range []string{tier.ReadAfterCookie + "=", "Path=/", "Max-Age=60", "HttpOnly", "SameSite=Lax"} {
		if !strings.Contains(c, attr) {
			t.Errorf("Set-Cookie %q lacks %s", c, attr)
		}
	}
}

// The answer that carries the position exposes its header to scripts of
// another origin, beside what a CORS middleware exposes; an answer without
// a position exposes nothing of it.
func TestReadAfterExposesItsHeader(t *testing.T) {
	e := echo.New()
	e.Use(middleware.CORSWithConfig(middleware.CORSConfig{AllowOrigins: []string{"https://shop.example"}, ExposeHeaders: []string{echo.HeaderXRequestID}}))
	e.Use(ReadAfter())
	e.POST("/buy", func(c echo.Context) error {
		readafter.From(c.Request().Context()).Wrote(0x16B3748)
		return c.String(http.StatusOK, "bought")
	})
	e.GET("/items", func(c echo.Context) error { return c.String(http.StatusOK, "3") })
	for _, c := range []struct {
		method, path string
		want         []string
	}{
		{http.MethodPost, "/buy", []string{echo.HeaderXRequestID, tier.ReadAfterHeader}},
		{http.MethodGet, "/items", []string{echo.HeaderXRequestID}},
	} {
		req := httptest.NewRequest(c.method, c.path, nil)
		req.Header.Set(echo.HeaderOrigin, "https://shop.example")
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, req)
		got := rec.Header().Values(echo.HeaderAccessControlExposeHeaders)
		if rec.Code != http.StatusOK || !slices.Equal(got, c.want) {
			t.Errorf("%s %s: %d, %s %q, want %q", c.method, c.path, rec.Code, echo.HeaderAccessControlExposeHeaders, got, c.want)
		}
		if pos := rec.Header().Get(tier.ReadAfterHeader); (pos != "") != (c.method == http.MethodPost) {
			t.Errorf("%s %s: %s %q", c.method, c.path, tier.ReadAfterHeader, pos)
		}
	}
}

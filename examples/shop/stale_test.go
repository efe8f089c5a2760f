//go:build unix

package main

import (
	"net/http"
	"testing"
	"time"

	"github.com/threetier/threetier/internal/pgtest"
)

// An app server that has only ever read one product on its own (it was
// just restarted, nobody listed the catalogue) still answers that product
// from its copy, marked stale, while the database is down.
func TestSingleProductServedStaleAfterARestart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a private PostgreSQL server")
	}
	pg := pgtest.Start(t)
	t.Setenv("THREETIER_LOG_LEVEL", "error")
	s := startRun(t, "-role", "app", "-listen", "127.0.0.1:0", "-db", pg.DSN(), "-name", "app-1")
	url := "http://" + s.l.Apps[0] + "/api/products/1"
	if a := do(t, s.client, "GET", url, ""); a.status != http.StatusOK || a.header.Get("Cache-Status") != "" {
		t.Fatalf("fresh read: %d %q %s", a.status, a.header.Get("Cache-Status"), a.body)
	}

	pg.Stop()
	begun := time.Now()
	a := do(t, s.client, "GET", url, "")
	took := time.Since(begun)
	if a.status != http.StatusOK || a.header.Get("Cache-Status") == "" || a.header.Get("Age") == "" {
		t.Fatalf("read during the outage: %d Cache-Status %q Age %q: %s", a.status, a.header.Get("Cache-Status"), a.header.Get("Age"), a.body)
	}
	var p Product
	a.decode(t, &p)
	if p.ID != 1 || p.Name == "" {
		t.Fatalf("stale product: %+v", p)
	}
	t.Logf("stale answer after %s: %s", took.Round(time.Millisecond), a.header.Get("Cache-Status"))
}

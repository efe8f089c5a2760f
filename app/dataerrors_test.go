package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/sony/gobreaker/v2"

	"github.com/threetier/threetier/data"
	"github.com/threetier/threetier/tier"
)

// row is the one table of the tests against the data tier.
type row struct {
	ID   int64
	Name string `gorm:"uniqueIndex"`
}

// dataErrors opens a SQLite database with one row, and returns it with
// the real errors of a missing row, a duplicate, and a database that
// cannot be opened.
func dataErrors(t *testing.T) (db *data.DB, notFound, duplicate, unavailable error) {
	t.Helper()
	ctx := context.Background()
	db, err := data.Open(ctx, data.Config{Path: filepath.Join(t.TempDir(), "app.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.AutoMigrate(ctx, &row{}); err != nil {
		t.Fatal(err)
	}
	if err := db.WithContext(ctx).Create(&row{Name: "a"}).Error; err != nil {
		t.Fatal(err)
	}
	notFound = db.WithContext(ctx).First(&row{}, 999).Error
	duplicate = db.WithContext(ctx).Create(&row{Name: "a"}).Error
	_, unavailable = data.Open(ctx, data.Config{Path: filepath.Join(t.TempDir(), "no", "such", "dir.db")})
	if !errors.Is(notFound, data.ErrNotFound) || !errors.Is(duplicate, data.ErrDuplicate) || !errors.Is(unavailable, data.ErrUnavailable) {
		t.Fatalf("data errors: %v; %v; %v", notFound, duplicate, unavailable)
	}
	return db, notFound, duplicate, unavailable
}

// A guard with default options lets the data tier's answers through and
// counts its outages: no WithIsFailure needed.
func TestGuardJudgesDataErrorsByDefault(t *testing.T) {
	db, notFound, _, unavailable := dataErrors(t)
	g := newTestGuard(t, GuardConfig{ConsecutiveFailures: 3, Attempts: 2, OpenFor: time.Minute})
	calls := 0
	lookup := func(ctx context.Context) (row, error) {
		calls++
		var r row
		return r, db.WithContext(ctx).First(&r, 999).Error
	}
	for range 10 {
		if _, err := Do(context.Background(), g, lookup); !errors.Is(err, data.ErrNotFound) {
			t.Fatalf("lookup: %v", err)
		}
	}
	if s := g.State(); s != gobreaker.StateClosed || calls != 10 {
		t.Fatalf("after 10 not-found: breaker %s, %d calls (want closed, no retries)", s, calls)
	}
	if !DefaultIsFailure(unavailable) || DefaultIsFailure(notFound) {
		t.Fatal("DefaultIsFailure misjudges the data tier's errors")
	}
	for range 3 {
		_, _ = Do(context.Background(), g, func(context.Context) (int, error) { return 0, unavailable })
	}
	if s := g.State(); s != gobreaker.StateOpen {
		t.Fatalf("after the database was unavailable: breaker %s, want open", s)
	}
}

// A server with default options answers the data tier's errors with their
// own problems: no WithProblems needed. The client is told what happened
// in plain words; the log keeps the whole chain.
func TestServerAnswersDataErrorsByDefault(t *testing.T) {
	_, notFound, duplicate, unavailable := dataErrors(t)
	log, logs := newTestLogger(t)
	s := newTestServer(t, Config{}, WithLogger(log))
	for path, err := range map[string]error{"/missing": notFound, "/duplicate": duplicate, "/down": fmt.Errorf("loading the list: %w", unavailable)} {
		s.Echo().GET(path, func(echo.Context) error { return err })
	}
	base := startServer(t, s)
	client := testClient(t)
	details := map[string]string{"/missing": "not found", "/duplicate": "it already exists", "/down": "the database is unavailable, try again"}
	for path, want := range map[string]int{"/missing": 404, "/duplicate": 409, "/down": 503} {
		resp, err := client.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		var p tier.Problem
		decodeErr := json.NewDecoder(resp.Body).Decode(&p)
		resp.Body.Close()
		if resp.StatusCode != want || decodeErr != nil || p.Status != want || resp.Header.Get("Content-Type") != tier.ContentTypeProblem {
			t.Errorf("GET %s: %d %s %+v (%v), want a %d problem", path, resp.StatusCode, resp.Header.Get("Content-Type"), p, decodeErr, want)
		}
		if retry := resp.Header.Get("Retry-After"); (want == http.StatusServiceUnavailable) != (retry != "") {
			t.Errorf("GET %s: Retry-After %q", path, retry)
		}
		if p.Detail != details[path] {
			t.Errorf("GET %s: detail %q, want %q", path, p.Detail, details[path])
		}
	}
	chain, _ := json.Marshal("loading the list: " + unavailable.Error())
	if !strings.Contains(logs.String(), string(chain)) {
		t.Errorf("the log has not the whole chain %s:\n%s", chain, logs.String())
	}
}

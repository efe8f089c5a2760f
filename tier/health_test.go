package tier_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/threetier/threetier/tier"
)

func TestReadinessReflectsCheckers(t *testing.T) {
	h := &tier.Health{CheckTimeout: 100 * time.Millisecond}
	dbDown := errors.New("connection refused")
	var dbErr error
	h.Register("db", tier.CheckFunc(func(context.Context) error { return dbErr }))
	h.Register("cache", tier.CheckFunc(func(context.Context) error { return nil }))
	srv := httptest.NewServer(h.Handler())
	defer srv.Close()

	get := func(path string) (int, tier.Report) {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var rep tier.Report
		if path == "/readyz" {
			if err := json.NewDecoder(resp.Body).Decode(&rep); err != nil {
				t.Fatalf("readyz body: %v", err)
			}
		}
		return resp.StatusCode, rep
	}

	if code, rep := get("/readyz"); code != 200 || !rep.Ready || len(rep.Checks) != 2 {
		t.Fatalf("all up: %d %+v", code, rep)
	}
	dbErr = dbDown
	code, rep := get("/readyz")
	if code != http.StatusServiceUnavailable || rep.Ready {
		t.Fatalf("db down: status %d ready %v, want 503 false", code, rep.Ready)
	}
	if f := rep.Failed(); len(f) != 1 || f[0] != "db" {
		t.Fatalf("failed = %v, want [db]", f)
	}
	if rep.Checks[1].Name != "db" || rep.Checks[1].Error != dbDown.Error() {
		t.Fatalf("db result = %+v, want the reason", rep.Checks[1])
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Fatalf("healthz = %d while a dependency is down, want 200 (alive)", code)
	}
	h.Unregister("db")
	if code, _ := get("/readyz"); code != 200 {
		t.Fatalf("after unregister: %d", code)
	}
}

func TestReadinessTimesOutSlowCheckers(t *testing.T) {
	h := &tier.Health{CheckTimeout: 20 * time.Millisecond}
	h.Register("slow", tier.CheckFunc(func(ctx context.Context) error {
		<-ctx.Done()
		return ctx.Err()
	}))
	rep := h.Check(context.Background())
	if rep.Ready || rep.Checks[0].OK || rep.Checks[0].Error == "" {
		t.Fatalf("slow checker: %+v, want not ready with a reason", rep)
	}
}

func TestReadyWithNoCheckers(t *testing.T) {
	rec := httptest.NewRecorder()
	(&tier.Health{}).Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
	if rec.Code != 200 || rec.Body.String() != "{\"ready\":true,\"checks\":[]}\n" {
		t.Fatalf("got %d %q", rec.Code, rec.Body.String())
	}
}

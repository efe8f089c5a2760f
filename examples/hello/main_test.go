package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/threetier/threetier/data"
)

// fasthttp, the web tier's HTTP/1.1 engine, keeps two goroutines past a
// server's Stop by design: the clock of its Date header, for the life of
// the process, and a stopped server's idle-worker sweeper, until its next
// round.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"))
}

// TestHelloOnSQLite runs the service on the embedded default, as
// `go run ./examples/hello` does, over real sockets.
func TestHelloOnSQLite(t *testing.T) {
	exercise(t, []string{"-db", filepath.Join(t.TempDir(), "hello.db")})
}

// TestHelloOnPostgres runs the same service against PostgreSQL, in a schema
// of its own.
func TestHelloOnPostgres(t *testing.T) {
	dsn := os.Getenv("THREETIER_TEST_POSTGRES")
	if dsn == "" {
		t.Skip("THREETIER_TEST_POSTGRES is unset: skipping the PostgreSQL run (see README)")
	}
	ctx := context.Background()
	admin, err := data.Open(ctx, data.Config{DSN: dsn})
	if err != nil {
		t.Fatalf("THREETIER_TEST_POSTGRES is set but PostgreSQL is unreachable: %v", err)
	}
	defer admin.Close()
	schema := fmt.Sprintf("hello_%d", time.Now().UnixNano())
	if err := admin.Gorm().Exec("CREATE SCHEMA " + schema).Error; err != nil {
		t.Fatal(err)
	}
	defer admin.Gorm().Exec("DROP SCHEMA " + schema + " CASCADE")

	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	t.Setenv("THREETIER_DATA_DSN", u.String())
	exercise(t, nil)
}

// exercise starts the service, uses its page and API through the web tier,
// and stops it. The addresses of the web tier and the admin listener come
// from their variables.
func exercise(t *testing.T, args []string) {
	t.Helper()
	t.Setenv("THREETIER_WEB_LISTEN", "127.0.0.1:0")
	t.Setenv("THREETIER_ADMIN_LISTEN", "127.0.0.1:0")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan listening, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, append([]string{"-apps", "2"}, args...), io.Discard, ready)
	}()
	var base, admin string
	select {
	case l := <-ready:
		base, admin = "http://"+l.Site, "http://"+l.Admin
	case err := <-done:
		t.Fatalf("service ended before serving: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("service not ready within 30s")
	}
	client := &http.Client{Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()

	status, page := call(t, client, "GET", base+"/", "")
	if status != 200 || !strings.Contains(page, "<h1>hello, threetier</h1>") {
		t.Fatalf("page: %d %q", status, page)
	}

	status, body := call(t, client, "POST", base+"/api/greetings", `{"name":"Ada"}`)
	var created Greeting
	if status != http.StatusCreated || json.Unmarshal([]byte(body), &created) != nil || created.ID == 0 || created.Name != "Ada" {
		t.Fatalf("create: %d %s", status, body)
	}

	status, body = call(t, client, "GET", fmt.Sprintf("%s/api/greetings/%d", base, created.ID), "")
	var got Greeting
	if status != 200 || json.Unmarshal([]byte(body), &got) != nil || got.ID != created.ID || got.Name != "Ada" || got.CreatedAt.IsZero() {
		t.Fatalf("get: %d %s", status, body)
	}
	for path, want := range map[string]int{"/api/greetings/999999": 404, "/api/greetings/abc": 400, "/api/greetings/-1": 400, "/api/greetings/9223372036854775808": 404} {
		if status, body = call(t, client, "GET", base+path, ""); status != want || !strings.Contains(body, fmt.Sprintf(`"status":%d`, want)) {
			t.Fatalf("GET %s: %d %s, want %d problem", path, status, body, want)
		}
	}

	// Invalid input is refused at the app tier and stores nothing.
	status, body = call(t, client, "POST", base+"/api/greetings", `{"name":""}`)
	if status != http.StatusUnprocessableEntity || !strings.Contains(body, `"field":"name"`) {
		t.Fatalf("invalid create: %d %s", status, body)
	}
	status, body = call(t, client, "POST", base+"/api/greetings", `{"name":`)
	if status != http.StatusBadRequest {
		t.Fatalf("malformed create: %d %s", status, body)
	}

	status, body = call(t, client, "GET", base+"/api/greetings", "")
	var list []Greeting
	if status != 200 || json.Unmarshal([]byte(body), &list) != nil || len(list) != 1 || list[0].ID != created.ID {
		t.Fatalf("list: %d %s", status, body)
	}

	// The web tier balances over both app instances.
	servedBy := map[string]int{}
	for range 20 {
		status, body = call(t, client, "GET", base+"/api/hello", "")
		var h Hello
		if status != 200 || json.Unmarshal([]byte(body), &h) != nil || h.Greetings != 1 {
			t.Fatalf("hello: %d %s", status, body)
		}
		servedBy[h.ServedBy]++
	}
	if len(servedBy) != 2 {
		t.Fatalf("requests served by %v, want both app instances", servedBy)
	}

	status, body = call(t, client, "GET", base+"/api/missing", "")
	if status != 404 || !strings.Contains(body, `"status":404`) {
		t.Fatalf("missing API route: %d %s", status, body)
	}
	// The web tier is ready while its pool has an instance to forward to,
	// and the instances are ready while the database answers.
	if status, body = call(t, client, "GET", base+"/readyz", ""); status != 200 || !strings.Contains(body, "app-pool") {
		t.Fatalf("readyz: %d %s", status, body)
	}

	// The public port serves no metrics: the series name the app
	// instances.
	if status, body = call(t, client, "GET", base+"/metrics", ""); status != 404 || strings.Contains(body, "threetier_") {
		t.Fatalf("public /metrics: %d %.200s", status, body)
	}
	if status, body = call(t, client, "GET", admin+"/readyz", ""); status != 200 || !strings.Contains(body, "app-pool") {
		t.Fatalf("admin readyz: %d %s", status, body)
	}
	// Every tier's series reach the admin listener's one /metrics, the app
	// instances' by name.
	status, body = call(t, client, "GET", admin+"/metrics", "")
	for _, want := range []string{`threetier_app_requests_total{code="200",method="GET",route="/api/hello",server="app-1"}`,
		`threetier_app_requests_total{code="200",method="GET",route="/api/hello",server="app-2"}`,
		`threetier_app_guard_calls_total{guard="db",outcome="success",server="app-1"}`,
		"threetier_data_", "threetier_balancer_", "threetier_web_"} {
		if status != 200 || !strings.Contains(body, want) {
			t.Fatalf("/metrics (%d) lacks %s", status, want)
		}
	}

	cancel()
	if err := <-done; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
}

func call(t *testing.T, c *http.Client, method, url, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewBufferString(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// Each tier's variables are read under its prefix: a bad value fails the
// start and names itself.
func TestHelloHonoursEveryTiersVariables(t *testing.T) {
	for name, value := range map[string]string{
		"THREETIER_WEB_LISTEN":        "nowhere",
		"THREETIER_BALANCER_POLICY":   "fastest",
		"THREETIER_APP_MAX_IN_FLIGHT": "many",
		"THREETIER_LOG_LEVEL":         "loud",
	} {
		t.Run(name, func(t *testing.T) {
			t.Setenv("THREETIER_DATA_DSN", "")
			t.Setenv(name, value)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			err := run(ctx, []string{"-db", filepath.Join(t.TempDir(), "hello.db")}, io.Discard, nil)
			if err == nil || !strings.Contains(err.Error(), value) {
				t.Errorf("%s=%s: %v, want an error that names the value", name, value, err)
			}
		})
	}
}

func TestHelloRejectsBadFlags(t *testing.T) {
	for _, args := range [][]string{{"-listen"}, {"-apps", "0"}, {"extra"}} {
		var stderr strings.Builder
		if err := run(context.Background(), args, &stderr, nil); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
}

func TestHelloRejectsAMisspeltVariable(t *testing.T) {
	t.Setenv("THREETIER_DATA_DNS", "postgres://127.0.0.1/x")
	err := run(context.Background(), nil, io.Discard, nil)
	want := "THREETIER_DATA_DNS: unknown variable; did you mean THREETIER_DATA_DSN?"
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v, want %s", err, want)
	}
}

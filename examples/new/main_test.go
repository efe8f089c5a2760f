package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/threetier/threetier/data"
	"github.com/threetier/threetier/internal/syncbuf"
)

// goTimeout bounds each go command run on a written service: the first
// build with -race compiles the framework's dependencies.
const goTimeout = 4 * time.Minute

// TestNewServiceOnSQLite writes the default service, builds, vets and
// tests it, then runs it and uses its API.
func TestNewServiceOnSQLite(t *testing.T) {
	dir := generate(t)
	bin := buildAndTest(t, dir, nil)
	base, admin := serve(t, bin, []string{"THREETIER_DATA_DSN="}, "-listen", "127.0.0.1:0", "-db", filepath.Join(t.TempDir(), "svc.db"))
	useAPI(t, base, "items")
	metricsOnAdminOnly(t, base, admin)
}

// TestNewServiceOnPostgres writes the service with PostgreSQL as its
// default, and runs its tests and itself against a database made for the
// test and dropped after it.
func TestNewServiceOnPostgres(t *testing.T) {
	dsn := freshDatabase(t)
	dir := generate(t, "-postgres", "-resource", "orders")
	bin := buildAndTest(t, dir, []string{"THREETIER_TEST_POSTGRES=" + dsn})
	base, admin := serve(t, bin, []string{"THREETIER_DATA_DSN=" + dsn}, "-listen", "127.0.0.1:0")
	useAPI(t, base, "orders")
	metricsOnAdminOnly(t, base, admin)
}

// TestNewServiceWithFrontDoor writes the service with the balancer role,
// whose own tests run the roles in a cluster, and runs it whole, behind
// its front door.
func TestNewServiceWithFrontDoor(t *testing.T) {
	dir := generate(t, "-front-door", "-resource", "categories")
	for _, name := range []string{"deploy/k8s/50-balancer.yaml", "deploy/k8s/10-secrets.yaml"} {
		if b, err := os.ReadFile(filepath.Join(dir, name)); err != nil || !strings.Contains(string(b), "cluster-key") {
			t.Errorf("%s lacks the cluster's key (%v)", name, err)
		}
	}
	bin := buildAndTest(t, dir, nil)
	base, admin := serve(t, bin, []string{"THREETIER_DATA_DSN="}, "-listen", "127.0.0.1:0", "-db", filepath.Join(t.TempDir(), "svc.db"))
	useAPI(t, base, "categories")
	metricsOnAdminOnly(t, base, admin)
	// The stats page the README names is there, over the web server.
	client := &http.Client{Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	if status, page, ctype := call(t, client, "GET", admin+"/", ""); status != http.StatusOK || !strings.HasPrefix(ctype, "text/html") {
		t.Errorf("stats page: %d %q %.200s", status, ctype, page)
	}
	var report struct {
		Pools []struct{ Endpoints []json.RawMessage }
	}
	if status, body, _ := call(t, client, "GET", admin+"/api/status", ""); status != http.StatusOK || json.Unmarshal([]byte(body), &report) != nil ||
		len(report.Pools) != 1 || len(report.Pools[0].Endpoints) != 1 {
		t.Errorf("stats /api/status: %d %.300s", status, body)
	}
}

// generate writes a service with args into a new directory, built against
// this checkout, and returns the directory.
func generate(t *testing.T, args ...string) string {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: skipping a test that builds and runs a written service")
	}
	dir := filepath.Join(t.TempDir(), "svc")
	var stdout, stderr bytes.Buffer
	args = append([]string{"-module", "example.com/svc", "-replace", checkout(t)}, append(args, dir)...)
	if code := run(args, &stdout, &stderr); code != 0 {
		t.Fatalf("new %v: exit %d: %s", args, code, stderr.String())
	}
	return dir
}

// checkout is the root of this repository: the nearest directory up from
// the test's that holds a go.mod.
func checkout(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
}

// buildAndTest runs what a user of the written service would, and returns
// the built binary. env is added to the go commands' environment.
func buildAndTest(t *testing.T, dir string, env []string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "svc")
	for _, args := range [][]string{
		{"mod", "tidy"},
		{"vet", "./..."},
		{"build", "-o", bin, "."},
		{"test", "-race", "-count=1", "./..."},
	} {
		goCommand(t, dir, env, args...)
	}
	if out, err := exec.Command("gofmt", "-l", dir).CombinedOutput(); err != nil || len(out) > 0 {
		t.Errorf("gofmt -l: %v %s", err, out)
	}
	return bin
}

func goCommand(t *testing.T, dir string, env []string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), goTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	// The written module stands alone; its tests read no database unless
	// env names one.
	cmd.Env = append(withoutVar(os.Environ(), "THREETIER_TEST_POSTGRES"), append([]string{"GOFLAGS=-mod=mod", "GOWORK=off"}, env...)...)
	began := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	t.Logf("go %s: %s", strings.Join(args, " "), time.Since(began).Round(time.Millisecond))
}

func withoutVar(environ []string, name string) []string {
	var out []string
	for _, kv := range environ {
		if !strings.HasPrefix(kv, name+"=") {
			out = append(out, kv)
		}
	}
	return out
}

// serve starts the binary with args until the test ends, and returns the
// base URLs of its front and of its admin listener (on a port of its own)
// that it announces once it serves. It is stopped by its pid, with SIGINT
// and then, if it lingers, SIGKILL.
func serve(t *testing.T, bin string, env []string, args ...string) (front, admin string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(withoutVar(os.Environ(), "THREETIER_TEST_POSTGRES"), append([]string{"THREETIER_LOG_FORMAT=json", "THREETIER_ADMIN_LISTEN=127.0.0.1:0"}, env...)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			<-exited
			t.Errorf("%s did not stop within 15s of SIGINT", bin)
		}
	})
	urls := make(chan [2]string, 1)
	var logged syncbuf.Buffer
	go func() {
		defer close(exited)
		scanner := bufio.NewScanner(stderr)
		for scanner.Scan() {
			fmt.Fprintln(&logged, scanner.Text())
			var line struct{ Msg, URL, Admin string }
			if json.Unmarshal(scanner.Bytes(), &line) == nil && line.Msg == "serving" {
				urls <- [2]string{strings.TrimSuffix(line.URL, "/"), strings.TrimSuffix(line.Admin, "/")}
			}
		}
		cmd.Wait()
	}()
	select {
	case u := <-urls:
		return u[0], u[1]
	case <-exited:
		t.Fatalf("%s ended before serving:\n%s", bin, logged.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("%s not serving within 30s:\n%s", bin, logged.String())
	}
	return "", ""
}

// metricsOnAdminOnly checks that the service's public port serves no
// /metrics and its admin listener does, every tier's.
func metricsOnAdminOnly(t *testing.T, base, admin string) {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	if status, body, _ := call(t, client, "GET", base+"/metrics", ""); status != http.StatusNotFound || strings.Contains(body, "threetier_") {
		t.Errorf("public /metrics: %d %.200s", status, body)
	}
	if admin == "" {
		t.Fatal("no admin listener announced")
	}
	status, body, _ := call(t, client, "GET", admin+"/metrics", "")
	for _, want := range []string{"threetier_app_", "threetier_web_", "threetier_balancer_", "threetier_data_"} {
		if status != http.StatusOK || !strings.Contains(body, want) {
			t.Errorf("admin /metrics (%d) lacks %s", status, want)
		}
	}
}

// useAPI creates a row, lists and reads it back, and sends a malformed
// body, through the service's front at base.
func useAPI(t *testing.T, base, resource string) {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	api := base + "/api/" + resource

	// A pool in front marks its instances up on their first health check.
	status, body, _ := call(t, client, "POST", api, `{"name":"first"}`)
	for deadline := time.Now().Add(10 * time.Second); status == http.StatusServiceUnavailable && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
		status, body, _ = call(t, client, "POST", api, `{"name":"first"}`)
	}
	var created struct {
		ID   uint64 `json:"id"`
		Name string `json:"name"`
	}
	if status != http.StatusCreated || json.Unmarshal([]byte(body), &created) != nil || created.ID == 0 || created.Name != "first" {
		t.Fatalf("POST %s: %d %s", api, status, body)
	}
	if status, body, _ = call(t, client, "GET", api, ""); status != http.StatusOK || !strings.Contains(body, `"name":"first"`) {
		t.Fatalf("GET %s: %d %s", api, status, body)
	}
	one := fmt.Sprintf("%s/%d", api, created.ID)
	if status, body, _ = call(t, client, "GET", one, ""); status != http.StatusOK || !strings.Contains(body, fmt.Sprintf(`"id":%d`, created.ID)) {
		t.Fatalf("GET %s: %d %s", one, status, body)
	}
	status, body, contentType := call(t, client, "POST", api, `{"name":`)
	if status != http.StatusBadRequest || contentType != "application/problem+json" || !strings.Contains(body, `"status":400`) {
		t.Fatalf("malformed POST %s: %d %s %s, want a 400 problem", api, status, contentType, body)
	}
}

func call(t *testing.T, c *http.Client, method, url, body string) (status int, text, contentType string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
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
	return resp.StatusCode, string(b), resp.Header.Get("Content-Type")
}

// freshDatabase makes a database of its own on the PostgreSQL of
// THREETIER_TEST_POSTGRES, dropped when the test ends, and returns its DSN.
func freshDatabase(t *testing.T) string {
	t.Helper()
	admin := os.Getenv("THREETIER_TEST_POSTGRES")
	if admin == "" {
		t.Skip("THREETIER_TEST_POSTGRES is unset: skipping the PostgreSQL run (see README)")
	}
	if testing.Short() {
		t.Skip("-short: skipping a test that builds and runs a written service")
	}
	db, err := data.Open(context.Background(), data.Config{DSN: admin})
	if err != nil {
		t.Fatalf("THREETIER_TEST_POSTGRES is set but PostgreSQL is unreachable: %v", err)
	}
	name := fmt.Sprintf("new_%d", time.Now().UnixNano())
	if err := db.Gorm().Exec("CREATE DATABASE " + name).Error; err != nil {
		db.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := db.Gorm().Exec("DROP DATABASE " + name + " WITH (FORCE)").Error; err != nil {
			t.Errorf("drop %s: %v", name, err)
		}
		db.Close()
	})
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}

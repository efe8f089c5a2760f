package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/threetier/threetier/data"
	"github.com/threetier/threetier/internal/syncbuf"
	"github.com/threetier/threetier/internal/wait"
)

// TestRecipe runs the README's one-process-per-role recipe as a person
// pastes it into a shell, and checks that it ends with the catalogue and
// that every log line of the six processes names its instance. What it
// changes, it changes for the machine it runs on: ./shop is this test
// binary (the same run), every loopback port is a free one, and the
// database is one of its own on THREETIER_TEST_POSTGRES's server. Every
// process it starts is stopped by its own pid.
func TestRecipe(t *testing.T) {
	admin := os.Getenv("THREETIER_TEST_POSTGRES")
	if admin == "" {
		t.Skip("THREETIER_TEST_POSTGRES is unset: skipping the README's PostgreSQL recipe (see README)")
	}
	for _, tool := range []string{"bash", "curl", "createdb", "base64"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("the recipe needs %s: %v", tool, err)
		}
	}
	recipe := readmeRecipe(t)
	dir := t.TempDir()

	// ./shop: the test binary, run as the command.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	const build = "go build -o shop ./examples/shop\n"
	if !strings.HasPrefix(recipe, build) {
		t.Fatalf("the recipe no longer starts with %q:\n%s", build, recipe)
	}
	recipe = strings.TrimPrefix(recipe, build)
	wrapper := fmt.Sprintf("#!/bin/sh\n%s=1 exec %q \"$@\"\n", runMainEnv, self)
	if err := os.WriteFile(filepath.Join(dir, "shop"), []byte(wrapper), 0o755); err != nil {
		t.Fatal(err)
	}

	// The database: a fresh one, dropped at the end, in place of "shop".
	dsn, name := recipeDatabase(t, admin)
	u, _ := url.Parse(dsn)
	recipe = replaceOnce(t, recipe, "createdb -h 127.0.0.1 -U postgres shop",
		fmt.Sprintf("createdb -h %s -p %s -U %s %s", u.Hostname(), u.Port(), u.User.Username(), name))
	recipe = replaceOnce(t, recipe, "'postgres://postgres@127.0.0.1:5432/shop?sslmode=disable'", "'"+dsn+"'")
	// Every other loopback port: a free one.
	ports := map[string]string{}
	recipe = regexp.MustCompile(`127\.0\.0\.1:(\d+)`).ReplaceAllStringFunc(recipe, func(addr string) string {
		port := strings.TrimPrefix(addr, "127.0.0.1:")
		if port == u.Port() && strings.Contains(dsn, addr) {
			return addr
		}
		if ports[port] == "" {
			ports[port] = freePort(t)
		}
		return "127.0.0.1:" + ports[port]
	})

	// The shell keeps its jobs as children until the test stops them: it
	// writes their pids once the recipe's last command is done.
	pids := filepath.Join(dir, "pids")
	script := recipe + "\njobs -p > " + pids + ".tmp && mv " + pids + ".tmp " + pids + "\nwait\n"
	var stdout, stderr syncbuf.Buffer
	sh := exec.Command("bash", "-c", script)
	sh.Dir = dir
	sh.Env = append(withoutShopVars(os.Environ()), "THREETIER_LOG_FORMAT=json")
	sh.Stdout, sh.Stderr = &stdout, &stderr
	if err := sh.Start(); err != nil {
		t.Fatal(err)
	}
	shellDone := make(chan struct{})
	go func() { _ = sh.Wait(); close(shellDone) }()
	var jobs []int
	t.Cleanup(func() {
		if jobs == nil { // the recipe did not finish: stop what it started
			jobs = childrenOf(sh.Process.Pid)
		}
		stopRecipe(t, sh.Process.Pid, jobs, shellDone)
	})

	wait.For(t, 60*time.Second, "the recipe's last command", func() bool {
		b, err := os.ReadFile(pids)
		if err != nil {
			return false
		}
		for _, f := range strings.Fields(string(b)) {
			pid, _ := strconv.Atoi(f)
			jobs = append(jobs, pid)
		}
		return true
	})
	if len(jobs) != 6 {
		t.Fatalf("%d processes started, want 6:\n%s", len(jobs), stderr.String())
	}
	var products []product
	if err := json.Unmarshal([]byte(stdout.String()), &products); err != nil || len(products) != 8 {
		t.Fatalf("the closing curl printed %q (%v), want the 8 products; the logs:\n%s", stdout.String(), err, stderr.String())
	}

	// Every line names its instance, and there are six of them.
	stopRecipe(t, sh.Process.Pid, jobs, shellDone) // the stop's lines too
	instances := map[string]int{}
	sc := bufio.NewScanner(strings.NewReader(stderr.String()))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "createdb:") {
			continue // the database's own tool
		}
		var rec struct{ Instance string }
		if err := json.Unmarshal([]byte(line), &rec); err != nil || rec.Instance == "" {
			t.Errorf("a line names no instance: %s", line)
			continue
		}
		instances[rec.Instance]++
	}
	if len(instances) != 6 {
		t.Errorf("instances in the logs: %v, want six", instances)
	}
	if !regexp.MustCompile(`"msg":"access","instance":"door-1".*"uri":"/api/products"`).MatchString(stderr.String()) {
		t.Errorf("door-1 logged no access line for the closing curl")
	}
}

// product is what GET /api/products lists.
type product struct {
	ID    int64  `json:"id"`
	Name  string `json:"name"`
	Price int64  `json:"price"`
}

// readmeRecipe is the shell block of the README's "one server per role"
// section.
func readmeRecipe(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), "A local run, one process each")
	if ok {
		_, rest, ok = strings.Cut(rest, "```sh\n")
	}
	block, _, closed := strings.Cut(rest, "```")
	if !ok || !closed {
		t.Fatal(`README.md has no shell block after "A local run, one process each"`)
	}
	return block
}

func replaceOnce(t *testing.T, s, old, new string) string {
	t.Helper()
	if strings.Count(s, old) != 1 {
		t.Fatalf("the recipe should hold %q once:\n%s", old, s)
	}
	return strings.Replace(s, old, new, 1)
}

// recipeDatabase names a database that does not exist yet on admin's
// server, for the recipe's createdb to make, and drops it when the test
// ends. It returns the database's DSN and name.
func recipeDatabase(t *testing.T, admin string) (string, string) {
	t.Helper()
	db, err := data.Open(context.Background(), data.Config{DSN: admin})
	if err != nil {
		t.Fatalf("THREETIER_TEST_POSTGRES is set but PostgreSQL is unreachable: %v", err)
	}
	name := fmt.Sprintf("shop_recipe_%d", time.Now().UnixNano())
	t.Cleanup(func() {
		if err := db.Gorm().Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)").Error; err != nil {
			t.Errorf("drop %s: %v", name, err)
		}
		db.Close()
	})
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatal(err)
	}
	if u.Port() == "" {
		u.Host = net.JoinHostPort(u.Hostname(), "5432")
	}
	u.Path = "/" + name
	return u.String(), name
}

// freePort is a loopback TCP port nothing listens on now.
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

// withoutShopVars is environ without the THREETIER_ variables of the
// test's own environment (THREETIER_TEST_ ones aside), which the recipe
// does not set: the processes read only what the recipe gives them.
func withoutShopVars(environ []string) []string {
	var out []string
	for _, kv := range environ {
		if !strings.HasPrefix(kv, "THREETIER_") || strings.HasPrefix(kv, "THREETIER_TEST_") {
			out = append(out, kv)
		}
	}
	return out
}

// childrenOf lists the processes pid started, as Linux lists them.
func childrenOf(pid int) []int {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	var out []int
	for _, f := range strings.Fields(string(b)) {
		if n, err := strconv.Atoi(f); err == nil {
			out = append(out, n)
		}
	}
	return out
}

// stopRecipe stops the recipe's processes by their pids, gracefully
// (SIGTERM, as the README's kill $(jobs -p) does: a shell starts its
// background jobs with SIGINT ignored), then the shell, whose wait returns
// once they are gone; what lingers 20 s later is killed. Calling it again
// does nothing.
func stopRecipe(t *testing.T, shell int, jobs []int, shellDone <-chan struct{}) {
	select {
	case <-shellDone:
		return
	default:
	}
	for _, pid := range jobs {
		_ = syscall.Kill(pid, syscall.SIGTERM)
	}
	select {
	case <-shellDone:
		return
	case <-time.After(20 * time.Second):
	}
	t.Errorf("the recipe's processes still run 20s after SIGTERM: killed")
	for _, pid := range append(jobs, shell) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	<-shellDone
}

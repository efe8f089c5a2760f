//go:build unix

package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/threetier/threetier/balancer"
	"github.com/threetier/threetier/data"
	"github.com/threetier/threetier/internal/pgtest"
	"github.com/threetier/threetier/internal/wait"
)

// TestChaos runs the shop as it is deployed, one OS process per role (two
// front doors in a cluster, two web servers, two app servers) over a
// private PostgreSQL server, drives reads and orders through both front
// doors with a Go client that balances over them, and meanwhile kills a
// front door, a web server and an app server with SIGKILL, restarts them,
// and restarts PostgreSQL. Reads must never fail; every order acknowledged
// with 201 must exist exactly once; no stock is lost or made up; once the
// killed roles are back, every /readyz is green.
func TestChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the shop and starts nine processes")
	}
	pg := pgtest.Start(t, "max_connections=60")
	bin := buildShop(t)

	key := make([]byte, 32)
	for i := range key {
		key[i] = byte(rand.IntN(256))
	}
	env := append(cleanEnv(), "THREETIER_CLUSTER_KEY="+base64.StdEncoding.EncodeToString(key),
		"THREETIER_LOG_LEVEL=warn", "THREETIER_DATA_CONNECT_TIMEOUT=1s", "THREETIER_DATA_OP_TIMEOUT=3s",
		// The blows here are SIGKILLs; SIGTERM at the end need not wait.
		"THREETIER_APP_DRAIN_DELAY=-1s", "THREETIER_WEB_DRAIN_DELAY=-1s", "THREETIER_PROXY_DRAIN_DELAY=-1s")
	ports := freePorts(t, 10)
	addr := func(i int) string { return "127.0.0.1:" + strconv.Itoa(ports[i]) }
	apps := []string{addr(0), addr(1)}
	webs := []string{addr(2), addr(3)}
	doors := []string{addr(4), addr(5)}
	stats := []string{addr(6), addr(7)}
	gossip := []string{addr(8), addr(9)}
	urls := func(as []string) string {
		var u []string
		for _, a := range as {
			u = append(u, "http://"+a)
		}
		return strings.Join(u, ",")
	}
	logs := t.TempDir()
	var procs []*proc
	newProc := func(name, ready string, args ...string) *proc {
		p := &proc{t: t, name: name, bin: bin, args: args, env: env, ready: ready, log: filepath.Join(logs, name+".log")}
		procs = append(procs, p)
		return p
	}
	var appP, webP, doorP []*proc
	for i := range 2 {
		appP = append(appP, newProc(fmt.Sprintf("app-%d", i+1), "http://"+apps[i]+"/readyz",
			"-role", "app", "-listen", apps[i], "-db", pg.DSN(), "-name", fmt.Sprintf("app-%d", i+1)))
	}
	for i := range 2 {
		webP = append(webP, newProc(fmt.Sprintf("web-%d", i+1), "http://"+webs[i]+"/readyz",
			"-role", "web", "-listen", webs[i], "-backends", urls(apps), "-name", fmt.Sprintf("web-%d", i+1)))
	}
	for i := range 2 {
		doorP = append(doorP, newProc(fmt.Sprintf("door-%d", i+1), "http://"+doors[i]+"/readyz",
			"-role", "balancer", "-listen", doors[i], "-backends", urls(webs), "-stats", stats[i],
			"-cluster-listen", gossip[i], "-peers", gossip[1-i], "-name", fmt.Sprintf("door-%d", i+1)))
	}
	stopOnCleanup(t, procs)
	// The app servers start one after the other so that the migrations'
	// lock is not what is tested here.
	for _, p := range append(append(appP, webP...), doorP...) {
		p.start()
	}
	for _, p := range procs {
		p.waitReady(20 * time.Second)
	}

	db, rows := stockUp(t, pg.DSN())
	initial := map[uint64]int{}
	for _, p := range rows {
		initial[p.ID] = p.Stock
	}

	// The client: a pool over both front doors, as any Go client of the
	// shop would have, retrying GETs and keyed orders on the other door.
	front, err := balancer.New(balancer.Config{
		Name: "doors", Endpoints: []string{"http://" + doors[0], "http://" + doors[1]},
		Health: balancer.HealthConfig{Path: "/readyz", Interval: 500 * time.Millisecond},
		Retry:  balancer.RetryConfig{Attempts: 4},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := front.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer front.Stop(context.Background())
	client := front.Client()
	client.Timeout = 15 * time.Second

	l := &load{client: client, ids: rows, acked: map[string]uint64{}, start: time.Now()}
	l.lastOrder.Store(time.Now().UnixNano())
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := range 4 {
		wg.Go(func() { l.worker(w, stop) })
	}

	// The chaos, one blow at a time, each waited out: a role killed, down
	// for a moment, started again and ready.
	step := func(what string, f func()) {
		t.Logf("%6.1fs %s", time.Since(l.start).Seconds(), what)
		f()
	}
	// under lets the load send n more reads against the topology as it is:
	// the blows land on traffic, not on an idle system.
	under := func(n int) {
		l.mu.Lock()
		target := l.reads + n
		l.mu.Unlock()
		wait.For(t, 30*time.Second, fmt.Sprintf("%d more reads", n), func() bool {
			l.mu.Lock()
			defer l.mu.Unlock()
			return l.reads >= target
		})
	}
	under(1000)
	for _, p := range []*proc{doorP[0], webP[0], appP[0]} {
		step("SIGKILL "+p.name, p.kill)
		under(1000)
		step("restart "+p.name, func() { p.start(); p.waitReady(20 * time.Second) })
		under(1000)
	}
	step("pg_ctl restart -m fast", pg.Restart)
	ordersBack := time.Now()
	wait.For(t, 20*time.Second, "an order to succeed after the PostgreSQL restart", func() bool {
		return time.Unix(0, l.lastOrder.Load()).After(ordersBack)
	})
	step(fmt.Sprintf("orders succeed again %.1fs after the restart returned", time.Since(ordersBack).Seconds()), func() {})
	under(1000)
	close(stop)
	wg.Wait()
	elapsed := time.Since(l.start)

	// Every role is back and ready.
	var probes []string
	for i := range 2 {
		probes = append(probes, "http://"+apps[i]+"/readyz", "http://"+webs[i]+"/readyz", "http://"+doors[i]+"/readyz", "http://"+stats[i]+"/readyz")
	}
	plain := &http.Client{Timeout: 2 * time.Second}
	defer plain.CloseIdleConnections()
	for _, u := range probes {
		wait.For(t, 15*time.Second, u+" to answer 200", func() bool {
			resp, err := plain.Get(u)
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode == 200
		})
	}

	// The figures.
	l.mu.Lock()
	defer l.mu.Unlock()
	kinds := make([]string, 0, len(l.errs))
	for k := range l.errs {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	var eb strings.Builder
	for _, k := range kinds {
		fmt.Fprintf(&eb, "\n    %-48s %d", k, l.errs[k])
	}
	t.Logf("%.1fs of load: %d reads (%d failed, %d served stale), %d orders sent (%d acknowledged, %d of them replays of a retry; %d refused for stock; %d refused 5xx; %d transport errors), longest gap without a successful order %.2fs; errors by kind:%s",
		elapsed.Seconds(), l.reads, l.readFails, l.stale, l.ordersSent, len(l.acked), l.replays, l.refused409, l.refused5xx, l.orderTransport,
		time.Duration(l.maxGap.Load()).Seconds(), eb.String())

	if l.readFails != 0 {
		t.Errorf("%d reads failed", l.readFails)
	}
	if l.reads < 100 || len(l.acked) < 20 {
		t.Errorf("too little load to judge: %d reads, %d orders", l.reads, len(l.acked))
	}
	for _, bad := range l.mismatch {
		t.Error(bad)
	}

	// Every acknowledged order exists exactly once, with the id it was
	// acknowledged with.
	type row struct {
		ID             uint64
		IdempotencyKey string
	}
	var placed []row
	if err := db.Gorm().Raw("SELECT id, idempotency_key FROM orders WHERE idempotency_key IS NOT NULL").Scan(&placed).Error; err != nil {
		t.Fatal(err)
	}
	byKey := map[string][]uint64{}
	for _, r := range placed {
		byKey[r.IdempotencyKey] = append(byKey[r.IdempotencyKey], r.ID)
	}
	for k, id := range l.acked {
		if got := byKey[k]; len(got) != 1 || got[0] != id {
			t.Errorf("order %s acknowledged as %d, in the database: %v", k, id, got)
		}
	}
	unacked := 0
	for k := range byKey {
		if _, ok := l.acked[k]; !ok {
			unacked++
		}
	}
	t.Logf("%d orders in the database, %d acknowledged, %d placed whose answer the client never got", len(placed), len(l.acked), unacked)

	// Stock plus what was ordered is the initial stock, product by
	// product.
	var sums []struct {
		ProductID uint64
		Qty       int
	}
	if err := db.Gorm().Raw("SELECT product_id, SUM(quantity) AS qty FROM order_items GROUP BY product_id").Scan(&sums).Error; err != nil {
		t.Fatal(err)
	}
	ordered := map[uint64]int{}
	for _, s := range sums {
		ordered[s.ProductID] = s.Qty
	}
	var now []Product
	if err := db.Gorm().Order("id").Find(&now).Error; err != nil {
		t.Fatal(err)
	}
	for _, p := range now {
		if p.Stock < 0 || p.Stock+ordered[p.ID] != initial[p.ID] {
			t.Errorf("product %d: stock %d + ordered %d != initial %d", p.ID, p.Stock, ordered[p.ID], initial[p.ID])
		}
	}
}

// load is the client's side of the test: workers that read and order,
// and what they saw.
type load struct {
	client *http.Client
	ids    []Product
	start  time.Time

	lastOrder atomic.Int64 // unix nanoseconds of the last 201
	maxGap    atomic.Int64 // longest time between two 201s, in nanoseconds

	mu                                     sync.Mutex
	reads, readFails, stale                int
	ordersSent, replays                    int
	refused409, refused5xx, orderTransport int
	acked                                  map[string]uint64
	errs                                   map[string]int
	mismatch                               []string
}

func (l *load) fail(kind string) {
	if l.errs == nil {
		l.errs = map[string]int{}
	}
	l.errs[kind]++
}

func (l *load) worker(w int, stop <-chan struct{}) {
	rng := rand.New(rand.NewPCG(uint64(w), uint64(time.Now().UnixNano())))
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		default:
		}
		if rng.IntN(10) < 7 {
			l.read(rng)
			continue
		}
		key := fmt.Sprintf("chaos-%d-%d", w, i)
		p := l.ids[rng.IntN(len(l.ids))]
		body := orderBody([2]int{int(p.ID), 1 + rng.IntN(2)})
		l.order(key, body)
		if rng.IntN(5) == 0 { // sent twice, as a client that timed out would
			l.order(key, body)
		}
	}
}

func (l *load) read(rng *rand.Rand) {
	path := "/api/products"
	if rng.IntN(2) == 0 {
		path = fmt.Sprintf("/api/products/%d", l.ids[rng.IntN(len(l.ids))].ID)
	}
	resp, err := l.client.Get("http://shop" + path)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.reads++
	if err != nil {
		l.readFails++
		l.fail("read: " + errKind(err))
		return
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		l.readFails++
		l.fail(fmt.Sprintf("read: %d", resp.StatusCode))
		return
	}
	if strings.Contains(resp.Header.Get("Cache-Status"), "hit") {
		l.stale++
	}
}

func (l *load) order(key, body string) {
	req, _ := http.NewRequest("POST", "http://shop/api/orders", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(headerIdempotencyKey, key)
	resp, err := l.client.Do(req)
	var o Order
	status := 0
	if err == nil {
		status = resp.StatusCode
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if status == 201 {
			if jerr := json.Unmarshal(b, &o); jerr != nil || o.ID == 0 {
				status = -1
			}
		} else if !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/problem+json") {
			l.mu.Lock()
			l.mismatch = append(l.mismatch, fmt.Sprintf("order %s refused with %d but not as problem+json: %q", key, status, b))
			l.mu.Unlock()
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ordersSent++
	switch {
	case err != nil:
		l.orderTransport++
		l.fail("order: " + errKind(err))
	case status == 201:
		if prev, ok := l.acked[key]; ok {
			l.replays++
			if prev != o.ID {
				l.mismatch = append(l.mismatch, fmt.Sprintf("order %s acknowledged as %d, then as %d", key, prev, o.ID))
			}
		}
		l.acked[key] = o.ID
		now := time.Now().UnixNano()
		if gap := now - l.lastOrder.Swap(now); gap > l.maxGap.Load() {
			l.maxGap.Store(gap)
		}
	case status == 409:
		l.refused409++
	case status >= 500:
		l.refused5xx++
		l.fail(fmt.Sprintf("order: %d", status))
	default:
		l.mismatch = append(l.mismatch, fmt.Sprintf("order %s: status %d", key, status))
	}
}

func errKind(err error) string {
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 {
		s = s[i+2:]
	}
	return s
}

// stockUp opens the shop's database for the test's own checks, with stock
// enough for the whole run (an order refused for stock says nothing of
// the topology under test), and returns it with the products.
func stockUp(t *testing.T, dsn string) (*data.DB, []Product) {
	t.Helper()
	db, err := data.Open(context.Background(), data.Config{DSN: dsn, MaxOpenConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Gorm().Exec("UPDATE products SET stock = 100000").Error; err != nil {
		t.Fatal(err)
	}
	var products []Product
	if err := db.Gorm().Order("id").Find(&products).Error; err != nil {
		t.Fatal(err)
	}
	return db, products
}

// stopOnCleanup stops procs when the test ends, and shows the tail of each
// one's log if it failed.
func stopOnCleanup(t *testing.T, procs []*proc) {
	t.Cleanup(func() {
		for _, p := range procs {
			p.stop()
		}
		if t.Failed() {
			for _, p := range procs {
				t.Logf("--- %s log (tail):\n%s", p.name, tail(p.log, 30))
			}
		}
	})
}

// proc is one role of the shop as an OS process of its own.
type proc struct {
	t     *testing.T
	name  string
	bin   string
	args  []string
	env   []string
	ready string // a /readyz URL
	log   string

	cmd  *exec.Cmd
	done chan struct{}
}

func (p *proc) start() {
	p.t.Helper()
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		p.t.Fatal(err)
	}
	cmd := exec.Command(p.bin, p.args...)
	cmd.Env = p.env
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		p.t.Fatalf("%s: %v", p.name, err)
	}
	p.cmd, p.done = cmd, make(chan struct{})
	go func() {
		_ = cmd.Wait()
		f.Close()
		close(p.done)
	}()
}

func (p *proc) waitReady(within time.Duration) {
	p.t.Helper()
	c := &http.Client{Timeout: time.Second}
	defer c.CloseIdleConnections()
	wait.For(p.t, within, p.name+" to be ready", func() bool {
		select {
		case <-p.done:
			p.t.Fatalf("%s exited:\n%s", p.name, tail(p.log, 20))
		default:
		}
		resp, err := c.Get(p.ready)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
}

// kill sends SIGKILL to this process, by its PID, and waits for it.
func (p *proc) kill() {
	p.t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		p.t.Fatalf("kill %s: %v", p.name, err)
	}
	<-p.done
}

// stop ends the process gracefully (SIGTERM), or kills it after a while.
func (p *proc) stop() {
	if p.cmd == nil {
		return
	}
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.done
	}
}

func tail(path string, n int) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// cleanEnv is this process's environment without the settings that would
// change the shop's roles under the test, each admin listener on a port of
// its own.
func cleanEnv() []string {
	out := []string{testAdminListen}
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "THREETIER_") || strings.HasPrefix(kv, "DATABASE_URL=") {
			continue
		}
		out = append(out, kv)
	}
	return out
}

// freePorts finds n loopback ports free for TCP (and, for gossip, UDP).
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	var lns []net.Listener
	for len(ports) < n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		pc, err := net.ListenPacket("udp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			ln.Close()
			continue
		}
		pc.Close()
		lns = append(lns, ln)
		ports = append(ports, port)
	}
	for _, ln := range lns {
		ln.Close()
	}
	return ports
}

// buildShop builds the shop's binary once, into the test's directory.
func buildShop(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "shop")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, ".")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out.String())
	}
	return bin
}

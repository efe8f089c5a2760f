//go:build unix

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/threetier/threetier/balancer"
	"github.com/threetier/threetier/internal/pgtest"
	"github.com/threetier/threetier/internal/wait"
)

// TestDatabaseBlip runs two web and two app servers as processes over a
// private PostgreSQL server, drives reads and keyed orders through the web
// tier, and takes the database away twice. A fast restart
// (pg_ctl restart -m fast) must cost no read at all, and every order must
// be acknowledged exactly once; a 5 s outage gives 503s with Retry-After
// (reads of the catalogue are served stale) that end within 1 s of the
// database's return.
func TestDatabaseBlip(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the shop and starts a private PostgreSQL and four processes")
	}
	pg := pgtest.Start(t, "max_connections=60")
	bin := buildShop(t)
	env := append(cleanEnv(), "THREETIER_LOG_LEVEL=warn", "THREETIER_DATA_CONNECT_TIMEOUT=1s", "THREETIER_DATA_OP_TIMEOUT=3s")
	ports := freePorts(t, 4)
	addr := func(i int) string { return "127.0.0.1:" + strconv.Itoa(ports[i]) }
	apps, webs := []string{addr(0), addr(1)}, []string{addr(2), addr(3)}
	logs := t.TempDir()
	var procs []*proc
	for i, a := range apps {
		name := fmt.Sprintf("app-%d", i+1)
		procs = append(procs, &proc{t: t, name: name, bin: bin, env: env, ready: "http://" + a + "/readyz", log: logs + "/" + name + ".log",
			args: []string{"-role", "app", "-listen", a, "-db", pg.DSN(), "-name", name}})
	}
	for i, w := range webs {
		name := fmt.Sprintf("web-%d", i+1)
		procs = append(procs, &proc{t: t, name: name, bin: bin, env: env, ready: "http://" + w + "/readyz", log: logs + "/" + name + ".log",
			args: []string{"-role", "web", "-listen", w, "-backends", "http://" + apps[0] + ",http://" + apps[1], "-name", name}})
	}
	stopOnCleanup(t, procs)
	for _, p := range procs {
		p.start()
		p.waitReady(20 * time.Second)
	}

	db, products := stockUp(t, pg.DSN())

	// The client balances over the web servers and does not retry: what
	// it sees is what the web tier answered.
	front, err := balancer.New(balancer.Config{
		Name: "webs", Endpoints: []string{"http://" + webs[0], "http://" + webs[1]},
		Retry: balancer.RetryConfig{Attempts: 1},
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

	b := &blipLoad{client: client, products: products, acked: map[string]uint64{}}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Go(func() { b.worker(w, stop) })
	}
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		wg.Wait()
	}()
	under := func(n int) {
		target := b.count() + n
		wait.For(t, 30*time.Second, fmt.Sprintf("%d more requests", n), func() bool { return b.count() >= target })
	}

	under(300)
	restart := b.phase("fast restart")
	start := time.Now()
	pg.Restart()
	t.Logf("pg_ctl restart -m fast took %s", time.Since(start).Round(time.Millisecond))
	under(1000)

	outage := b.phase("5 s outage")
	down := time.Now()
	pg.Stop()
	accepting := make(chan time.Time, 1)
	go func() { accepting <- firstSession(ctx, pg.DSN()) }()
	// The outage itself: five seconds of load against no database.
	time.Sleep(5*time.Second - time.Since(down))
	pg.Start()
	back := <-accepting // pg_ctl start returns a little after that
	t.Logf("database down %s (pg_ctl start returned %s after the first session)",
		back.Sub(down).Round(time.Millisecond), time.Since(back).Round(time.Millisecond))
	under(1000)
	close(stop)
	wg.Wait()

	for _, ph := range b.phases {
		t.Log(ph.summary())
	}
	if restart.failedGets() != 0 {
		t.Errorf("the fast restart failed %d GETs, want 0", restart.failedGets())
	}
	if n := outage.statuses[http.StatusServiceUnavailable]; n == 0 {
		t.Errorf("the 5 s outage gave no 503: nothing was tested")
	}
	if outage.missingRetryAfter != 0 {
		t.Errorf("%d 503s of the outage came without Retry-After", outage.missingRetryAfter)
	}
	recovered := outage.lastFailure.Sub(back)
	t.Logf("outage: last failed answer %s after the database was back (the first one %s after it went down)",
		recovered.Round(time.Millisecond), outage.firstFailure.Sub(down).Round(time.Millisecond))
	if recovered > time.Second {
		t.Errorf("failures went on %s after the database was back, want within 1s", recovered.Round(time.Millisecond))
	}

	// Every order was acknowledged, exactly once, as the order in the
	// database with its key.
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, bad := range b.mismatch {
		t.Error(bad)
	}
	type row struct {
		ID             uint64
		IdempotencyKey string
	}
	var placed []row
	if err := db.Gorm().Raw("SELECT id, idempotency_key FROM orders WHERE idempotency_key LIKE 'blip-%'").Scan(&placed).Error; err != nil {
		t.Fatal(err)
	}
	byKey := map[string][]uint64{}
	for _, r := range placed {
		byKey[r.IdempotencyKey] = append(byKey[r.IdempotencyKey], r.ID)
	}
	for k, id := range b.acked {
		if got := byKey[k]; len(got) != 1 || got[0] != id {
			t.Errorf("order %s acknowledged as %d, in the database: %v", k, id, got)
		}
	}
	for k := range byKey {
		if _, ok := b.acked[k]; !ok {
			t.Errorf("order %s is in the database but was never acknowledged", k)
		}
	}
	t.Logf("%d orders acknowledged, %d in the database", len(b.acked), len(placed))
	if len(b.acked) < 20 {
		t.Errorf("only %d orders: too little load to judge", len(b.acked))
	}
}

// firstSession returns when a session with the database at dsn first
// opens: the moment the database is back.
func firstSession(ctx context.Context, dsn string) time.Time {
	for ctx.Err() == nil {
		cctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		conn, err := pgx.Connect(cctx, dsn)
		cancel()
		if err == nil {
			at := time.Now()
			_ = conn.Close(ctx)
			return at
		}
		time.Sleep(5 * time.Millisecond) // the next try of a polling client
	}
	return time.Now()
}

// blipLoad is the client side of TestDatabaseBlip: workers that read the
// catalogue and their orders and place keyed orders, sending each order's
// key again until it is acknowledged.
type blipLoad struct {
	client   *http.Client
	products []Product

	mu       sync.Mutex
	phases   []*blipPhase
	total    int
	acked    map[string]uint64
	ackedIDs []uint64
	mismatch []string
}

// blipPhase is what the clients saw from one blow on.
type blipPhase struct {
	name                      string
	gets, getFails, stale     int
	posts, postFails          int
	statuses                  map[int]int // of the failed answers; 0 for a transport error
	missingRetryAfter         int
	retryAfter                map[string]int // Retry-After values of the 503s
	firstFailure, lastFailure time.Time
}

func (b *blipLoad) phase(name string) *blipPhase {
	b.mu.Lock()
	defer b.mu.Unlock()
	ph := &blipPhase{name: name, statuses: map[int]int{}, retryAfter: map[string]int{}}
	b.phases = append(b.phases, ph)
	return ph
}

func (b *blipLoad) count() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.total
}

func (ph *blipPhase) failedGets() int { return ph.getFails }

func (ph *blipPhase) summary() string {
	codes := make([]int, 0, len(ph.statuses))
	for c := range ph.statuses {
		codes = append(codes, c)
	}
	sort.Ints(codes)
	var by []string
	for _, c := range codes {
		by = append(by, fmt.Sprintf("%d: %d", c, ph.statuses[c]))
	}
	return fmt.Sprintf("%s: %d GETs (%d failed, %d served stale), %d order POSTs (%d failed); failed by status {%s}; Retry-After of the 503s %v",
		ph.name, ph.gets, ph.getFails, ph.stale, ph.posts, ph.postFails, strings.Join(by, ", "), ph.retryAfter)
}

func (b *blipLoad) worker(w int, stop <-chan struct{}) {
	rng := rand.New(rand.NewPCG(uint64(w), uint64(time.Now().UnixNano())))
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		default:
		}
		if rng.IntN(5) > 0 {
			b.get(b.readPath(rng))
			continue
		}
		p := b.products[rng.IntN(len(b.products))]
		b.order(fmt.Sprintf("blip-%d-%d", w, i), orderBody([2]int{int(p.ID), 1 + rng.IntN(2)}))
	}
}

// readPath picks the catalogue, a product, or an order already placed
// (which has no stale copy to fall back on).
func (b *blipLoad) readPath(rng *rand.Rand) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch n := rng.IntN(3); {
	case n == 0 && len(b.ackedIDs) > 0:
		return fmt.Sprintf("/api/orders/%d", b.ackedIDs[rng.IntN(len(b.ackedIDs))])
	case n == 1:
		return fmt.Sprintf("/api/products/%d", b.products[rng.IntN(len(b.products))].ID)
	}
	return "/api/products"
}

func (b *blipLoad) get(path string) {
	resp, err := b.client.Get("http://shop" + path)
	status, stale := 0, false
	var hdr http.Header
	if err == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		status, hdr = resp.StatusCode, resp.Header
		stale = strings.Contains(hdr.Get("Cache-Status"), "hit")
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.total++
	ph := b.current()
	if ph == nil {
		return
	}
	ph.gets++
	if stale {
		ph.stale++
	}
	if status < 200 || status > 299 {
		ph.getFails++
		ph.failed(status, hdr)
	}
}

// order sends the order until it is acknowledged (or refused for what it
// is), pausing briefly after each failure as a client would.
func (b *blipLoad) order(key, body string) {
	for {
		req, _ := http.NewRequest("POST", "http://shop/api/orders", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set(headerIdempotencyKey, key)
		resp, err := b.client.Do(req)
		status := 0
		var hdr http.Header
		var o Order
		if err == nil {
			raw, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			status, hdr = resp.StatusCode, resp.Header
			if status == http.StatusCreated && (json.Unmarshal(raw, &o) != nil || o.ID == 0) {
				status = -1
			}
		}
		b.mu.Lock()
		b.total++
		if ph := b.current(); ph != nil {
			ph.posts++
			if status != http.StatusCreated {
				ph.postFails++
				ph.failed(status, hdr)
			}
		}
		switch {
		case status == http.StatusCreated:
			if prev, ok := b.acked[key]; ok && prev != o.ID {
				b.mismatch = append(b.mismatch, fmt.Sprintf("order %s acknowledged as %d, then as %d", key, prev, o.ID))
			}
			b.acked[key] = o.ID
			b.ackedIDs = append(b.ackedIDs, o.ID)
			b.mu.Unlock()
			return
		case status >= 400 && status < 500:
			b.mismatch = append(b.mismatch, fmt.Sprintf("order %s refused with %d", key, status))
			b.mu.Unlock()
			return
		}
		b.mu.Unlock()
		time.Sleep(50 * time.Millisecond)
	}
}

// current is the phase under way, or nil before the first blow; b.mu held.
func (b *blipLoad) current() *blipPhase {
	if len(b.phases) == 0 {
		return nil
	}
	return b.phases[len(b.phases)-1]
}

// failed records a failed answer (status 0: a transport error).
func (ph *blipPhase) failed(status int, hdr http.Header) {
	now := time.Now()
	if ph.firstFailure.IsZero() {
		ph.firstFailure = now
	}
	ph.lastFailure = now
	ph.statuses[status]++
	if status == http.StatusServiceUnavailable {
		if ra := hdr.Get("Retry-After"); ra != "" {
			ph.retryAfter[ra]++
		} else {
			ph.missingRetryAfter++
		}
	}
}

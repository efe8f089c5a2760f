package app

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/threetier/threetier/internal/httpx"
	"github.com/threetier/threetier/internal/wait"
)

// pools is a dependency of a known capacity, as a *data.DB reports its own.
type pools struct{ primary, standbys int }

func (p pools) Capacity() (int, int) { return p.primary, p.standbys }

// holder holds calls through a guard until released.
type holder struct {
	t       *testing.T
	g       *Guard
	release chan struct{}
	wg      sync.WaitGroup
}

func newHolder(t *testing.T, g *Guard) *holder {
	h := &holder{t: t, g: g, release: make(chan struct{})}
	t.Cleanup(h.done)
	return h
}

// hold makes n calls of c that stay in flight until done, and waits until
// the guard has them all in flight.
func (h *holder) hold(n int, c Call[int]) {
	h.t.Helper()
	inside := h.g.InFlight() + n
	for range n {
		h.wg.Go(func() {
			if _, err := c.Do(context.Background(), func(context.Context) (int, error) { <-h.release; return 1, nil }); err != nil {
				h.t.Errorf("held call: %v", err)
			}
		})
	}
	wait.For(h.t, 5*time.Second, "the held calls in flight", func() bool { return h.g.InFlight() == inside })
}

func (h *holder) done() {
	select {
	case <-h.release:
	default:
		close(h.release)
	}
	h.wg.Wait()
}

func quick(context.Context) (int, error) { return 1, nil }

// In front of a database, the guard admits as many calls as its primary's
// pool serves, of which writes may take all but a quarter: writers waiting
// on locks cannot take the reads' connections. The standbys' pools add to
// the reads.
func TestGuardFollowsTheCapacity(t *testing.T) {
	g := newTestGuard(t, GuardConfig{MaxWait: -1}, WithCapacity(pools{10, 0}))
	if c := g.Config(); c.MaxConcurrent != 10 || c.ReadReserve != 3 || c.MaxPerKey != 2 {
		t.Fatalf("config %d concurrent, %d reserved for reads, %d per key; want 10, 3, 2", c.MaxConcurrent, c.ReadReserve, c.MaxPerKey)
	}
	h := newHolder(t, g)
	write, read := Call[int]{Guard: g}, Call[int]{Guard: g, ReadOnly: true}
	h.hold(7, write)
	if _, err := write.Do(context.Background(), quick); !errors.Is(err, ErrBulkheadFull) {
		t.Fatalf("an eighth write: %v, want ErrBulkheadFull", err)
	}
	// The reads have the rest, and as many more as writes leave.
	h.hold(10, read)
	if _, err := read.Do(context.Background(), quick); !errors.Is(err, ErrBulkheadFull) {
		t.Fatalf("an eleventh read: %v, want ErrBulkheadFull", err)
	}
	if n := testutil.ToFloat64(g.m.rejected[rejectBulkhead]); n != 2 {
		t.Errorf("bulkhead rejections %v, want 2", n)
	}
	h.done()

	// A call made while serving a safe method reads; one that must not
	// be repeated, or made for another method, writes.
	get := httpx.WithRequestID(context.Background(), "r").(*httpx.RequestContext)
	get.SetMethod(http.MethodGet)
	post := httpx.WithRequestID(context.Background(), "w").(*httpx.RequestContext)
	post.SetMethod(http.MethodPost)
	for _, c := range []struct {
		call  Call[int]
		ctx   context.Context
		reads bool
	}{
		{Call[int]{}, get, true},
		{Call[int]{NotIdempotent: true}, get, false},
		{Call[int]{}, post, false},
		{Call[int]{Idempotent: true}, post, false},
		{Call[int]{ReadOnly: true}, post, true},
		{Call[int]{}, context.Background(), false},
	} {
		if got := c.call.reads(c.ctx); got != c.reads {
			t.Errorf("%+v under %s: reads %v, want %v", c.call, httpx.RequestMethod(c.ctx), got, c.reads)
		}
	}

	// Standbys add to the reads only; an explicit MaxConcurrent wins.
	g = newTestGuard(t, GuardConfig{MaxConcurrent: 4, MaxWait: -1}, WithCapacity(pools{10, 20}))
	if c := g.Config(); c.MaxConcurrent != 4 || c.ReadReserve != 1 || c.MaxPerKey != 1 {
		t.Fatalf("config %d concurrent, %d reserved for reads, %d per key; want 4, 1, 1", c.MaxConcurrent, c.ReadReserve, c.MaxPerKey)
	}
	h = newHolder(t, g)
	h.hold(3, Call[int]{Guard: g})
	h.hold(24, Call[int]{Guard: g, ReadOnly: true})
	if _, err := (Call[int]{Guard: g, ReadOnly: true}).Do(context.Background(), quick); !errors.Is(err, ErrBulkheadFull) {
		t.Fatalf("a read past the primary's and the standbys' pools: %v, want ErrBulkheadFull", err)
	}
	h.done()

	// Guards that share the pools share their capacity.
	g = newTestGuard(t, GuardConfig{}, WithCapacity(SharedCapacity(pools{10, 4}, 2)))
	if c := g.Config(); c.MaxConcurrent != 5 || c.ReadReserve != 2 || g.bulkhead.max != 7 || g.writes.max != 3 {
		t.Errorf("a half of 10 and 4: %d concurrent, %d reserved for reads, %d reads and %d writes at once; want 5, 2, 7, 3",
			c.MaxConcurrent, c.ReadReserve, g.bulkhead.max, g.writes.max)
	}

	// A pool of one has no room for a reserve; a guard without a
	// capacity keeps one bulkhead for every call.
	for _, c := range []struct {
		name string
		opts []GuardOption
		max  int
	}{{"a pool of one", []GuardOption{WithCapacity(pools{1, 0})}, 1}, {"no capacity", nil, DefaultMaxConcurrent}} {
		g := newTestGuard(t, GuardConfig{}, c.opts...)
		if cfg := g.Config(); cfg.MaxConcurrent != c.max || cfg.ReadReserve != -1 || g.writes != nil {
			t.Errorf("%s: %d concurrent, %d reserved for reads (a bulkhead for writes: %v); want %d, none",
				c.name, cfg.MaxConcurrent, cfg.ReadReserve, g.writes != nil, c.max)
		}
	}
}

// A full bulkhead holds a call back for MaxWait at most (DefaultMaxWait
// unless set), then refuses it: a client hears 503 soon, not after its
// whole timeout.
func TestFullBulkheadRefusesWithinMaxWait(t *testing.T) {
	for _, c := range []struct {
		maxWait, want time.Duration
	}{{0, DefaultMaxWait}, {30 * time.Millisecond, 30 * time.Millisecond}, {-1, 0}} {
		g := newTestGuard(t, GuardConfig{MaxConcurrent: 1, MaxWait: c.maxWait})
		h := newHolder(t, g)
		h.hold(1, Call[int]{Guard: g})
		begun := time.Now()
		_, err := Do(context.Background(), g, quick)
		took := time.Since(begun)
		if !errors.Is(err, ErrBulkheadFull) || took < c.want || took > c.want+time.Second {
			t.Errorf("MaxWait %s: %v after %s, want ErrBulkheadFull after %s", c.maxWait, err, took, c.want)
		}
		if p := ProblemFor(err); p.Status != http.StatusServiceUnavailable || p.RetryAfter <= 0 {
			t.Errorf("a full bulkhead answers %d (Retry-After %s), want 503 with Retry-After", p.Status, p.RetryAfter)
		}
		h.done()
	}
}

// Calls that name the same key have at most MaxPerKey in flight; the
// others wait for one of them, holding no slot of the bulkhead, within the
// guard's Timeout, and are then refused with ErrKeyBusy. Calls for other
// keys go on.
func TestKeysCapCallsPerKey(t *testing.T) {
	g := newTestGuard(t, GuardConfig{MaxConcurrent: 10, MaxPerKey: 2, Timeout: 10 * time.Second})
	hot := Call[int]{Guard: g, Keys: []string{"product:1"}}
	h := newHolder(t, g)
	h.hold(2, hot)
	waiting := make(chan error, 3)
	for range 3 {
		go func() { _, err := hot.Do(context.Background(), quick); waiting <- err }()
	}
	keySlots := func(key string) *keySlots {
		g.keys.mu.Lock()
		defer g.keys.mu.Unlock()
		return g.keys.inUse[key]
	}
	wait.For(t, 5*time.Second, "three calls to wait for the key", func() bool { return keySlots("product:1").waiting.Load() == 3 })
	if g.InFlight() != 2 {
		t.Errorf("%d calls in flight while three wait for their key, want 2: a waiter holds no slot", g.InFlight())
	}
	// Other keys, and calls naming none, have the rest of the bulkhead.
	if _, err := (Call[int]{Guard: g, Keys: []string{"product:2", "product:3"}}).Do(context.Background(), quick); err != nil {
		t.Errorf("a call for other keys: %v", err)
	}
	if _, err := Do(context.Background(), g, quick); err != nil {
		t.Errorf("a call naming no key: %v", err)
	}
	// The waiters get the key as the holders end.
	h.done()
	for range 3 {
		if err := <-waiting; err != nil {
			t.Errorf("a waiting call: %v, want the freed key", err)
		}
	}
	if keySlots("product:1") != nil || keySlots("product:2") != nil {
		t.Error("keys kept after every call naming them ended")
	}

	// A waiter gives up after the guard's Timeout.
	g = newTestGuard(t, GuardConfig{MaxConcurrent: 10, MaxPerKey: 1, Timeout: 50 * time.Millisecond})
	hot.Guard = g
	h = newHolder(t, g)
	h.hold(1, hot)
	begun := time.Now()
	_, err := (Call[int]{Guard: g, Keys: []string{"product:2", "product:1"}}).Do(context.Background(), quick)
	if !errors.Is(err, ErrKeyBusy) || !Unavailable(err) {
		t.Fatalf("a call that waited for a held key: %v, want ErrKeyBusy", err)
	}
	if took := time.Since(begun); took < 50*time.Millisecond {
		t.Errorf("refused after %s, want after the Timeout (50ms)", took)
	}
	if p := ProblemFor(err); p.Status != http.StatusServiceUnavailable || p.RetryAfter <= 0 {
		t.Errorf("a busy key answers %d (Retry-After %s), want 503 with Retry-After", p.Status, p.RetryAfter)
	}
	if n := testutil.ToFloat64(g.m.rejected[rejectKey]); n != 1 {
		t.Errorf("key_busy rejections %v, want 1", n)
	}
}

// A full bulkhead whose calls keep ending is waited for, however long it
// takes them all, within the Timeout: a burst drains. One whose calls do
// not end refuses after MaxWait (TestFullBulkheadRefusesWithinMaxWait).
func TestFullBulkheadDrainsABurst(t *testing.T) {
	const calls, hold, maxWait = 12, 30 * time.Millisecond, 200 * time.Millisecond
	g := newTestGuard(t, GuardConfig{MaxConcurrent: 1, MaxWait: maxWait, Timeout: 10 * time.Second})
	begun := time.Now()
	var wg sync.WaitGroup
	for range calls {
		wg.Go(func() {
			if _, err := Do(context.Background(), g, func(context.Context) (int, error) { time.Sleep(hold); return 1, nil }); err != nil {
				t.Errorf("a call of the burst: %v", err)
			}
		})
	}
	wg.Wait()
	// The last call waited for eleven others, well past MaxWait.
	if took := time.Since(begun); took < calls*hold {
		t.Fatalf("the burst took %s, less than its %d calls of %s one after the other", took, calls, hold)
	}
}

// A call that names several keys holds none while it waits for one: a
// call for a key it took and gave back goes on meanwhile.
func TestKeysAreNotHeldWhileWaiting(t *testing.T) {
	l := newKeyLimit(1)
	ctx := context.Background()
	holdB, ok := l.acquire(ctx, []string{"b"}, 0)
	if !ok {
		t.Fatal("a free key refused")
	}
	both := make(chan bool, 1)
	go func() {
		release, ok := l.acquire(ctx, []string{"b", "a", "b"}, 5*time.Second)
		if ok {
			release()
		}
		both <- ok
	}()
	wait.For(t, 5*time.Second, "the call for both keys to wait", func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.inUse["b"] != nil && l.inUse["b"].refs == 2 && l.inUse["b"].waiting.Load() == 1
	})
	releaseA, ok := l.acquire(ctx, []string{"a"}, 0)
	if !ok {
		t.Fatal("a key given back by a waiting call is refused")
	}
	releaseA()
	holdB()
	if !<-both {
		t.Fatal("the call for both keys did not get them once they were free")
	}
	if len(l.inUse) != 0 {
		t.Errorf("%d keys kept, want none", len(l.inUse))
	}
}

package ratelimit

import (
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func newLimiter(t testing.TB, cfg Config) *Limiter {
	t.Helper()
	l, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

var t0 = time.Unix(1_700_000_000, 0)

func TestBucketAllowsTheBurstThenTheRate(t *testing.T) {
	l := newLimiter(t, Config{Rate: 10, Burst: 5})
	for i := range 5 {
		if d := l.Allow("a", t0); !d.Allowed || d.Remaining != 4-i {
			t.Fatalf("request %d: %+v, want allowed with %d left", i, d, 4-i)
		}
	}
	d := l.Allow("a", t0)
	if d.Allowed || d.RetryAfter != 100*time.Millisecond {
		t.Fatalf("over the burst: %+v, want refused with Retry-After 100ms", d)
	}
	if d := l.Allow("b", t0); !d.Allowed {
		t.Fatal("another key shares the first one's bucket")
	}
	if d := l.Allow("a", t0.Add(100*time.Millisecond)); !d.Allowed {
		t.Fatalf("a token later: %+v", d)
	}
	// The next second accepts the rate, no more.
	ok := 0
	for i := range 101 {
		if l.Allow("a", t0.Add(100*time.Millisecond+time.Duration(i)*10*time.Millisecond)).Allowed {
			ok++
		}
	}
	if ok != 10 {
		t.Fatalf("accepted %d in a second at 100/s with a limit of 10/s", ok)
	}
	if l.Limited() == 0 {
		t.Fatal("refusals not counted")
	}
}

func TestHeadersFollowTheDraft(t *testing.T) {
	l := newLimiter(t, Config{Rate: 100, Burst: 100})
	d := l.Allow("a", t0)
	h := d.Headers()
	if len(h) != 2 || h[0] != [2]string{"RateLimit-Policy", `"default";q=100;w=1`} || h[1] != [2]string{"RateLimit", `"default";r=99;t=1`} {
		t.Fatalf("headers %q", h)
	}
	l = newLimiter(t, Config{Rate: 0.5, Burst: 2, Policy: "door"})
	l.Allow("a", t0)
	l.Allow("a", t0)
	d = l.Allow("a", t0)
	got := fmt.Sprint(d.Headers())
	want := `[[RateLimit-Policy "door";q=2;w=4] [RateLimit "door";r=0;t=4]]`
	if d.Allowed || got != want || d.RetryAfter != 2*time.Second {
		t.Fatalf("refusal: %v headers\n%s, want\n%s", d.Allowed, got, want)
	}
	if h := (Decision{Allowed: true}).Headers(); h != nil {
		t.Fatalf("no limit, headers %q", h)
	}
}

func TestCapEvictsIdleKeysFirst(t *testing.T) {
	l := newLimiter(t, Config{Rate: 1, Burst: 3, MaxKeys: shardCount * 4})
	// A busy key, its bucket below full, among idle ones that fill the table.
	for range 3 {
		l.Allow("busy", t0)
	}
	for i := range shardCount * 40 {
		l.Allow("k"+strconv.Itoa(i), t0.Add(time.Hour))
	}
	if n := l.Len(); n > shardCount*4 {
		t.Fatalf("%d keys over a cap of %d", n, shardCount*4)
	}
	// Keys that emptied their bucket stay while idle ones go.
	l2 := newLimiter(t, Config{Rate: 1, Burst: 1, MaxKeys: shardCount})
	now := t0
	for i := range shardCount * 20 {
		k := "k" + strconv.Itoa(i)
		l2.Allow(k, now) // empties its bucket: not idle for a second
		if i%2 == 0 {
			now = now.Add(2 * time.Second) // the earlier keys are full again
		}
	}
	if n := l2.Len(); n > shardCount {
		t.Fatalf("%d keys over a cap of %d", n, shardCount)
	}
}

func TestKeysWithConnectionsAreNotEvicted(t *testing.T) {
	l := newLimiter(t, Config{ConnLimit: 2, MaxKeys: shardCount})
	for i := range 2 {
		if !l.Acquire("10.0.0.1", t0) {
			t.Fatalf("connection %d refused under the cap", i)
		}
	}
	if l.Acquire("10.0.0.1", t0) {
		t.Fatal("a third connection over a cap of 2")
	}
	for i := range shardCount * 20 {
		l.Acquire("k"+strconv.Itoa(i), t0)
		l.Release("k" + strconv.Itoa(i))
	}
	if n := l.Conns("10.0.0.1"); n != 2 {
		t.Fatalf("connections of a held key: %d after a flood, want 2", n)
	}
	l.Release("10.0.0.1")
	if !l.Acquire("10.0.0.1", t0) {
		t.Fatal("refused after a release")
	}
	if l.ConnsRefused() != 1 {
		t.Fatalf("refused %d, want 1", l.ConnsRefused())
	}
}

func TestBlocks(t *testing.T) {
	l := newLimiter(t, Config{Rate: 100})
	l.Block("bad", t0.Add(time.Minute))
	l.Block("worse", time.Time{})
	d := l.Allow("bad", t0)
	if d.Allowed || !d.Blocked || d.RetryAfter != time.Minute {
		t.Fatalf("blocked key: %+v", d)
	}
	if l.Allow("worse", t0.Add(24*time.Hour)).Allowed || l.Acquire("worse", t0) {
		t.Fatal("a block without end ended")
	}
	if !l.Allow("bad", t0.Add(time.Minute)).Allowed {
		t.Fatal("a block outlived its end")
	}
	if bs := l.Blocks(t0.Add(2 * time.Minute)); len(bs) != 1 || bs[0].Key != "worse" || !bs[0].Until.IsZero() {
		t.Fatalf("blocks %+v", bs)
	}
	l.Unblock("worse")
	if !l.Allow("worse", t0).Allowed {
		t.Fatal("unblocked key refused")
	}
	cs := l.TakeBlockChanges()
	if len(cs) != 3 || !cs[1].Forever || !cs[2].Lifted {
		t.Fatalf("changes %+v", cs)
	}
	if len(l.TakeBlockChanges()) != 0 {
		t.Fatal("changes taken twice")
	}
	// A peer's change applies and is not sent on again.
	l.ApplyBlock(BlockChange{Key: "peer", Forever: true})
	if l.Allow("peer", t0).Allowed || len(l.TakeBlockChanges()) != 0 {
		t.Fatal("a peer's block: not applied, or queued again")
	}
}

func TestDeltasConsumePeerTokens(t *testing.T) {
	a := newLimiter(t, Config{Rate: 10, Burst: 10})
	b := newLimiter(t, Config{Rate: 10, Burst: 10})
	a.Share(true)
	for range 7 {
		a.Allow("c", t0)
	}
	a.Allow("d", t0)
	ds := a.TakeDeltas(nil, 100)
	if len(ds) != 2 {
		t.Fatalf("deltas %+v", ds)
	}
	if again := a.TakeDeltas(nil, 100); len(again) != 0 {
		t.Fatalf("deltas taken twice: %+v", again)
	}
	b.ApplyDeltas(ds, t0)
	if d := b.Allow("c", t0); !d.Allowed || d.Remaining != 2 {
		t.Fatalf("after the peer's 7: %+v, want 2 left", d)
	}
	// Debt is bounded by the burst.
	b.ApplyDeltas([]Delta{{Key: "c", Count: 1000}}, t0)
	if d := b.Allow("c", t0.Add(2*time.Second)); !d.Allowed {
		t.Fatalf("a debt past the burst: %+v", d)
	}
	// The cap on keys per call keeps the busiest.
	for i := range 50 {
		a.Allow("k"+strconv.Itoa(i), t0)
	}
	for range 3 {
		a.Allow("busy", t0)
	}
	if ds := a.TakeDeltas(nil, 20); len(ds) != 20 || ds[0] != (Delta{Key: "busy", Count: 3}) {
		t.Fatalf("took %d of max 20, first %+v", len(ds), ds[0])
	}
	if n := len(a.TakeDeltas(nil, 100)); n != 0 {
		t.Fatalf("%d left after a call dropped the lightest", n)
	}
	// Unshared, no counts pile up, and those not taken are forgotten.
	a.Allow("late", t0)
	a.Share(false)
	for i := range 10 * shardCount {
		a.Allow("k"+strconv.Itoa(i), t0.Add(time.Hour))
	}
	for i := range a.shards {
		if len(a.shards[i].dirty) != 0 {
			t.Fatal("counts kept for peers nobody sends them to")
		}
	}
	a.Share(true)
	if ds := a.TakeDeltas(nil, 100); len(ds) != 0 {
		t.Fatalf("counts from before sharing: %+v", ds)
	}
}

func TestLevelsCarryARestartedNode(t *testing.T) {
	a := newLimiter(t, Config{Rate: 10, Burst: 10})
	for range 10 {
		a.Allow("c", t0)
	}
	a.Allow("light", t0)
	a.Allow("light", t0)
	fresh := newLimiter(t, Config{Rate: 10, Burst: 10})
	ls := a.Levels(t0, 1)
	if len(ls) != 1 || ls[0].Key != "c" {
		t.Fatalf("levels %+v, want the emptiest only", ls)
	}
	fresh.MergeLevels(ls, t0)
	fresh.MergeLevels(ls, t0)
	if fresh.Allow("c", t0).Allowed {
		t.Fatal("a restarted node forgot an empty bucket")
	}
}

func TestWireIsBoundedAndRoundTrips(t *testing.T) {
	var ds []Delta
	for i := range 1000 {
		ds = append(ds, Delta{Key: strings.Repeat("x", i%MaxKeyLen+1), Count: uint32(i + 1)})
	}
	msgs := EncodeDeltas([]byte{9}, ds, 512)
	var back []Delta
	for _, m := range msgs {
		if len(m) > 512 || m[0] != 9 {
			t.Fatalf("message of %d bytes, kind %d", len(m), m[0])
		}
		got, err := DecodeDeltas(m[1:])
		if err != nil {
			t.Fatal(err)
		}
		back = append(back, got...)
	}
	if fmt.Sprint(back) != fmt.Sprint(ds) {
		t.Fatal("deltas changed on the way")
	}
	if _, err := DecodeDeltas([]byte{200, 1, 'a'}); err == nil {
		t.Fatal("a truncated message decoded")
	}
	cs := []BlockChange{{Key: "a", Forever: true}, {Key: "b", Lifted: true}, {Key: "c", Until: t0.Add(90 * time.Second)}}
	msgs = EncodeBlocks(nil, cs, t0, 512)
	got, err := DecodeBlocks(msgs[0], t0.Add(time.Hour))
	if err != nil || len(got) != 3 || !got[0].Forever || !got[1].Lifted || !got[2].Until.Equal(t0.Add(time.Hour+90*time.Second)) {
		t.Fatalf("blocks %+v, %v", got, err)
	}
}

func TestLongKeysAreHashed(t *testing.T) {
	l := newLimiter(t, Config{Rate: 1, Burst: 1})
	long := strings.Repeat("k", 10_000)
	l.Allow(long, t0)
	if l.Allow(long, t0).Allowed {
		t.Fatal("a long key has no bucket of its own")
	}
	for _, c := range l.Top(10, t0.Add(500*time.Millisecond)) {
		if len(c.Key) > MaxKeyLen {
			t.Fatalf("key of %d bytes kept", len(c.Key))
		}
	}
}

func TestTopListsTheBusiestClients(t *testing.T) {
	l := newLimiter(t, Config{Rate: 5, Burst: 5})
	for range 20 {
		l.Allow("heavy", t0)
	}
	for range 3 {
		l.Allow("light", t0)
	}
	top := l.Top(1, t0.Add(time.Second))
	if len(top) != 1 || top[0].Key != "heavy" || top[0].Rate != 20 || top[0].Limited != 15 {
		t.Fatalf("top %+v", top)
	}
}

func TestConcurrentUse(t *testing.T) {
	l := newLimiter(t, Config{Rate: 1000, Burst: 100, ConnLimit: 4, MaxKeys: 1000})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 2000 {
				k := "k" + strconv.Itoa((g*7+i)%1500)
				now := time.Now()
				l.Allow(k, now)
				if l.Acquire(k, now) {
					l.Release(k)
				}
				if i%100 == 0 {
					l.Share(i%200 == 0)
					l.ApplyDeltas(l.TakeDeltas(nil, 50), now)
					l.Block(k, now.Add(time.Millisecond))
					l.Top(5, now)
					l.Levels(now, 10)
				}
			}
		})
	}
	wg.Wait()
	if n := l.Len(); n > 1000+shardCount {
		t.Fatalf("%d keys over a cap of 1000", n)
	}
}

// BenchmarkTableMemory reports what a full table costs: a million keys
// of an IPv4 address's length, with half a million more evicted.
func BenchmarkTableMemory(b *testing.B) {
	const keys = 1_000_000
	for range b.N {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		l := newLimiter(b, Config{Rate: 10, MaxKeys: keys})
		now := time.Now()
		for i := range keys + keys/2 {
			l.Allow(fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255)+strconv.Itoa(i>>24), now)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		n := l.Len()
		if n > keys+shardCount {
			b.Fatalf("%d keys over a cap of %d", n, keys)
		}
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(n), "bytes/key")
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), "MiB/1e6keys")
		runtime.KeepAlive(l)
	}
}

func benchKeys() []string {
	keys := make([]string, 1024)
	for i := range keys {
		keys[i] = fmt.Sprintf("192.0.2.%d:%d", i%256, i)
	}
	return keys
}

func BenchmarkAllow(b *testing.B) {
	l := newLimiter(b, Config{Rate: 1e9, Burst: 1e9})
	keys := benchKeys()
	now := time.Now()
	b.ResetTimer()
	for i := range b.N {
		l.Allow(keys[i&1023], now)
	}
}

func BenchmarkAllowParallel(b *testing.B) {
	l := newLimiter(b, Config{Rate: 1e9, Burst: 1e9})
	benchParallel(b, l)
}

// BenchmarkAllowSharedParallel counts for a cluster too, which takes the
// counts every 100 ms.
func BenchmarkAllowSharedParallel(b *testing.B) {
	l := newLimiter(b, Config{Rate: 1e9, Burst: 1e9})
	l.Share(true)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		var buf []Delta
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				buf = l.TakeDeltas(buf[:0], 4096)
			}
		}
	}()
	benchParallel(b, l)
	close(stop)
	<-done
}

func benchParallel(b *testing.B, l *Limiter) {
	keys := benchKeys()
	now := time.Now()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			l.Allow(keys[i&1023], now)
			i++
		}
	})
}

func TestPoliciesCountApartAndTravelByName(t *testing.T) {
	cfg := Config{Rate: 100, Burst: 10, Policies: []Policy{{Name: "api", Rate: 1, Burst: 2}}}
	a, b := newLimiter(t, cfg), newLimiter(t, cfg)
	api, ok := a.PolicyIndex("api")
	if !ok || api != 1 {
		t.Fatalf("PolicyIndex(api) = %d, %v", api, ok)
	}
	a.Share(true)
	for i := range 2 {
		if d := a.AllowPolicy(api, "c", t0); !d.Allowed || d.Policy() != `"api";q=2;w=2` {
			t.Fatalf("request %d under api: %+v", i, d)
		}
	}
	if d := a.AllowPolicy(api, "c", t0); d.Allowed || d.RetryAfter != time.Second {
		t.Fatalf("over api's burst: %+v, want refused for 1s", d)
	}
	if d := a.Allow("c", t0); !d.Allowed || d.Remaining != 9 || d.Policy() != `"default";q=10;w=1` {
		t.Fatalf("the door's bucket after api's: %+v, want its own, full", d)
	}
	ds := a.TakeDeltas(nil, 10)
	if len(ds) != 2 {
		t.Fatalf("deltas %+v, want one per policy", ds)
	}
	b.ApplyDeltas(ds, t0)
	if d := b.AllowPolicy(api, "c", t0); d.Allowed {
		t.Fatalf("the peer's api bucket after 2 requests there: %+v", d)
	}
	if d := b.Allow("c", t0); !d.Allowed || d.Remaining != 8 {
		t.Fatalf("the peer's door bucket: %+v, want 8 left", d)
	}
	// A restarted node takes both levels.
	c := newLimiter(t, cfg)
	c.MergeLevels(b.Levels(t0, 10), t0)
	if d := c.AllowPolicy(api, "c", t0); d.Allowed {
		t.Fatalf("a restarted node's api bucket: %+v", d)
	}
	// A policy the node does not know, and a client key posing as a
	// policy's, are left alone.
	other := newLimiter(t, Config{Rate: 100, Burst: 10})
	other.ApplyDeltas(ds, t0)
	if n := other.Len(); n != 1 {
		t.Fatalf("%d keys after deltas of an unknown policy, want the door's one", n)
	}
	if k := NormalizeKey("\x00api\x00c"); k[0] == 0 {
		t.Fatalf("a key starting with NUL kept as %q", k)
	}
}

func TestPoliciesAreValidated(t *testing.T) {
	for _, ps := range [][]Policy{
		{{Name: "", Rate: 1}},
		{{Name: "a\x00b", Rate: 1}},
		{{Name: strings.Repeat("a", MaxPolicyLen+1), Rate: 1}},
		{{Name: "a", Rate: 0}},
		{{Name: "a", Rate: 1, Burst: -1}},
		{{Name: "a", Rate: 1}, {Name: "a", Rate: 2}},
	} {
		if _, err := New(Config{Policies: ps}); err == nil {
			t.Errorf("New accepted policies %+v", ps)
		}
	}
}

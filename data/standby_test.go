package data

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"gorm.io/gorm"

	"github.com/threetier/threetier/internal/obs"
	"github.com/threetier/threetier/internal/pgtest"
	"github.com/threetier/threetier/internal/readafter"
	"github.com/threetier/threetier/internal/wait"
	"github.com/threetier/threetier/tier"
)

// openStandby starts a private primary and a streaming standby of it
// replaying delay behind, and opens them as primary and replica, with the
// test migrations applied and replayed.
func openStandby(t testing.TB, delay time.Duration, rc ReplicaConfig, opts ...Option) (*DB, *pgtest.Server) {
	t.Helper()
	primary := pgtest.Start(t)
	standby := primary.Standby(0)
	if rc.PollInterval == 0 {
		rc.PollInterval = 20 * time.Millisecond
	}
	db := openTest(t, Config{DSN: primary.DSN(), Replicas: []string{standby.DSN()}, Replica: rc}, opts...)
	wait.For(t, 30*time.Second, "the standby to replay the migrations", func() bool {
		var table *string
		err := db.replicas[0].pool.QueryRow("SELECT to_regclass('products')::text").Scan(&table)
		return err == nil && table != nil
	})
	standby.SetApplyDelay(delay)
	return db, standby
}

// onStandby reports whether a read with ctx was served by a standby.
func onStandby(t testing.TB, db *DB, ctx context.Context) bool {
	t.Helper()
	var recovering bool
	if err := db.WithContext(ctx).Raw("SELECT pg_is_in_recovery()").Scan(&recovering).Error; err != nil {
		t.Fatal(err)
	}
	return recovering
}

// readAfter is a context whose reads must see pos.
func readAfter(pos tier.Position) context.Context {
	return readafter.With(context.Background(), readafter.New(pos))
}

// A write followed at once by a read that carries its position sees the
// write, with the standby a second behind; a read without it is served by
// the standby, and so is the read with it once the standby has replayed it.
func TestReadAfterOnStandby(t *testing.T) {
	db, _ := openStandby(t, time.Second, ReplicaConfig{})
	r := db.replicas[0]
	wait.For(t, 10*time.Second, "the standby in reads", func() bool { return r.state.Load() == replicaIn && r.replay.Load() > 0 })

	var stale, fresh int
	var last tier.Position
	for i := range 100 {
		w := readafter.New(0)
		wctx := readafter.With(context.Background(), w)
		p := Product{Name: fmt.Sprintf("mug %d", i), Stock: i}
		var err error
		if i%2 == 0 { // a single statement, and a transaction
			err = Insert(wctx, db, &p)
		} else {
			err = db.Tx(wctx, func(tx *gorm.DB) error { return tx.Create(&p).Error })
		}
		if err != nil {
			t.Fatal(err)
		}
		if w.Written() <= last {
			t.Fatalf("write %d: position %s, not past the previous %s", i, w.Written(), last)
		}
		last = w.Written()
		if got, err := Get[Product](readAfter(last), db, p.ID); err == nil && got.Stock == i {
			fresh++
		}
		var n int64
		if err := db.WithContext(readAfter(last)).Model(&Product{}).Where("id = ?", p.ID).Count(&n).Error; err != nil || n != 1 {
			t.Errorf("write %d: GORM read with its position: %d rows, %v", i, n, err)
		}
		if _, err := Get[Product](context.Background(), db, p.ID); errors.Is(err, ErrNotFound) {
			stale++
		}
	}
	if fresh != 100 {
		t.Errorf("reads carrying the position saw the write %d of 100 times", fresh)
	}
	if stale < 90 {
		t.Errorf("reads without the position missed the write only %d of 100 times: not served by the standby a second behind", stale)
	}
	if !onStandby(t, db, context.Background()) {
		t.Error("a read without a position was not served by the standby")
	}
	if onStandby(t, db, readAfter(last)) {
		t.Error("a read after the last write was served by the standby that has not replayed it")
	}
	wait.For(t, 10*time.Second, "the standby to replay the last write", func() bool { return r.replay.Load() >= uint64(last) })
	if !onStandby(t, db, readAfter(last)) {
		t.Error("a read after a write the standby has replayed was not served by it")
	}
	if r.reads.Load() < 100 {
		t.Errorf("replica_reads_total %d, want the reads without a position", r.reads.Load())
	}
}

// A standby stopped under read load fails no read and stalls none longer
// than 500ms; started again, it is back in reads once it has caught up.
func TestStandbyStoppedUnderLoad(t *testing.T) {
	db, standby := openStandby(t, 0, ReplicaConfig{})
	r := db.replicas[0]
	if err := db.WithContext(context.Background()).Create(&Product{Name: "kettle", Stock: 1}).Error; err != nil {
		t.Fatal(err)
	}
	wait.For(t, 10*time.Second, "the standby in reads, with the row replayed", func() bool {
		var n int64
		return r.state.Load() == replicaIn && onStandby(t, db, context.Background()) &&
			db.WithContext(context.Background()).Model(&Product{}).Where("name = ?", "kettle").Count(&n).Error == nil && n == 1
	})

	ctx, cancel := context.WithCancel(context.Background())
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		gap     time.Duration
		reads   atomic.Int64
		failed  []error
		readers = 4
	)
	for range readers {
		wg.Go(func() {
			last := time.Now()
			for ctx.Err() == nil {
				var p Product
				err := db.WithContext(context.Background()).Where("name = ?", "kettle").Take(&p).Error
				now := time.Now()
				mu.Lock()
				if err != nil {
					failed = append(failed, err)
				} else {
					gap = max(gap, now.Sub(last))
					last = now
				}
				mu.Unlock()
				reads.Add(1)
			}
		})
	}
	defer func() { cancel(); wg.Wait() }()
	wait.For(t, 10*time.Second, "reads under way", func() bool { return reads.Load() > 200 })
	standby.Stop()
	wait.For(t, 10*time.Second, "the standby out of reads", func() bool { return r.state.Load() == replicaDown })
	before := reads.Load()
	wait.For(t, 10*time.Second, "reads on the primary", func() bool { return reads.Load() > before+500 })
	if err := db.WithContext(context.Background()).Create(&Product{Name: "written while down", Stock: 1}).Error; err != nil {
		t.Fatal(err)
	}
	cancel()
	wg.Wait()
	if len(failed) > 0 {
		t.Errorf("%d of %d reads failed with the standby stopped; first: %v", len(failed), reads.Load(), failed[0])
	}
	maxGap := 500 * time.Millisecond
	if raceEnabled {
		maxGap = time.Second // the race detector's slowness, beside other packages' tests
	}
	if gap > maxGap {
		t.Errorf("longest gap between reads %s, want at most %s", gap, maxGap)
	}
	t.Logf("%d reads, longest gap %s, %d rerun on the primary", reads.Load(), gap, r.fallbacks.Load())

	standby.Start()
	wait.For(t, 30*time.Second, "the standby back in reads", func() bool { return r.state.Load() == replicaIn })
	if !onStandby(t, db, context.Background()) {
		t.Error("the standby is in reads again but did not serve a read")
	}
	var p Product
	if err := db.WithContext(context.Background()).Where("name = ?", "written while down").Take(&p).Error; err != nil {
		t.Errorf("the standby came back into reads before replaying what it missed: %v", err)
	}
}

// A standby further behind than MaxLag is out of reads until it catches
// up; its metrics say which state it is in, how far behind it is and how
// many reads it was sent.
func TestStandbyLagging(t *testing.T) {
	reg := prometheus.NewRegistry()
	db, standby := openStandby(t, 0, ReplicaConfig{MaxLag: 300 * time.Millisecond}, WithRegistry(reg))
	r := db.replicas[0]
	wait.For(t, 10*time.Second, "the standby in reads", func() bool { return r.state.Load() == replicaIn })
	checkReplicaState(t, reg, "in")
	standby.SetApplyDelay(2 * time.Second)
	n := 0
	write := func() {
		n++
		if err := db.WithContext(context.Background()).Create(&Product{Name: fmt.Sprintf("tick %d", n), Stock: 1}).Error; err != nil {
			t.Fatal(err)
		}
	}
	wait.For(t, 20*time.Second, "the lagging standby out of reads", func() bool { write(); return r.state.Load() == replicaLagging })
	if onStandby(t, db, context.Background()) {
		t.Error("a standby lagging past MaxLag served a read")
	}
	if lag := time.Duration(r.lag.Load()); lag <= 300*time.Millisecond {
		t.Errorf("lag %s while out for lagging", lag)
	}
	checkReplicaState(t, reg, "lagging")
	if lag := replicaSeries(t, reg, "replica_lag_seconds", ""); lag <= 0.3 {
		t.Errorf("replica_lag_seconds %g while out for lagging, want over MaxLag's 0.3", lag)
	}
	standby.SetApplyDelay(0)
	wait.For(t, 20*time.Second, "the standby back in reads", func() bool { return r.state.Load() == replicaIn })
	if !onStandby(t, db, context.Background()) {
		t.Error("the standby caught up but served no read")
	}
	checkReplicaState(t, reg, "in")
	if reads := replicaSeries(t, reg, "replica_reads_total", ""); reads < 1 || reads != float64(r.reads.Load()) {
		t.Errorf("replica_reads_total %g, want the %d reads sent to the standby", reads, r.reads.Load())
	}
}

// checkReplicaState asserts that replica0's replica_state series has 1 for
// want and 0 for every other state.
func checkReplicaState(t *testing.T, reg *prometheus.Registry, want string) {
	t.Helper()
	for _, state := range stateNames {
		v := replicaSeries(t, reg, "replica_state", state)
		if (state == want) != (v == 1) || v != 0 && v != 1 {
			t.Errorf("replica_state{state=%q} is %g with the standby %s", state, v, want)
		}
	}
}

// replicaSeries reads the value of threetier_data_<name> for replica0 (and
// the given state, when not ""); the test fails if reg has no such series.
func replicaSeries(t *testing.T, reg *prometheus.Registry, name, state string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != obs.Namespace+"_data_"+name {
			continue
		}
		for _, m := range f.GetMetric() {
			if labelIs(m, "pool", "replica0") && (state == "" || labelIs(m, "state", state)) {
				if g := m.GetGauge(); g != nil {
					return g.GetValue()
				}
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("no series %s for replica0 (state %q)", name, state)
	return 0
}

package data

import (
	"context"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	gormlogger "gorm.io/gorm/logger"

	"github.com/threetier/threetier/internal/pgtest"
	"github.com/threetier/threetier/internal/readafter"
	"github.com/threetier/threetier/internal/wait"
)

// The data tier side by side with raw pgx on the same PostgreSQL (the
// database users would otherwise talk to directly). examples/bench/data.sh
// runs them and prints the ratios.

func benchSetup(b *testing.B) (*DB, *pgxpool.Pool, context.Context) {
	b.Helper()
	db, pool, _, ctx := benchSetupGorm(b)
	return db, pool, ctx
}

// benchSetupGorm adds plain GORM (gorm.Open on the same server, no default
// write transaction) to show what the data tier adds to GORM itself.
func benchSetupGorm(b *testing.B) (*DB, *pgxpool.Pool, *gorm.DB, context.Context) {
	b.Helper()
	// Commits do not wait for the disk: the figures compare the client
	// paths, not the (shared, noisy) disk's flush time, which dominates
	// and swamps a single-row insert otherwise.
	dsn := withParam(b, pgSchema(b), "synchronous_commit", "off")
	db := openTest(b, Config{DSN: dsn})
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(pool.Close)
	g, err := gorm.Open(postgres.Open(dsn), &gorm.Config{SkipDefaultTransaction: true, Logger: gormlogger.Discard})
	if err != nil {
		b.Fatal(err)
	}
	sqlDB, _ := g.DB()
	b.Cleanup(func() { _ = sqlDB.Close() })
	return db, pool, g, ctx
}

func BenchmarkPKRead(b *testing.B) {
	db, pool, g, ctx := benchSetupGorm(b)
	p := Product{Name: "widget", Stock: 7}
	if err := db.Gorm().Create(&p).Error; err != nil {
		b.Fatal(err)
	}
	runImpls(b, []impl{
		{"data", func(b *testing.B) {
			defer reportCPU(b)()
			for b.Loop() {
				var got Product
				if err := db.WithContext(ctx).Take(&got, p.ID).Error; err != nil || got.Stock != 7 {
					b.Fatal(err)
				}
			}
		}},
		{"typed", func(b *testing.B) {
			defer reportCPU(b)()
			for b.Loop() {
				got, err := Get[Product](ctx, db, p.ID)
				if err != nil || got.Stock != 7 {
					b.Fatal(err)
				}
			}
		}},
		{"gorm", func(b *testing.B) {
			defer reportCPU(b)()
			for b.Loop() {
				var got Product
				if err := g.WithContext(ctx).Take(&got, p.ID).Error; err != nil || got.Stock != 7 {
					b.Fatal(err)
				}
			}
		}},
		{"pgx", func(b *testing.B) {
			defer reportCPU(b)()
			for b.Loop() {
				var got Product
				err := pool.QueryRow(ctx, "SELECT id, name, stock FROM products WHERE id = $1", p.ID).Scan(&got.ID, &got.Name, &got.Stock)
				if err != nil || got.Stock != 7 {
					b.Fatal(err)
				}
			}
		}},
	})
}

func BenchmarkInsert(b *testing.B) {
	db, pool, g, ctx := benchSetupGorm(b)
	now := time.Now()
	runImpls(b, []impl{
		{"data", func(b *testing.B) {
			defer reportCPU(b)()
			i := 0
			for b.Loop() {
				i++
				e := Event{Kind: "bench", Payload: "data", Amount: int64(i), CreatedAt: now}
				if err := db.WithContext(ctx).Create(&e).Error; err != nil || e.ID == 0 {
					b.Fatal(err)
				}
			}
		}},
		{"typed", func(b *testing.B) {
			defer reportCPU(b)()
			i := 0
			for b.Loop() {
				i++
				e := Event{Kind: "bench", Payload: "typed", Amount: int64(i), CreatedAt: now}
				if err := Insert(ctx, db, &e); err != nil || e.ID == 0 {
					b.Fatal(err)
				}
			}
		}},
		{"gorm", func(b *testing.B) {
			defer reportCPU(b)()
			i := 0
			for b.Loop() {
				i++
				e := Event{Kind: "bench", Payload: "gorm", Amount: int64(i), CreatedAt: now}
				if err := g.WithContext(ctx).Create(&e).Error; err != nil || e.ID == 0 {
					b.Fatal(err)
				}
			}
		}},
		{"pgx", func(b *testing.B) {
			defer reportCPU(b)()
			i := 0
			for b.Loop() {
				i++
				var id int64
				err := pool.QueryRow(ctx, "INSERT INTO events (kind, payload, amount, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
					"bench", "pgx", int64(i), now).Scan(&id)
				if err != nil || id == 0 {
					b.Fatal(err)
				}
			}
		}},
	})
}

func BenchmarkBulkInsert10k(b *testing.B) {
	db, pool, ctx := benchSetup(b)
	const n = 10_000
	rows := makeEvents(n, "bench")
	now := time.Now()
	for i := range rows {
		rows[i].CreatedAt = now
	}
	runImpls(b, []impl{
		{"data", func(b *testing.B) {
			defer reportCPU(b)()
			for b.Loop() {
				if got, err := db.BulkInsert(ctx, rows); err != nil || got != n {
					b.Fatal(got, err)
				}
			}
		}},
		{"pgx", func(b *testing.B) {
			defer reportCPU(b)()
			for b.Loop() {
				src := make([][]any, n)
				for i, e := range rows {
					src[i] = []any{e.Kind, e.Payload, e.Amount, e.CreatedAt}
				}
				got, err := pool.CopyFrom(ctx, pgx.Identifier{"events"}, []string{"kind", "payload", "amount", "created_at"}, pgx.CopyFromRows(src))
				if err != nil || got != n {
					b.Fatal(got, err)
				}
			}
		}},
		{"gorm_batches", func(b *testing.B) {
			defer reportCPU(b)()
			for b.Loop() {
				batch := make([]Event, n)
				copy(batch, rows)
				if err := db.WithContext(ctx).CreateInBatches(batch, 1000).Error; err != nil {
					b.Fatal(err)
				}
			}
		}},
	})
}

// An impl is one implementation of a benchmarked operation.
type impl struct {
	name string
	fn   func(b *testing.B)
}

// runImpls runs the implementations as sub-benchmarks impl=name, in
// reverse order when THREETIER_BENCH_REVERSE is set. data.sh reverses
// every other round: on a shared machine, swapping two implementations run
// back to back moved their ratio by some 10%.
func runImpls(b *testing.B, impls []impl) {
	if os.Getenv("THREETIER_BENCH_REVERSE") != "" {
		slices.Reverse(impls)
	}
	for _, i := range impls {
		b.Run("impl="+i.name, i.fn)
	}
}

// reportCPU adds the process's CPU time per operation (user and system, all
// goroutines: the driver's too) to a benchmark's figures. Wall time on a
// shared machine swings with the neighbours' load; CPU time much less.
func reportCPU(b *testing.B) func() {
	start := cpuTime()
	return func() {
		if b.N > 0 {
			b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
		}
	}
}

// BenchmarkReadRouting is the choice of the pool a read runs on, with
// two replicas in reads: without a position, and with one each replica
// has passed (a comparison with the polled positions).
func BenchmarkReadRouting(b *testing.B) {
	db := &DB{replicas: []*replica{{name: "replica0"}, {name: "replica1"}}}
	for _, r := range db.replicas {
		r.replay.Store(1 << 40)
	}
	plain := context.Background()
	after := readafter.With(plain, readafter.New(1<<39))
	for _, c := range []struct {
		name string
		ctx  context.Context
	}{{"without", plain}, {"position", after}} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				if db.readReplica(c.ctx) == nil {
					b.Fatal("read sent to the primary")
				}
			}
		})
	}
}

// BenchmarkStandbyRead is Get on a real streaming standby, without a
// position and with one it has replayed.
func BenchmarkStandbyRead(b *testing.B) {
	db, _ := openStandby(b, 0, ReplicaConfig{})
	ra := readafter.New(0)
	p := Product{Name: "widget", Stock: 7}
	if err := Insert(readafter.With(context.Background(), ra), db, &p); err != nil {
		b.Fatal(err)
	}
	r := db.replicas[0]
	wait.For(b, 10*time.Second, "the standby to replay the insert", func() bool {
		return r.state.Load() == replicaIn && r.replay.Load() >= uint64(ra.Written())
	})
	for _, c := range []struct {
		name string
		ctx  context.Context
	}{{"without", context.Background()}, {"position", readAfter(ra.Written())}} {
		b.Run(c.name, func(b *testing.B) {
			reads := r.reads.Load()
			for b.Loop() {
				if _, err := Get[Product](c.ctx, db, p.ID); err != nil {
					b.Fatal(err)
				}
			}
			if r.reads.Load()-reads < uint64(b.N) {
				b.Fatal("reads went to the primary")
			}
		})
	}
}

// BenchmarkReadsPerStandby is reads per second, by Get from parallel
// goroutines, with the reads on the primary (standbys=0) and spread over
// one and two streaming standbys of it, all three servers on this machine.
// The standbys are told apart by the reads each served.
//
//	go test -run '^$' -bench BenchmarkReadsPerStandby -benchtime 3s ./data/
func BenchmarkReadsPerStandby(b *testing.B) {
	primary := pgtest.Start(b)
	standbys := []*pgtest.Server{primary.Standby(0), primary.Standby(0)}
	ra := readafter.New(0)
	p := Product{Name: "widget", Stock: 7}
	for n := range len(standbys) + 1 {
		var dsns []string
		for _, s := range standbys[:n] {
			dsns = append(dsns, s.DSN())
		}
		db := openTest(b, Config{DSN: primary.DSN(), Replicas: dsns, Replica: ReplicaConfig{PollInterval: 20 * time.Millisecond}})
		if n == 0 {
			if err := Insert(readafter.With(context.Background(), ra), db, &p); err != nil {
				b.Fatal(err)
			}
		}
		wait.For(b, 30*time.Second, "the standbys to replay the insert", func() bool {
			for _, r := range db.replicas {
				if r.state.Load() != replicaIn || r.replay.Load() < uint64(ra.Written()) {
					return false
				}
			}
			return true
		})
		b.Run(fmt.Sprintf("standbys=%d", n), func(b *testing.B) {
			before := replicaReads(db)
			b.SetParallelism(8) // reads wait on the network: more goroutines than cores
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := Get[Product](context.Background(), db, p.ID); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "reads/s")
			var served uint64
			for i, reads := range replicaReads(db) {
				served += reads - before[i]
				if reads == before[i] && b.N >= 100 { // each has 1 chance in n
					b.Errorf("standby %d served none of %d reads", i, b.N)
				}
			}
			if n > 0 && served != uint64(b.N) {
				b.Errorf("the standbys served %d of %d reads", served, b.N)
			}
		})
	}
}

// replicaReads is how many reads each of db's replicas has been sent.
func replicaReads(db *DB) []uint64 {
	var reads []uint64
	for _, r := range db.replicas {
		reads = append(reads, r.reads.Load())
	}
	return reads
}

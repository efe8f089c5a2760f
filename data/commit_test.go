package data

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"gorm.io/gorm"

	"github.com/threetier/threetier/internal/obs"
	"github.com/threetier/threetier/internal/syncbuf"
	"github.com/threetier/threetier/internal/tmpfs"
	"github.com/threetier/threetier/tier"
)

// commitFailures reads threetier_data_commit_failures_total{class} from reg.
func commitFailures(t *testing.T, reg *prometheus.Registry, class string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != obs.Namespace+"_data_commit_failures_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			if labelIs(m, "class", class) {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func labelIs(m *dto.Metric, name, value string) bool {
	for _, l := range m.GetLabel() {
		if l.GetName() == name && l.GetValue() == value {
			return true
		}
	}
	return false
}

// On a full disk, the commit that fails is logged at error with the
// driver's cause, counted as disk_full, and answered as unavailable.
func TestFullDiskCommitIsLoggedWithItsCause(t *testing.T) {
	dir := tmpfs.Mount(t, "1m")
	var logs syncbuf.Buffer
	log, err := tier.NewLogger(tier.LogConfig{Level: "info"}, &logs)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	db := openTest(t, Config{Path: filepath.Join(dir, "full.db")}, WithLogger(log), WithRegistry(reg))
	if err := db.Gorm().Exec("CREATE TABLE blobs (b BLOB)").Error; err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var failed error
	for i := 0; i < 64 && failed == nil; i++ { // 4 MB: four times the disk
		failed = db.Tx(ctx, func(tx *gorm.DB) error {
			return tx.Exec("INSERT INTO blobs (b) VALUES (randomblob(65536))").Error
		})
	}
	if !errors.Is(failed, ErrUnavailable) {
		t.Fatalf("writing past a full disk: %v, want ErrUnavailable", failed)
	}
	if n := commitFailures(t, reg, "disk_full"); n < 1 {
		t.Fatalf("commit failures counted as disk_full: %v (error %v)\nlogs:\n%s", n, failed, logs.String())
	}
	line := ""
	for l := range strings.Lines(logs.String()) {
		if strings.Contains(l, `msg="commit failed"`) {
			line = l
		}
	}
	if !strings.Contains(line, "level=ERROR") || !strings.Contains(line, "class=disk_full") || !strings.Contains(line, "full") {
		t.Fatalf("no error line naming the full disk; logs:\n%s", logs.String())
	}
	t.Logf("%s", strings.TrimSpace(line))
	if IsFailure(failed) {
		t.Errorf("a full disk counts as a failure of the database, which would open a breaker over the reads too: %v", failed)
	}
}

// A full disk is a failure of writes only: while commits fail for want
// of space, reads answer, and fast.
func TestFullDiskLeavesReadsFast(t *testing.T) {
	dir := tmpfs.Mount(t, "1m")
	db := openTest(t, Config{Path: filepath.Join(dir, "full.db")})
	if err := db.Gorm().Exec("CREATE TABLE blobs (b BLOB)").Error; err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	product := Product{Name: "kept", Stock: 1}
	if err := db.WithContext(ctx).Create(&product).Error; err != nil {
		t.Fatal(err)
	}
	fill := func() error {
		return db.Tx(ctx, func(tx *gorm.DB) error {
			return tx.Exec("INSERT INTO blobs (b) VALUES (randomblob(65536))").Error
		})
	}
	var failed error
	for i := 0; i < 64 && failed == nil; i++ { // 4 MB: four times the disk
		failed = fill()
	}
	if commitFailureClass(failed) != "disk_full" {
		t.Fatalf("writing past a full disk: %v, want a full disk", failed)
	}

	// Writes go on failing beside the readers.
	const readers, reads = 3, 200
	var writes, full atomic.Int64
	stop := make(chan struct{})
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		for {
			select {
			case <-stop:
				return
			default:
			}
			writes.Add(1)
			if err := fill(); commitFailureClass(err) == "disk_full" {
				full.Add(1)
			}
		}
	}()
	took := make([]time.Duration, readers*reads)
	var wg sync.WaitGroup
	for r := range readers {
		wg.Go(func() {
			for i := range reads {
				begun := time.Now()
				p, err := Get[Product](ctx, db, product.ID)
				took[r*reads+i] = time.Since(begun)
				if err != nil || p.Name != "kept" {
					t.Errorf("read while the disk is full: %+v, %v", p, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	<-wrote
	slices.Sort(took)
	p99 := took[len(took)*99/100]
	t.Logf("%d reads beside %d writes (%d failed for a full disk): p50 %s p99 %s max %s", len(took), writes.Load(), full.Load(),
		took[len(took)/2], p99, took[len(took)-1])
	if full.Load() == 0 {
		t.Fatal("no write failed for a full disk while the readers read: nothing was tested")
	}
	if p99 > 50*time.Millisecond && !raceEnabled {
		t.Errorf("reads while the disk is full: p99 %s, want under 50ms", p99)
	}
}

func TestCommitFailureClasses(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		{&Error{Kind: ErrRetryable, Err: errors.New("could not serialize access")}, "conflict"},
		{&Error{Kind: ErrUnavailable, Err: errors.New("connection refused")}, "unavailable"},
		{context.DeadlineExceeded, "timeout"},
		{errors.New("something else"), "other"},
	} {
		if got := commitFailureClass(c.err); got != c.want {
			t.Errorf("%v: %s, want %s", c.err, got, c.want)
		}
	}
}

package data

import (
	"context"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"gorm.io/gorm"

	"github.com/threetier/threetier/internal/obs"
	"github.com/threetier/threetier/internal/syncbuf"
	"github.com/threetier/threetier/tier"
)

// mountSmallDisk mounts a tmpfs of size on a directory of its own, until
// the test ends; the test is skipped where mounting is not allowed.
func mountSmallDisk(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here (needs root): %v %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount: %v %s", err, out)
		}
	})
	return dir
}

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
	dir := mountSmallDisk(t, "1m")
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

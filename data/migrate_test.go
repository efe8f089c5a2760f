package data

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// envMigrateChild, when set to a DSN, makes the test binary a child process
// that migrates that database and prints how many migrations it applied.
const envMigrateChild = "THREETIER_DATA_TEST_MIGRATE_CHILD"

// slowMigration holds the advisory lock long enough for every process to
// be waiting on it; like 00001 it would fail if run twice.
var slowMigration = map[string]string{
	"postgres/00003_slow.sql": "-- +goose Up\nSELECT pg_sleep(1);\nCREATE TABLE audit (id bigserial PRIMARY KEY);\n-- +goose Down\nDROP TABLE audit;\n",
}

func migrateChild() int {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	fsys, err := migrationsFS(slowMigration)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	db, err := Open(ctx, Config{DSN: os.Getenv(envMigrateChild)}, WithMigrations(fsys))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer db.Close()
	n, err := db.Migrate(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("applied %d\n", n)
	return 0
}

// Four processes migrate the same database at once: each migration is
// applied exactly once, by whichever process got the lock first.
func TestMigrateFromConcurrentProcessesAppliesOnce(t *testing.T) {
	dsn := pgSchema(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const procs = 4
	cmds := make([]*exec.Cmd, procs)
	outs := make([]*bytes.Buffer, procs)
	for i := range cmds {
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), envMigrateChild+"="+dsn)
		outs[i] = new(bytes.Buffer)
		cmd.Stdout = outs[i]
		cmd.Stderr = outs[i]
		cmds[i] = cmd
	}
	for _, cmd := range cmds {
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
	}
	total := 0
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Errorf("process %d: %v\n%s", i, err, outs[i])
			continue
		}
		var n int
		if _, err := fmt.Sscanf(strings.TrimSpace(outs[i].String()), "applied %d", &n); err != nil {
			t.Errorf("process %d printed %q", i, outs[i])
		}
		total += n
	}
	if total != 3 {
		t.Errorf("the processes applied %d migrations in all, want 3", total)
	}

	db := openTest(t, Config{DSN: dsn})
	var rows []struct {
		VersionID int64
		N         int
	}
	err := db.Gorm().Raw(`SELECT version_id, count(*) AS n FROM ` + MigrationTable + ` WHERE version_id > 0 GROUP BY version_id ORDER BY version_id`).Scan(&rows).Error
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(rows); got != "[{1 1} {2 1} {3 1}]" {
		t.Errorf("versions recorded (version, times) %s, want each of 1..3 once", got)
	}
}

func TestMigrateIsIdempotent(t *testing.T) {
	dialects(t, func(t *testing.T, cfg Config) {
		db := openTest(t, cfg) // Start applied them
		n, err := db.Migrate(context.Background())
		if err != nil || n != 0 {
			t.Errorf("second Migrate: %d, %v; want 0, nil", n, err)
		}
		if !db.Gorm().Migrator().HasTable("events") {
			t.Error("no events table")
		}
	})
}

func TestMigrateWithoutMigrations(t *testing.T) {
	ctx := context.Background()
	db, err := Open(ctx, Config{Path: t.TempDir() + "/x.db"})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Migrate(ctx); !errors.Is(err, ErrNoMigrations) {
		t.Errorf("Migrate without migrations: %v", err)
	}
	if err := db.Start(ctx); err != nil {
		t.Errorf("Start without migrations: %v", err)
	}
	// A broken migration fails Start with the file's error, and leaves the
	// version where it was.
	db2, err := Open(ctx, Config{Path: t.TempDir() + "/y.db"}, WithMigrations(testMigrations(t, map[string]string{
		"sqlite/00003_bad.sql": "-- +goose Up\nCREATE TABLE oops (;\n",
	})))
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	if err := db2.Start(ctx); err == nil || !strings.Contains(err.Error(), "00003_bad.sql") {
		t.Errorf("Start with a broken migration: %v", err)
	}
	var v int64
	if err := db2.Gorm().Raw("SELECT max(version_id) FROM " + MigrationTable).Scan(&v).Error; err != nil || v != 2 {
		t.Errorf("version after the failure: %d, %v; want 2", v, err)
	}
}

// An instance waiting for another's migrations waits as long as its context
// allows, not lock_timeout: that bounds the statements of the service, and
// a migration may well run longer.
func TestMigrateWaitsForTheLockBeyondLockTimeout(t *testing.T) {
	dsn := pgSchema(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := Open(ctx, Config{DSN: dsn, LockTimeout: 50 * time.Millisecond}, WithMigrations(testMigrations(t, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	holder, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close(context.Background())
	if _, err := holder.Exec(ctx, `SELECT pg_advisory_lock(`+lockKey+`)`); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := db.Migrate(ctx)
		done <- err
	}()
	// Hold the lock until Migrate has waited for it ten times lock_timeout.
	deadline := time.Now().Add(20 * time.Second)
	for waited := false; !waited; {
		select {
		case err := <-done:
			t.Fatalf("Migrate returned while another session held the lock: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("Migrate never waited on the advisory lock")
		}
		err := holder.QueryRow(ctx, `SELECT count(*) > 0 FROM pg_locks l JOIN pg_stat_activity a USING (pid)
			WHERE l.locktype = 'advisory' AND NOT l.granted AND a.query_start < clock_timestamp() - interval '500 ms'`).Scan(&waited)
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := holder.Exec(ctx, `SELECT pg_advisory_unlock(`+lockKey+`)`); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Migrate after the lock was released: %v", err)
	}
	// The lock went with the migrations: the next caller takes it at once.
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
}

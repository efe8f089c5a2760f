package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A bad command line is one line on stderr, exit 2, and nothing written.
func TestRejectsBadCommandLines(t *testing.T) {
	root := checkout(t)
	for _, c := range []struct {
		args []string
		says string
	}{
		{[]string{"./svc"}, "-module is required"},
		{[]string{"-module", "example.com/svc"}, "no directory"},
		{[]string{"-module", "Example.com/svc!", "./svc"}, `-module "Example.com/svc!"`},
		{[]string{"-module", "orders", "./svc"}, "dot in first path element"},
		{[]string{"-module", "example.com/svc", "-resource", "line-items", "./svc"}, `-resource "line-items": want a name of lowercase letters`},
		{[]string{"-module", "example.com/svc", "-resource", "2items", "./svc"}, `-resource "2items"`},
		{[]string{"-module", "example.com/svc", "-resource", "main", "./svc"}, "the service has a file of that name"},
		{[]string{"-module", "example.com/svc", "-postgress", "./svc"}, "flag provided but not defined: -postgress"},
		{[]string{"-module", "example.com/svc", "./svc", "./other"}, `unexpected argument "./other"`},
		{[]string{"-module", "example.com/svc", "-replace", t.TempDir(), "./svc"}, "no go.mod there"},
		{[]string{"-module", "example.com/svc", "-replace", filepath.Join(root, "examples", "new", "template"), "./svc"}, "no go.mod there"},
		// Run from a checkout there is no release to require.
		{[]string{"-module", "example.com/svc", "./svc"}, "-replace DIR is needed"},
	} {
		dir := t.TempDir()
		args := make([]string, len(c.args))
		for i, a := range c.args {
			args[i] = strings.ReplaceAll(a, "./svc", filepath.Join(dir, "svc"))
		}
		var stdout, stderr strings.Builder
		code := run(args, &stdout, &stderr)
		msg := stderr.String()
		if code != 2 || !strings.Contains(msg, c.says) || strings.Count(msg, "\n") != 1 || !strings.HasPrefix(msg, "new: ") {
			t.Errorf("%v: exit %d, stderr %q; want 2 and one line saying %s", c.args, code, msg, c.says)
		}
		if _, err := os.Stat(filepath.Join(dir, "svc")); err == nil {
			t.Errorf("%v: wrote the directory", c.args)
		}
	}
}

// Flags may follow the directory, and -h is help, not an error.
func TestReadsFlagsAfterTheDirectoryAndHelp(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "svc")
	var stdout, stderr strings.Builder
	if code := run([]string{dir, "-module", "example.com/svc", "-replace", checkout(t), "-resource", "orders"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "orders.go")); err != nil {
		t.Error(err)
	}
	stderr.Reset()
	if code := run([]string{"-h"}, &stdout, &stderr); code != 0 || !strings.Contains(stderr.String(), "-front-door") {
		t.Errorf("-h: exit %d, %s", code, stderr.String())
	}
}

// Without -force, a directory that holds anything is refused and left as
// it was; with -force, the service is written over it.
func TestNeverOverwritesWithoutForce(t *testing.T) {
	dir := t.TempDir()
	readme := filepath.Join(dir, "README.md")
	if err := os.WriteFile(readme, []byte("mine\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"-module", "example.com/svc", "-replace", checkout(t), dir}
	var stdout, stderr strings.Builder
	if code := run(args, &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), "is not empty") {
		t.Fatalf("into a non-empty directory: exit %d, %s", code, stderr.String())
	}
	if b, _ := os.ReadFile(readme); string(b) != "mine\n" {
		t.Fatalf("README.md overwritten: %q", b)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("wrote %d entries into the refused directory", len(entries)-1)
	}

	stderr.Reset()
	if code := run(append([]string{"-force"}, args...), &stdout, &stderr); code != 0 {
		t.Fatalf("-force: exit %d, %s", code, stderr.String())
	}
	if b, _ := os.ReadFile(readme); !strings.HasPrefix(string(b), "# svc\n") {
		t.Fatalf("-force left README.md as %q", b)
	}
	if info, err := os.Stat(filepath.Join(dir, ".ci", "run")); err != nil || info.Mode().Perm()&0o100 == 0 {
		t.Errorf(".ci/run: %v, want an executable", info)
	}
}

// Even past the emptiness check (a file that appears while writing), a
// file is created exclusively.
func TestWriteCreatesFilesExclusively(t *testing.T) {
	dir := t.TempDir()
	files := []file{{path: "a/b.txt", body: []byte("new"), mode: 0o644}}
	if err := write(dir, files, false); err != nil {
		t.Fatal(err)
	}
	if err := writeFile(filepath.Join(dir, "a", "b.txt"), file{body: []byte("again"), mode: 0o644}, os.O_WRONLY|os.O_CREATE|os.O_EXCL); !os.IsExist(err) {
		t.Fatalf("second exclusive write: %v, want exists", err)
	}
}

func TestNames(t *testing.T) {
	for module, want := range map[string]string{
		"example.com/orders":         "orders",
		"example.com/shop/v2":        "shop",
		"github.com/Acme/Order_API":  "order-api",
		"example.com/orders.service": "orders-service",
	} {
		if got := serviceName(module); got != want {
			t.Errorf("serviceName(%q) = %q, want %q", module, got, want)
		}
	}
	for resource, want := range map[string]string{
		"items": "Item", "orders": "Order", "categories": "Category", "boxes": "Box",
		"addresses": "Address", "branches": "Branch", "data": "Data", "status": "Status",
	} {
		if got := (spec{Resource: resource}).Type(); got != want {
			t.Errorf("Type of %q = %q, want %q", resource, got, want)
		}
	}
}

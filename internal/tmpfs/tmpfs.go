// Package tmpfs gives tests a small file system of their own, to fill up:
// the full disk a database must survive.
package tmpfs

import (
	"os/exec"
	"testing"
)

// Mount mounts a tmpfs of size ("1m") on a directory of its own, until
// the test ends; the test is skipped where mounting is not allowed.
func Mount(t testing.TB, size string) string {
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

package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// write puts files under dir, making it if needed. Without force, dir must
// be empty or absent, and each file is created exclusively, so that no
// existing file is ever overwritten; with force, files that exist are
// replaced.
func write(dir string, files []file, force bool) error {
	if !force {
		entries, err := os.ReadDir(dir)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		if len(entries) > 0 {
			return fmt.Errorf("%s is not empty: choose a new directory, or give -force to write over what it holds", dir)
		}
	}
	flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
	if force {
		flags = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	}
	for _, f := range files {
		name := filepath.Join(dir, filepath.FromSlash(f.path))
		if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
			return err
		}
		if err := writeFile(name, f, flags); err != nil {
			return err
		}
	}
	return nil
}

func writeFile(name string, f file, flags int) error {
	out, err := os.OpenFile(name, flags, f.mode)
	if err != nil {
		return err
	}
	if _, err := out.Write(f.body); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	// The mode given to OpenFile is cut by the umask, and kept by a file
	// that existed: .ci/run must be executable either way.
	return os.Chmod(name, f.mode)
}

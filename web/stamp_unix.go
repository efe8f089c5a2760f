//go:build unix

package web

import (
	"io/fs"
	"syscall"
)

// inode returns the file's inode number, so that a file replaced by rename
// with the same size and mtime is still noticed.
func inode(fi fs.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Ino)
	}
	return 0
}

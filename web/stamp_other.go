//go:build !unix

package web

import "io/fs"

func inode(fs.FileInfo) uint64 { return 0 }

//go:build !linux

package web

import (
	"errors"
	"syscall"
)

const corkSupported = false

func setCork(syscall.RawConn, bool) error { return errors.ErrUnsupported }

package logline

import (
	"io"
	"sync"
)

// LockedWriter serializes the Writes to w. A logger's slog handler and its
// access line encoder each write whole lines but under locks of their own;
// writing both through one LockedWriter keeps their lines from interleaving.
type LockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

// NewLockedWriter returns w behind a lock.
func NewLockedWriter(w io.Writer) *LockedWriter { return &LockedWriter{w: w} }

func (l *LockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

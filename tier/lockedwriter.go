package tier

import (
	"io"
	"sync"
)

// lockedWriter serializes the Writes to w. A logger's slog handler and its
// access line encoder each write whole lines but under locks of their own;
// writing both through one lockedWriter keeps their lines from interleaving.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

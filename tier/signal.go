package tier

import (
	"context"
	"os/signal"
	"syscall"
)

// SignalContext is for main: the context it returns ends at the first SIGINT
// or SIGTERM, so that Run stops the tiers gracefully. Call stop to release
// the signals; a second signal after that kills the process as usual.
// The library itself never installs signal handlers.
func SignalContext(parent context.Context) (ctx context.Context, stop context.CancelFunc) {
	return signal.NotifyContext(parent, syscall.SIGINT, syscall.SIGTERM)
}

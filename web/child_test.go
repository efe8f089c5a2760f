package web

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/threetier/threetier/tier"
)

// serveEnv, set in its environment, makes the test binary a web tier
// configured from the THREETIER_WEB_* variables instead of a test run, so
// that a test can measure a server process of its own.
const serveEnv = "THREETIER_WEB_TEST_SERVE"

// serveChild serves until its standard input closes, having printed its
// address on the first line, and returns the exit code.
func serveChild() int {
	var cfg Config
	if err := tier.LoadEnv(EnvPrefix, &cfg); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	s, err := New(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if err := s.Start(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println(s.Addr())
	_, _ = io.Copy(io.Discard, os.Stdin)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Stop(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

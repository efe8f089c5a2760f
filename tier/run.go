package tier

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// DefaultStopTimeout bounds each tier's graceful stop when a Runner does not
// set its own.
const DefaultStopTimeout = 30 * time.Second

// A Runner starts tiers in order and stops them in reverse. The zero value is
// ready to use.
type Runner struct {
	// StopTimeout bounds the Stop of each tier; zero means DefaultStopTimeout.
	StopTimeout time.Duration
	// Logger receives lifecycle events; nil means no logging.
	Logger *slog.Logger
	// Started, when set, is called once every tier is ready, before Run waits
	// (announce readiness, print bound addresses).
	Started func()
}

// Run is Runner{}.Run: it starts tiers in the order given, so pass each
// tier after the ones it calls (data, then app, then web, then a front
// door), waits for ctx to end or for a started tier to fail, then stops the
// started tiers in reverse order. It returns nil after a
// clean shutdown caused by ctx, or the first error, naming the tier.
func Run(ctx context.Context, tiers ...Tier) error {
	return Runner{}.Run(ctx, tiers...)
}

// Run starts tiers in order, each until ready, waits for ctx or the first
// failure, then stops the started ones in reverse order, each bounded by the
// stop timeout. No goroutine it starts outlives it. The tiers' listeners
// share one ConnBudget: ctx's, or a new one.
func (r Runner) Run(ctx context.Context, tiers ...Tier) error {
	log := r.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if connBudget(ctx) == nil {
		// One descriptor limit for the whole process: the listeners of
		// every tier split it rather than each count on all of it.
		ctx = WithConnBudget(ctx, NewConnBudget())
	}
	failed := make(chan *Error, len(tiers))
	watchCtx, stopWatching := context.WithCancel(context.Background())
	watchers := make(chan struct{}, len(tiers))
	var started []Tier
	var runErr error

	for _, t := range tiers {
		if err := ctx.Err(); err != nil {
			break // asked to stop before everything started: not a failure
		}
		log.Info("tier starting", "tier", t.Name())
		if err := t.Start(ctx); err != nil {
			if ctx.Err() == nil || !errors.Is(err, ctx.Err()) {
				runErr = &Error{Tier: t.Name(), Phase: "start", Err: err}
			}
			break
		}
		started = append(started, t)
		log.Info("tier ready", "tier", t.Name())
		if f, ok := t.(Failer); ok {
			go watch(watchCtx, t.Name(), f, failed, watchers)
		} else {
			watchers <- struct{}{}
		}
	}

	if runErr == nil && len(started) == len(tiers) {
		if r.Started != nil {
			r.Started()
		}
		select {
		case <-ctx.Done():
			log.Info("shutting down", "cause", context.Cause(ctx))
		case te := <-failed:
			runErr = te
			log.Error("tier failed", "tier", te.Tier, "err", te.Err)
		}
	}

	stopErr := r.stopAll(started, log)

	stopWatching()
	for range started {
		<-watchers
	}
	return errors.Join(runErr, stopErr)
}

func watch(ctx context.Context, name string, f Failer, failed chan<- *Error, done chan<- struct{}) {
	defer func() { done <- struct{}{} }()
	select {
	case err := <-f.Failed():
		if err != nil {
			failed <- &Error{Tier: name, Phase: "run", Err: err}
		}
	case <-ctx.Done():
	}
}

// stopAll drains every Drainer at once, so that their delays overlap
// rather than add up, then stops tiers in reverse order; a tier that
// overruns its timeout is reported and the next one still gets its own full
// timeout.
func (r Runner) stopAll(started []Tier, log *slog.Logger) error {
	timeout := r.StopTimeout
	if timeout <= 0 {
		timeout = DefaultStopTimeout
	}
	drainAll(started, timeout, log)
	var errs []error
	for i := len(started) - 1; i >= 0; i-- {
		t := started[i]
		log.Info("tier stopping", "tier", t.Name())
		if err := stopOne(t, timeout); err != nil {
			log.Error("tier stop failed", "tier", t.Name(), "err", err)
			errs = append(errs, &Error{Tier: t.Name(), Phase: "stop", Err: err})
		}
	}
	return errors.Join(errs...)
}

// drainAll drains the Drainers among tiers concurrently, within timeout.
func drainAll(tiers []Tier, timeout time.Duration, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var wg sync.WaitGroup
	for _, t := range tiers {
		if d, ok := t.(Drainer); ok {
			wg.Go(func() {
				if err := d.Drain(ctx); err != nil {
					log.Warn("tier drain cut short", "tier", t.Name(), "err", err)
				}
			})
		}
	}
	wg.Wait()
}

// stopOne gives a tier its timeout and returns when Stop returns or, for a
// tier that ignores its context, when the timeout (plus a short grace) ends.
func stopOne(t Tier, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- t.Stop(ctx) }()
	select {
	case err := <-done:
		if err != nil && ctx.Err() != nil {
			return fmt.Errorf("%w after %s: %w", ErrStopTimeout, timeout, err)
		}
		return err
	case <-ctx.Done():
		// Stop ignores its context: wait no longer. The goroutine above
		// ends when Stop does; its channel is buffered.
		return fmt.Errorf("%w after %s", ErrStopTimeout, timeout)
	}
}

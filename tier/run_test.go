package tier_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/threetier/threetier/internal/leaks"
	"github.com/threetier/threetier/internal/wait"
	"github.com/threetier/threetier/tier"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, leaks.FastHTTP()...)
}

// journal records lifecycle events from several fake tiers in order.
type journal struct {
	mu     sync.Mutex
	events []string
}

func (j *journal) add(e string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.events = append(j.events, e)
}

func (j *journal) String() string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return strings.Join(j.events, " ")
}

// fakeTier is a tier whose start and stop behaviour a test controls.
type fakeTier struct {
	name     string
	j        *journal
	startErr error
	stopErr  error
	// stopHang makes Stop wait for its context (a slow drain).
	stopHang bool
	failed   chan error
}

func (f *fakeTier) Name() string { return f.name }

func (f *fakeTier) Start(context.Context) error {
	f.j.add("start:" + f.name)
	return f.startErr
}

func (f *fakeTier) Stop(ctx context.Context) error {
	f.j.add("stop:" + f.name)
	if f.stopHang {
		<-ctx.Done()
		return ctx.Err()
	}
	return f.stopErr
}

// failingTier is a fakeTier that also implements tier.Failer.
type failingTier struct{ *fakeTier }

func (f failingTier) Failed() <-chan error { return f.failed }

func TestRunStartsInOrderAndStopsInReverse(t *testing.T) {
	j := &journal{}
	ctx, cancel := context.WithCancel(context.Background())
	tiers := []tier.Tier{
		&fakeTier{name: "data", j: j},
		&fakeTier{name: "app", j: j},
		&fakeTier{name: "web", j: j},
	}
	done := make(chan error, 1)
	go func() { done <- tier.Run(ctx, tiers...) }()
	wait.For(t, 10*time.Second, "three tiers to start", func() bool { return strings.Count(j.String(), "start:") == 3 })
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run after cancel = %v, want nil", err)
	}
	want := "start:data start:app start:web stop:web stop:app stop:data"
	if got := j.String(); got != want {
		t.Fatalf("events:\n got %s\nwant %s", got, want)
	}
}

func TestRunStartFailureStopsStartedTiersInReverse(t *testing.T) {
	j := &journal{}
	boom := errors.New("port in use")
	err := tier.Run(context.Background(),
		&fakeTier{name: "data", j: j},
		&fakeTier{name: "app", j: j},
		&fakeTier{name: "web", j: j, startErr: boom},
		&fakeTier{name: "balancer", j: j},
	)
	var te *tier.Error
	if !errors.As(err, &te) || te.Tier != "web" || te.Phase != "start" || !errors.Is(err, boom) {
		t.Fatalf("err = %v, want a start error naming tier web and wrapping %v", err, boom)
	}
	if !strings.Contains(err.Error(), `"web"`) {
		t.Fatalf("error %q does not name the tier", err)
	}
	want := "start:data start:app start:web stop:app stop:data"
	if got := j.String(); got != want {
		t.Fatalf("events:\n got %s\nwant %s", got, want)
	}
}

func TestRunReturnsWhenATierFails(t *testing.T) {
	j := &journal{}
	crash := errors.New("listener closed")
	app := failingTier{&fakeTier{name: "app", j: j, failed: make(chan error, 1)}}
	done := make(chan error, 1)
	go func() {
		done <- tier.Run(context.Background(), &fakeTier{name: "data", j: j}, app, &fakeTier{name: "web", j: j})
	}()
	wait.For(t, 10*time.Second, "three tiers to start", func() bool { return strings.Count(j.String(), "start:") == 3 })
	app.failed <- crash

	select {
	case err := <-done:
		var te *tier.Error
		if !errors.As(err, &te) || te.Tier != "app" || te.Phase != "run" || !errors.Is(err, crash) {
			t.Fatalf("err = %v, want a run error naming tier app", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after a tier failed")
	}
	want := "start:data start:app start:web stop:web stop:app stop:data"
	if got := j.String(); got != want {
		t.Fatalf("events:\n got %s\nwant %s", got, want)
	}
}

func TestRunHonoursStopTimeout(t *testing.T) {
	j := &journal{}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r := tier.Runner{StopTimeout: 50 * time.Millisecond}
	// ctx already ended: nothing starts, nothing to stop.
	if err := r.Run(ctx, &fakeTier{name: "data", j: j}); err != nil || j.String() != "" {
		t.Fatalf("Run with ended ctx = %v, events %q; want nil and none", err, j.String())
	}

	ctx, cancel = context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- r.Run(ctx, &fakeTier{name: "data", j: j}, &fakeTier{name: "app", j: j, stopHang: true})
	}()
	wait.For(t, 10*time.Second, "two tiers to start", func() bool { return strings.Count(j.String(), "start:") == 2 })
	start := time.Now()
	cancel()
	err := <-done
	if !errors.Is(err, tier.ErrStopTimeout) && !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want a stop timeout", err)
	}
	var te *tier.Error
	if !errors.As(err, &te) || te.Tier != "app" || te.Phase != "stop" {
		t.Fatalf("err = %v, want it to name tier app in phase stop", err)
	}
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Fatalf("stop took %s with a 50ms timeout", elapsed)
	}
	// The tier after the slow one still stopped.
	if !strings.HasSuffix(j.String(), "stop:app stop:data") {
		t.Fatalf("events %q: data was not stopped after app's timeout", j.String())
	}
}

func TestRunJoinsStopErrors(t *testing.T) {
	j := &journal{}
	ctx, cancel := context.WithCancel(context.Background())
	e1, e2 := errors.New("flush failed"), errors.New("close failed")
	done := make(chan error, 1)
	go func() {
		done <- tier.Run(ctx, &fakeTier{name: "data", j: j, stopErr: e1}, &fakeTier{name: "app", j: j, stopErr: e2})
	}()
	wait.For(t, 10*time.Second, "two tiers to start", func() bool { return strings.Count(j.String(), "start:") == 2 })
	cancel()
	err := <-done
	if !errors.Is(err, e1) || !errors.Is(err, e2) {
		t.Fatalf("err = %v, want both stop errors", err)
	}
}

func TestRunCallsStartedOnceAllTiersAreReady(t *testing.T) {
	j := &journal{}
	ctx, cancel := context.WithCancel(context.Background())
	r := tier.Runner{Started: func() { j.add("started"); cancel() }}
	if err := r.Run(ctx, &fakeTier{name: "data", j: j}, &fakeTier{name: "app", j: j}); err != nil {
		t.Fatal(err)
	}
	if want := "start:data start:app started stop:app stop:data"; j.String() != want {
		t.Fatalf("events %q, want %q", j.String(), want)
	}
	// A failed start never reports started.
	j = &journal{}
	r = tier.Runner{Started: func() { j.add("started") }}
	_ = r.Run(context.Background(), &fakeTier{name: "data", j: j, startErr: errors.New("no disk")})
	if strings.Contains(j.String(), "started") {
		t.Fatalf("Started called after a failed start: %q", j.String())
	}
}

func TestFuncsRunsInTheStartOrder(t *testing.T) {
	j := &journal{}
	ctx, cancel := context.WithCancel(context.Background())
	step := tier.Funcs{
		TierName: "wire",
		OnStart:  func(context.Context) error { j.add("start:wire"); return nil },
	}
	r := tier.Runner{Started: cancel}
	if err := r.Run(ctx, &fakeTier{name: "app", j: j}, step, &fakeTier{name: "web", j: j}); err != nil {
		t.Fatal(err)
	}
	if want := "start:app start:wire start:web stop:web stop:app"; j.String() != want {
		t.Fatalf("events %q, want %q", j.String(), want)
	}
}

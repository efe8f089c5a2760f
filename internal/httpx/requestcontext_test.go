package httpx_test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/threetier/threetier/internal/httpx"
)

func TestRequestContextID(t *testing.T) {
	ctx := httpx.NewRequestContext(t.Context(), http.Header{httpx.HeaderRequestID: {"caller-1"}}, nil, time.Time{})
	if httpx.RequestID(ctx) != "caller-1" || ctx.IDHeader()[0] != "caller-1" {
		t.Fatalf("valid ID replaced by %q", ctx.ID())
	}
	ctx = httpx.NewRequestContext(t.Context(), http.Header{httpx.HeaderRequestID: {"bad id"}}, func() string { return "made" }, time.Time{})
	if httpx.RequestID(ctx) != "made" {
		t.Fatalf("generator not used: %q", ctx.ID())
	}
	if _, ok := ctx.Deadline(); ok || ctx.Done() != t.Context().Done() {
		t.Fatal("without a deadline the context is its parent's")
	}
}

func TestRequestContextDeadline(t *testing.T) {
	deadline := time.Now().Add(20 * time.Millisecond)
	ctx := httpx.NewRequestContext(t.Context(), http.Header{}, nil, deadline)
	defer ctx.Release()
	if d, ok := ctx.Deadline(); !ok || !d.Equal(deadline) {
		t.Fatalf("deadline %v %v, want %v", d, ok, deadline)
	}
	if ctx.Err() != nil {
		t.Fatal("done before its deadline")
	}
	child, cancel := context.WithCancel(ctx)
	defer cancel()
	select {
	case <-ctx.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("Done not closed at the deadline")
	}
	<-child.Done()
	if !errors.Is(ctx.Err(), context.DeadlineExceeded) || !errors.Is(context.Cause(ctx), context.DeadlineExceeded) ||
		!errors.Is(child.Err(), context.DeadlineExceeded) {
		t.Fatalf("err %v, cause %v, child's %v", ctx.Err(), context.Cause(ctx), child.Err())
	}
	if httpx.RequestID(child) != ctx.ID() {
		t.Fatal("the ID is lost under the deadline")
	}
}

func TestRequestContextDeadlineUnarmed(t *testing.T) {
	ctx := httpx.NewRequestContext(t.Context(), http.Header{}, nil, time.Now().Add(time.Millisecond))
	defer ctx.Release()
	time.Sleep(2 * time.Millisecond)
	// Nothing waited on Done: Err alone sees the deadline, and keeps to it.
	if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Fatalf("err %v, want the deadline's", ctx.Err())
	}
	<-ctx.Done()
	if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Fatalf("err %v once done", ctx.Err())
	}
}

func TestRequestContextParentAndRelease(t *testing.T) {
	parent, cancel := context.WithCancel(t.Context())
	parentDeadline := time.Now().Add(time.Minute)
	early, cancelEarly := context.WithDeadline(parent, parentDeadline)
	defer cancelEarly()
	ctx := httpx.NewRequestContext(early, http.Header{}, nil, time.Now().Add(time.Hour))
	if d, _ := ctx.Deadline(); !d.Equal(parentDeadline) {
		t.Fatalf("deadline %v, want the parent's earlier %v", d, parentDeadline)
	}
	cancel()
	if !errors.Is(ctx.Err(), context.Canceled) {
		t.Fatalf("err %v, want the parent's cancellation", ctx.Err())
	}
	<-ctx.Done()

	ctx = httpx.NewRequestContext(t.Context(), http.Header{}, nil, time.Now().Add(time.Hour))
	done := ctx.Done()
	ctx.Release()
	<-done
	if !errors.Is(ctx.Err(), context.Canceled) {
		t.Fatalf("released: err %v", ctx.Err())
	}
	ctx = httpx.NewRequestContext(t.Context(), http.Header{}, nil, time.Now().Add(time.Hour))
	ctx.Release()
	if !errors.Is(ctx.Err(), context.Canceled) {
		t.Fatalf("released before armed: err %v", ctx.Err())
	}
}

// TestRequestContextAllocs holds the point of the type: an ID and a
// deadline no one waits on cost one allocation beside the generated ID.
func TestRequestContextAllocs(t *testing.T) {
	h := http.Header{httpx.HeaderRequestID: {"caller-1"}}
	deadline := time.Now().Add(time.Hour)
	n := testing.AllocsPerRun(100, func() {
		ctx := httpx.NewRequestContext(context.Background(), h, nil, deadline)
		_ = ctx.Err()
		ctx.Release()
	})
	if n != 1 {
		t.Fatalf("%v allocations, want 1", n)
	}
}

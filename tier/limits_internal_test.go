package tier

import (
	"context"
	"net/http"
	"slices"
	"testing"
)

func TestConnCapStaysBelowTheDescriptorLimit(t *testing.T) {
	l := Limits{}.withDefaults()
	for _, tc := range []struct {
		fdLimit uint64
		want    int
	}{
		{0, DefaultMaxConns},          // unknown
		{^uint64(0), DefaultMaxConns}, // unlimited
		{1024, 1024 - 128},
		{20000, DefaultMaxConns},
		{100, 100 - 64},
		{50, 1},
	} {
		if got := l.connCap(tc.fdLimit); got != tc.want {
			t.Errorf("connCap(%d) = %d, want %d", tc.fdLimit, got, tc.want)
		}
	}
}

func TestSplitKeepsTheSumWithinTheLimit(t *testing.T) {
	for _, tc := range []struct {
		wants   []int
		fdLimit uint64
		want    []int
	}{
		{[]int{10000, 10000, 10000}, 0, []int{10000, 10000, 10000}},
		{[]int{10000, 10000, 10000}, 1 << 40, []int{10000, 10000, 10000}},
		{[]int{10000, 10000, 10000}, 1024, []int{298, 299, 299}}, // 896 in all
		{[]int{10000, 100, 50}, 1024, []int{746, 100, 50}},
		{[]int{300, 300}, 1024, []int{300, 300}},
		{[]int{10000, 10000}, 50, []int{1, 1}},
	} {
		got := split(tc.wants, tc.fdLimit)
		if !slices.Equal(got, tc.want) {
			t.Errorf("split(%v, %d) = %v, want %v", tc.wants, tc.fdLimit, got, tc.want)
		}
	}
}

// TestRunnerSharesOneBudget: the listeners of every tier a Runner starts
// (a front door, its redirect listener, a stats listener) split one
// descriptor limit between them, and a stopped one gives its share back.
func TestRunnerSharesOneBudget(t *testing.T) {
	b := &ConnBudget{fdLimit: 1024}
	newServer := func(name string, maxConns int) *HTTPServer {
		return NewHTTPServer(name, &http.Server{Addr: "127.0.0.1:0", Handler: http.NotFoundHandler()},
			WithLimits(Limits{MaxConns: maxConns}))
	}
	web, redirect, stats := newServer("web", 0), newServer("web-redirect", 0), newServer("stats", 100)
	ctx, cancel := context.WithCancel(WithConnBudget(context.Background(), b))
	done := make(chan error, 1)
	runner := Runner{Started: func() {
		caps := []int{web.conns.capacity(), redirect.conns.capacity(), stats.conns.capacity()}
		if sum := caps[0] + caps[1] + caps[2]; sum > 1024-128 || caps[2] != 100 {
			t.Errorf("caps %v: sum %d, want at most %d with stats' 100 kept", caps, sum, 1024-128)
		}
		if err := redirect.Stop(context.Background()); err != nil {
			t.Error(err)
		}
		if got := web.conns.capacity(); got != 1024-128-100 {
			t.Errorf("web's cap after the redirect listener stopped: %d, want %d", got, 1024-128-100)
		}
		cancel()
	}}
	go func() { done <- runner.Run(ctx, web, redirect, stats) }()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	// Without a budget in its context, a Runner makes one of its own.
	lone := newServer("lone", 0)
	ctx, cancel = context.WithCancel(context.Background())
	runner = Runner{Started: func() {
		if lone.conns.budget.Load() == nil {
			t.Error("a server run by a Runner has no budget")
		}
		cancel()
	}}
	if err := runner.Run(ctx, lone); err != nil {
		t.Fatal(err)
	}
}

package app

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/threetier/threetier/tier"
)

// sink keeps the compiler from dropping the benchmarked calls.
var sink int

//go:noinline
func bareCall(_ context.Context) (int, error) { return 42, nil }

// BenchmarkGuardedCall compares a guarded call on the success path with
// the bare call, serial and parallel: the guard's own cost is the
// difference. "timeout" variants derive a per-call deadline, as a careful
// bare caller would too.
func BenchmarkGuardedCall(b *testing.B) {
	ctx := context.Background()
	newGuard := func(b *testing.B, cfg GuardConfig) *Guard {
		g, err := NewGuards().Add("bench", cfg)
		if err != nil {
			b.Fatal(err)
		}
		return g
	}
	b.Run("bare", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			v, _ := bareCall(ctx)
			sink += v
		}
	})
	b.Run("guarded", func(b *testing.B) {
		g := newGuard(b, GuardConfig{Timeout: -1})
		b.ReportAllocs()
		for b.Loop() {
			v, _ := Do(ctx, g, bareCall)
			sink += v
		}
	})
	b.Run("bare-timeout", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			cctx, cancel := context.WithTimeout(ctx, time.Second)
			v, _ := bareCall(cctx)
			cancel()
			sink += v
		}
	})
	b.Run("guarded-timeout", func(b *testing.B) {
		g := newGuard(b, GuardConfig{Timeout: time.Second})
		b.ReportAllocs()
		for b.Loop() {
			v, _ := Do(ctx, g, bareCall)
			sink += v
		}
	})
	b.Run("rejected-open", func(b *testing.B) {
		g := newGuard(b, GuardConfig{Timeout: -1, ConsecutiveFailures: 1, OpenFor: time.Hour})
		_, _ = Do(ctx, g, func(context.Context) (int, error) { return 0, errDown })
		b.ReportAllocs()
		for b.Loop() {
			if _, err := Do(ctx, g, bareCall); err == nil {
				b.Fatal("an open breaker let a call through")
			}
		}
	})
	// parallel runs call on every P at once, as concurrent requests do.
	parallel := func(call func(context.Context) (int, error)) func(*testing.B) {
		return func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				n := 0
				for pb.Next() {
					v, _ := call(ctx)
					n += v
				}
				_ = n
			})
		}
	}
	guarded := func(b *testing.B, cfg GuardConfig) func(context.Context) (int, error) {
		g := newGuard(b, cfg)
		return func(ctx context.Context) (int, error) { return Do(ctx, g, bareCall) }
	}
	b.Run("bare-parallel", parallel(bareCall))
	b.Run("guarded-parallel", func(b *testing.B) {
		parallel(guarded(b, GuardConfig{Timeout: -1, MaxConcurrent: -1}))(b)
	})
	b.Run("guarded-parallel-bulkhead", func(b *testing.B) {
		parallel(guarded(b, GuardConfig{Timeout: -1}))(b)
	})
}

// BenchmarkClock is the price of the clock reads a guarded call makes
// (gobreaker reads time.Now twice, the guard time.Since twice): on virtual
// machines without a fast TSC clock they dominate the guard's cost.
func BenchmarkClock(b *testing.B) {
	b.Run("now", func(b *testing.B) {
		for b.Loop() {
			sink += int(time.Now().UnixNano())
		}
	})
	b.Run("since", func(b *testing.B) {
		start := time.Now()
		for b.Loop() {
			sink += int(time.Since(start))
		}
	})
}

type benchItem struct {
	ID   int    `json:"id"`
	Name string `json:"name"`
}

// BenchmarkChain serves a JSON handler in-process through bare Echo and
// through the app server's full chain (request ID, access log, metrics,
// recovery, shedding, body limit, timeout): with no logger, and with
// access lines formatted as JSON at info and thrown away, as a deployment
// logs them.
func BenchmarkChain(b *testing.B) {
	handler := func(c echo.Context) error {
		return c.JSON(http.StatusOK, benchItem{ID: 7, Name: "seven"})
	}
	// One request, replayed; a writer that keeps nothing. What is left is
	// the handler and the chain around it.
	serve := func(b *testing.B, h http.Handler) {
		r := httptest.NewRequest(http.MethodGet, "/items/7", nil)
		w := &benchWriter{header: make(http.Header)}
		h.ServeHTTP(w, r)
		if w.code != http.StatusOK || !strings.Contains(w.body.String(), "seven") {
			b.Fatalf("got %d %s", w.code, w.body.String())
		}
		b.ReportAllocs()
		for b.Loop() {
			w.reset()
			h.ServeHTTP(w, r)
		}
	}
	b.Run("bare-echo", func(b *testing.B) {
		e := echo.New()
		e.GET("/items/:id", handler)
		serve(b, e)
	})
	b.Run("app-chain", func(b *testing.B) {
		s, err := New(Config{})
		if err != nil {
			b.Fatal(err)
		}
		s.Echo().GET("/items/:id", handler)
		serve(b, s.Echo())
	})
	b.Run("app-chain-logged", func(b *testing.B) {
		log, err := tier.NewLogger(tier.LogConfig{Level: "info", Format: "json"}, io.Discard)
		if err != nil {
			b.Fatal(err)
		}
		s, err := New(Config{}, WithLogger(log))
		if err != nil {
			b.Fatal(err)
		}
		s.Echo().GET("/items/:id", handler)
		serve(b, s.Echo())
	})
}

// benchWriter is an http.ResponseWriter that forgets what it is sent.
type benchWriter struct {
	header http.Header
	code   int
	body   strings.Builder
}

func (w *benchWriter) Header() http.Header { return w.header }

func (w *benchWriter) WriteHeader(code int) { w.code = code }

func (w *benchWriter) Write(p []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.body.Write(p)
}

func (w *benchWriter) reset() {
	clear(w.header)
	w.code = 0
	w.body.Reset()
}

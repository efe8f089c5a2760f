package tier

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// A Checker reports whether one dependency of a tier is ready: nil means
// ready. Check must honour ctx.
type Checker interface {
	Check(ctx context.Context) error
}

// CheckFunc adapts a function to a Checker.
type CheckFunc func(ctx context.Context) error

// Check calls f.
func (f CheckFunc) Check(ctx context.Context) error { return f(ctx) }

// DefaultCheckTimeout bounds each checker during one readiness probe.
const DefaultCheckTimeout = 2 * time.Second

// Health serves liveness (/healthz) and readiness (/readyz). Readiness holds
// when every registered checker passes and no server it belongs to is
// draining (WithHealth). The zero value is ready to use and
// safe for concurrent use.
type Health struct {
	// CheckTimeout bounds each checker; zero means DefaultCheckTimeout.
	CheckTimeout time.Duration

	mu       sync.RWMutex
	checkers map[string]Checker
	draining atomic.Bool
}

// drain makes readiness fail from now on: the server is leaving.
func (h *Health) drain() { h.draining.Store(true) }

// Register adds (or replaces) the checker for a named dependency.
func (h *Health) Register(name string, c Checker) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.checkers == nil {
		h.checkers = make(map[string]Checker)
	}
	h.checkers[name] = c
}

// Unregister removes a named checker.
func (h *Health) Unregister(name string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.checkers, name)
}

// CheckResult is one checker's outcome in a Report.
type CheckResult struct {
	Name  string `json:"name"`
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
	// Millis is how long the check took.
	Millis float64 `json:"ms"`
}

// Report is the body of /readyz.
type Report struct {
	Ready  bool          `json:"ready"`
	Checks []CheckResult `json:"checks"`
}

// Failed lists the names of the checks that did not pass.
func (r Report) Failed() []string {
	var names []string
	for _, c := range r.Checks {
		if !c.OK {
			names = append(names, c.Name)
		}
	}
	return names
}

// Check runs every checker concurrently, each bounded by CheckTimeout, and
// reports them sorted by name.
func (h *Health) Check(ctx context.Context) Report {
	h.mu.RLock()
	names := make([]string, 0, len(h.checkers))
	checkers := make([]Checker, 0, len(h.checkers))
	for name := range h.checkers {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		checkers = append(checkers, h.checkers[name])
	}
	h.mu.RUnlock()

	timeout := h.CheckTimeout
	if timeout <= 0 {
		timeout = DefaultCheckTimeout
	}
	results := make([]CheckResult, len(names))
	var wg sync.WaitGroup
	for i := range names {
		wg.Go(func() {
			results[i] = runCheck(ctx, names[i], checkers[i], timeout)
		})
	}
	wg.Wait()
	if h.draining.Load() {
		results = append(results, CheckResult{Name: "draining", Error: "the server is stopping"})
	}
	report := Report{Ready: true, Checks: results}
	for _, r := range results {
		report.Ready = report.Ready && r.OK
	}
	return report
}

func runCheck(ctx context.Context, name string, c Checker, timeout time.Duration) CheckResult {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	err := c.Check(ctx)
	if err == nil && ctx.Err() != nil {
		err = ctx.Err()
	}
	res := CheckResult{Name: name, OK: err == nil, Millis: float64(time.Since(start).Microseconds()) / 1000}
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			res.Error = "timed out after " + timeout.String() + ": " + err.Error()
		} else {
			res.Error = err.Error()
		}
	}
	return res
}

// Handler serves GET/HEAD /healthz (always 200 while the process serves) and
// /readyz (200 when ready, 503 otherwise, with a JSON Report saying which
// checks failed and why). Mount it on any mux or Echo router.
func (h *Health) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", h.serveLive)
	mux.HandleFunc("GET /readyz", h.serveReady)
	return mux
}

// LivenessHandler serves the body of /healthz.
func (h *Health) LivenessHandler() http.Handler { return http.HandlerFunc(h.serveLive) }

// ReadinessHandler serves the body of /readyz.
func (h *Health) ReadinessHandler() http.Handler { return http.HandlerFunc(h.serveReady) }

func (h *Health) serveLive(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write([]byte(`{"alive":true}` + "\n"))
}

func (h *Health) serveReady(w http.ResponseWriter, r *http.Request) {
	report := h.Check(r.Context())
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if !report.Ready {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	_ = json.NewEncoder(w).Encode(report)
}

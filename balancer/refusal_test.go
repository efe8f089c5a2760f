package balancer

import (
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
)

// answering is a real listener that answers every request with status,
// and Retry-After: 1 when refuse is set, counting what it served.
func answering(t *testing.T, status int, refuse bool) (string, *atomic.Int64) {
	t.Helper()
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if refuse {
			w.Header().Set("Retry-After", "1")
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(srv.Close)
	return srv.URL, &hits
}

// An endpoint that answers 503 with Retry-After (its dependency is down,
// it sheds) is refusing on purpose: it stays in the pool however many
// such answers it gives, while one answering plain 500s is ejected. Both
// count as failed attempts on the stats.
func TestRefusalsDoNotEjectFailuresDo(t *testing.T) {
	refuser, _ := answering(t, http.StatusServiceUnavailable, true)
	broken, _ := answering(t, http.StatusInternalServerError, false)
	p := newPool(t, Config{
		Endpoints: []string{refuser, broken},
		Outlier:   OutlierConfig{ConsecutiveFailures: 3, MaxEjectionPercent: 100},
		Retry:     RetryConfig{Attempts: 1},
	})
	client := p.Client()
	for range 40 {
		_, _, _ = get(t, client, "http://upstream/")
	}
	if st := statusOf(p, refuser); st.State != StateUp || st.Ejections != 0 || st.Failures == 0 {
		t.Errorf("refusing endpoint: %+v, want up, never ejected, its refusals counted as failures", st)
	}
	if st := statusOf(p, broken); st.State != StateEjected || st.Ejections == 0 {
		t.Errorf("endpoint answering 500: %+v, want ejected", st)
	}

	// Counted as failures when the pool says so.
	strict := newPool(t, Config{
		Endpoints: []string{refuser},
		Outlier:   OutlierConfig{ConsecutiveFailures: 3, MaxEjectionPercent: 100, CountRefusals: true},
		Retry:     RetryConfig{Attempts: 1},
	})
	for range 5 {
		_, _, _ = get(t, strict.Client(), "http://upstream/")
	}
	if st := statusOf(strict, refuser); st.Ejections == 0 {
		t.Errorf("with CountRefusals: %+v, want the refusing endpoint ejected", st)
	}
}

// A refusal is still retried on another endpoint (Retry.On has 503), and
// a 503 without Retry-After is an ordinary failure.
func TestRefusalsAreRetried(t *testing.T) {
	refuser, refused := answering(t, http.StatusServiceUnavailable, true)
	plain503, _ := answering(t, http.StatusServiceUnavailable, false)
	good, _ := answering(t, http.StatusOK, false)
	p := newPool(t, Config{
		Endpoints: []string{refuser, plain503, good},
		Outlier:   OutlierConfig{ConsecutiveFailures: 2, MaxEjectionPercent: 100},
		Retry:     RetryConfig{Attempts: 3, BudgetMinPerSecond: 100},
	})
	for i := range 30 {
		if code, _, err := get(t, p.Client(), "http://upstream/"); err != nil || code != http.StatusOK {
			t.Fatalf("request %d: %d %v, want 200 from the good endpoint after retries", i, code, err)
		}
	}
	if refused.Load() == 0 {
		t.Fatal("the refusing endpoint was never tried")
	}
	if st := statusOf(p, refuser); st.State != StateUp || st.Ejections != 0 {
		t.Errorf("refusing endpoint: %+v, want up", st)
	}
	if st := statusOf(p, plain503); st.Ejections == 0 {
		t.Errorf("endpoint answering 503 without Retry-After: %+v, want ejected", st)
	}
}

package retry

import (
	"context"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func spend(b *Budget, sec int64) (n int) {
	for b.Withdraw(sec) {
		n++
	}
	return n
}

func TestBudgetRatioAndReserve(t *testing.T) {
	b := NewBudget(0.2, 1) // 0.2 × requests + 10
	for range 100 {
		b.Request(5)
	}
	if n := spend(b, 5); n != 30 {
		t.Fatalf("%d retries for 100 requests, want 20 + a reserve of 10", n)
	}
	// Still within the window: nothing more until more requests come.
	if b.Withdraw(14) {
		t.Fatal("a retry 9s later, with no new request: the window still holds the spent budget")
	}
	for range 10 {
		b.Request(14)
	}
	if n := spend(b, 14); n != 2 {
		t.Fatalf("%d retries for 10 more requests, want 2", n)
	}
	// Once the window has moved past second 5, only second 14 counts.
	if n := spend(b, 15); n != 10 {
		t.Fatalf("%d retries after second 5 left the window, want 10", n)
	}
}

func TestZeroAndNegativeBudgets(t *testing.T) {
	var zero Budget
	zero.Request(1)
	if zero.Withdraw(1) {
		t.Fatal("the zero Budget allowed a retry")
	}
	b := NewBudget(-1, -1)
	for range 100 {
		b.Request(3)
	}
	if b.Withdraw(3) {
		t.Fatal("a budget with negative settings allowed a retry")
	}
	// A fractional reserve: 0.1 a second is one retry in the window.
	if n := spend(NewBudget(0, 0.1), 0); n != 1 {
		t.Fatalf("%d retries from a reserve of 0.1/s, want 1", n)
	}
}

func TestBudgetConcurrent(t *testing.T) {
	b := NewBudget(0.5, 0)
	var wg sync.WaitGroup
	var mu sync.Mutex
	allowed := 0
	for range 8 {
		wg.Go(func() {
			for range 1000 {
				b.Request(7)
				if b.Withdraw(7) {
					mu.Lock()
					allowed++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if allowed > 4000 || allowed < 3000 {
		t.Fatalf("%d retries allowed for 8000 requests at ratio 0.5, want at most 4000 and most of it", allowed)
	}
}

func TestSleep(t *testing.T) {
	if !Sleep(context.Background(), time.Millisecond) || !Sleep(context.Background(), 0) {
		t.Fatal("Sleep with a live context did not wait it out")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if Sleep(ctx, time.Hour) || Sleep(ctx, 0) {
		t.Fatal("Sleep with an ended context reported a full wait")
	}
}

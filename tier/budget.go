package tier

import (
	"context"
	"slices"
	"sync"
)

// A ConnBudget is the connections that a process's listeners may hold
// between them. Each HTTPServer keeps its open connections under a cap
// (Limits.MaxConns), and the caps must leave descriptors for files,
// upstream connections and logs: a reserve of an eighth of the soft
// RLIMIT_NOFILE, at least 64. One limit serves the whole process, so the
// servers that share a budget split what is left of it: their caps add up
// to no more. A server that asks for less than an even split keeps what it
// asks (a stats listener with MaxConns 100); the rest is shared evenly by
// the others.
//
// A server takes its share when it starts with a context that carries the
// budget (WithConnBudget) and gives it back when it stops. Runner.Run
// gives every tier it starts one budget, unless its context carries one
// already: a main that runs one Runner needs to do nothing, and one that
// starts servers otherwise passes them a context made with WithConnBudget
// over one NewConnBudget. A server started without a budget keeps the whole
// limit to itself.
type ConnBudget struct {
	fdLimit uint64

	mu   sync.Mutex
	sets []*connSet
}

// NewConnBudget returns a budget over the process's descriptor limit, read
// now.
func NewConnBudget() *ConnBudget { return &ConnBudget{fdLimit: descriptorLimit()} }

type budgetKey struct{}

// WithConnBudget returns a copy of ctx that carries b: every HTTPServer
// started with it, directly or by a tier that starts its listeners with
// the context it was given, takes its connection cap from b.
func WithConnBudget(ctx context.Context, b *ConnBudget) context.Context {
	return context.WithValue(ctx, budgetKey{}, b)
}

// connBudget returns the budget ctx carries, or nil.
func connBudget(ctx context.Context) *ConnBudget {
	b, _ := ctx.Value(budgetKey{}).(*ConnBudget)
	return b
}

// join makes s one of the budget's servers and splits the budget again.
func (b *ConnBudget) join(s *connSet) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if slices.Contains(b.sets, s) {
		return
	}
	b.sets = append(b.sets, s)
	s.budget.Store(b)
	b.splitLocked()
}

// leave gives s's share back to the others.
func (b *ConnBudget) leave(s *connSet) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.sets = slices.DeleteFunc(b.sets, func(o *connSet) bool { return o == s })
	s.budget.Store(nil)
	b.splitLocked()
}

func (b *ConnBudget) splitLocked() {
	wants := make([]int, len(b.sets))
	for i, s := range b.sets {
		wants[i] = s.want
	}
	for i, n := range split(wants, b.fdLimit) {
		b.sets[i].setCap(n)
	}
}

// split shares what a descriptor limit of fdLimit (0 when there is none)
// leaves after its reserve among servers that want wants connections: the
// ones that want less than an even share get what they want, the others
// an even share of the rest; every server gets at least one.
func split(wants []int, fdLimit uint64) []int {
	caps := slices.Clone(wants)
	if fdLimit == 0 || fdLimit > 1<<31 {
		return caps
	}
	left := 0
	if reserve := max(64, fdLimit/8); fdLimit > reserve {
		left = int(fdLimit - reserve)
	}
	order := make([]int, len(wants))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return wants[a] - wants[b] })
	for k, i := range order {
		caps[i] = max(1, min(wants[i], left/(len(order)-k)))
		left = max(0, left-caps[i])
	}
	return caps
}

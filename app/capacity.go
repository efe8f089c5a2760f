package app

// Capacity is a dependency that serves a bounded number of calls at
// once: a *data.DB, whose pools these are.
type Capacity interface {
	// Capacity returns how many calls the primary serves at once (its
	// pool's MaxOpenConns), and how many more the standbys serve, which
	// take reads only.
	Capacity() (primary, standbys int)
}

// WithCapacity sizes the guard's bulkheads after the dependency's pools,
// read once, as the guard is made: MaxConcurrent, ReadReserve and
// MaxPerKey left zero follow them (see GuardConfig).
func WithCapacity(c Capacity) GuardOption {
	return func(g *Guard) { g.capacity = c }
}

// SharedCapacity is one guard's share of c when among guards call the
// same pools: the app servers of one process over one *data.DB, each with
// its own guard. Together they then admit no more calls than the pools
// serve; each has at least one.
func SharedCapacity(c Capacity, among int) Capacity {
	return sharedCapacity{c, max(among, 1)}
}

type sharedCapacity struct {
	c     Capacity
	among int
}

func (s sharedCapacity) Capacity() (primary, standbys int) {
	primary, standbys = s.c.Capacity()
	return max(primary/s.among, 1), standbys / s.among
}

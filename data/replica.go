package data

import (
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"math"
	"math/rand/v2"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/threetier/threetier/internal/readafter"
	"github.com/threetier/threetier/tier"
)

// The states of a replica, as the replica_state metric names them.
const (
	replicaIn      int32 = iota // serves reads
	replicaLagging              // answers, but replays further behind than MaxLag
	replicaDown                 // does not answer
)

var stateNames = [...]string{replicaIn: "in", replicaLagging: "lagging", replicaDown: "down"}

// A replica is one read-only PostgreSQL server: its pool, and what the
// watcher last learnt of it. Reads look at it with atomic loads only.
type replica struct {
	name string // "replica0", ...
	pool *sql.DB
	cc   *pgx.ConnConfig // for the watcher's own connection

	state  atomic.Int32
	replay atomic.Uint64 // pg_last_wal_replay_lsn(); 0 when unknown or not a standby
	lag    atomic.Int64  // nanoseconds behind the primary

	reads     atomic.Uint64 // reads sent to it
	fallbacks atomic.Uint64 // of those, rerun on the primary when it failed them
}

// setState moves r to state and logs the move.
func (r *replica) setState(log *slog.Logger, state int32, why string, attrs ...any) {
	if old := r.state.Swap(state); old != state {
		level := slog.LevelInfo
		if state != replicaIn {
			level = slog.LevelWarn
		}
		log.Log(context.Background(), level, "data: replica "+stateNames[state]+": "+why,
			append([]any{"replica", r.name, "was", stateNames[old]}, attrs...)...)
	}
}

// readReplica picks the replica a read with ctx runs on, or nil for the
// primary: one in reads that has replayed the position the request must
// see (its read-after positions), unless the request's session wrote. Its cost is a
// few atomic loads.
func (db *DB) readReplica(ctx context.Context) *replica {
	n := len(db.replicas)
	if n == 0 {
		return nil
	}
	if s := sessionFrom(ctx); s != nil && s.Wrote() {
		return nil
	}
	var after uint64
	if ra := readafter.From(ctx); ra != nil {
		after = uint64(ra.After())
	}
	first := 0
	if n > 1 {
		first = rand.IntN(n)
	}
	for i := range n {
		r := db.replicas[(first+i)%n]
		if r.state.Load() == replicaIn && (after == 0 || r.replay.Load() >= after) {
			r.reads.Add(1)
			return r
		}
	}
	return nil
}

// fellBack reports whether a read that r failed with err should run again
// on the primary: r could not serve it (down: it is out of reads at once,
// until the watcher sees it answer), or a recovery conflict cancelled it.
// The caller's own cancellation or deadline is no reason.
func (db *DB) fellBack(ctx context.Context, r *replica, err error) bool {
	if err == nil || ctx.Err() != nil {
		return false
	}
	switch kindOf(err) {
	case ErrUnavailable:
		r.setState(db.log, replicaDown, "a read failed: rerun on the primary", "err", err)
	case ErrRetryable:
	default:
		return false
	}
	r.fallbacks.Add(1)
	return true
}

// replicaPool is the connection pool GORM runs a read on when it goes to
// a replica: the replica's, with the primary behind it.
type replicaPool struct {
	db *DB
	r  *replica
}

func (p replicaPool) PrepareContext(ctx context.Context, query string) (*sql.Stmt, error) {
	st, err := p.r.pool.PrepareContext(ctx, query)
	if p.db.fellBack(ctx, p.r, err) {
		return p.db.primary.PrepareContext(ctx, query)
	}
	return st, err
}

func (p replicaPool) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	res, err := p.r.pool.ExecContext(ctx, query, args...)
	if p.db.fellBack(ctx, p.r, err) {
		return p.db.primary.ExecContext(ctx, query, args...)
	}
	return res, err
}

func (p replicaPool) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	rows, err := p.r.pool.QueryContext(ctx, query, args...)
	if p.db.fellBack(ctx, p.r, err) {
		return p.db.primary.QueryContext(ctx, query, args...)
	}
	return rows, err
}

func (p replicaPool) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	row := p.r.pool.QueryRowContext(ctx, query, args...)
	if p.db.fellBack(ctx, p.r, row.Err()) {
		return p.db.primary.QueryRowContext(ctx, query, args...)
	}
	return row
}

// currentPosition asks the primary for its WAL position.
const currentPosition = "SELECT pg_current_wal_lsn()::text"

// positions is ctx's read-after positions when the DB has standbys to send its
// reads to: without them a position would cost a query and serve nothing.
func (db *DB) positions(ctx context.Context) *readafter.Positions {
	if len(db.replicas) == 0 {
		return nil
	}
	return readafter.From(ctx)
}

// notePosition records in ctx's read-after positions, when it carries one, the
// primary's WAL position right after a commit, which query asks for on the
// connection of the commit (query(&text) runs currentPosition), so that
// the request's later reads, and the client's next requests, see the
// commit. A commit is durable when it returns (synchronous_commit on, the
// default), so the position has passed it.
func (db *DB) notePosition(ctx context.Context, query func(text *string) error) {
	ra := db.positions(ctx)
	if ra == nil {
		return
	}
	var text string
	p, err := tier.Position(0), query(&text)
	if err == nil {
		p, err = tier.ParsePosition(text)
	}
	if err != nil {
		// The commit is in, its position unknown: a position no standby
		// reaches sends the reads that must see it to the primary.
		p = tier.Position(math.MaxInt64)
	}
	ra.Wrote(p)
}

// A watcher asks the primary and each replica for their WAL positions
// every PollInterval, each on a connection of its own outside the pools
// (a saturated pool must not make a replica look dead), and keeps each
// replica's state and lag.
type watcher struct {
	db     *DB
	cancel context.CancelFunc
	done   sync.WaitGroup

	mu      sync.Mutex
	history []sample // distinct primary positions, oldest first
}

// A sample is the primary's position and when it was first seen.
type sample struct {
	lsn uint64
	at  time.Time
}

// maxHistory bounds the primary positions kept: at one new position per
// poll, minutes of them. A replica behind the oldest is at least that far
// behind, which is past any useful MaxLag.
const maxHistory = 4096

// watch starts the watcher of db's replicas; stop ends it.
func (db *DB) watch(primary *pgx.ConnConfig) *watcher {
	ctx, cancel := context.WithCancel(context.Background())
	w := &watcher{db: db, cancel: cancel}
	w.done.Add(1 + len(db.replicas))
	go w.loop(ctx, primary, w.pollPrimary, nil)
	for _, r := range db.replicas {
		go w.loop(ctx, r.cc, func(ctx context.Context, c *pgx.Conn) error { return w.pollReplica(ctx, r, c) },
			func(err error) { r.setState(db.log, replicaDown, "it does not answer", "err", err) })
	}
	return w
}

func (w *watcher) stop() {
	w.cancel()
	w.done.Wait()
}

// loop runs poll every PollInterval on a connection made from cc, which
// it makes again after a failure; unreachable, when not nil, hears of a
// connection that could not be made.
func (w *watcher) loop(ctx context.Context, cc *pgx.ConnConfig, poll func(context.Context, *pgx.Conn) error, unreachable func(error)) {
	defer w.done.Done()
	cfg := w.db.cfg.Replica
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			_ = conn.Close(context.Background())
		}
	}()
	tick := time.NewTicker(cfg.PollInterval)
	defer tick.Stop()
	for {
		pctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
		var err error
		if conn == nil {
			if conn, err = pgx.ConnectConfig(pctx, cc); err != nil && unreachable != nil && ctx.Err() == nil {
				unreachable(err)
			}
		}
		if err == nil {
			err = poll(pctx, conn)
		}
		cancel()
		if err != nil && conn != nil {
			_ = conn.Close(context.Background())
			conn = nil
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (w *watcher) pollPrimary(ctx context.Context, c *pgx.Conn) error {
	lsn, ok, err := position(ctx, c, currentPosition)
	if err != nil || !ok {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if n := len(w.history); n == 0 || lsn > w.history[n-1].lsn {
		if n == maxHistory {
			w.history = append(w.history[:0], w.history[1:]...)
		}
		w.history = append(w.history, sample{lsn, time.Now()})
	}
	return nil
}

// pollReplica reads r's replayed position and puts r in reads or out.
func (w *watcher) pollReplica(ctx context.Context, r *replica, c *pgx.Conn) error {
	log := w.db.log
	lsn, standby, err := position(ctx, c, "SELECT pg_last_wal_replay_lsn()::text")
	if err != nil {
		r.setState(log, replicaDown, "it does not answer", "err", err)
		return err
	}
	if !standby {
		// A server that is not in recovery has no replay position (a
		// logical replica, say): it serves reads that carry no position.
		r.replay.Store(0)
		r.lag.Store(0)
		r.setState(log, replicaIn, "it answers")
		return nil
	}
	lag := w.lagOf(lsn, time.Now())
	r.replay.Store(lsn)
	r.lag.Store(int64(lag))
	cfg := w.db.cfg.Replica
	switch {
	case cfg.MaxLag >= 0 && lag > cfg.MaxLag:
		r.setState(log, replicaLagging, "it replays too far behind the primary", "lag", lag, "max_lag", cfg.MaxLag)
	case r.state.Load() != replicaIn && lag > cfg.PollInterval:
		// Out of reads, it comes back only once it has replayed what the
		// primary had a poll ago: a standby restarted after an outage
		// would otherwise serve, for up to MaxLag, reads that miss what
		// was written while it was away.
		r.setState(log, replicaLagging, "it answers but has yet to replay what it missed", "lag", lag)
	default:
		r.setState(log, replicaIn, "it answers and has caught up", "lag", lag)
	}
	return nil
}

// lagOf is how long ago the primary first had WAL that a replica replayed
// up to lsn has not: zero when it has everything the primary was seen
// with.
func (w *watcher) lagOf(lsn uint64, now time.Time) time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	h := w.history
	i := sort.Search(len(h), func(i int) bool { return h[i].lsn > lsn })
	if i == len(h) {
		return 0
	}
	return now.Sub(h[i].at)
}

// position runs a query of one LSN, which is NULL (ok false) when the
// server cannot answer it: a primary has no replay position.
func position(ctx context.Context, c *pgx.Conn, query string) (lsn uint64, ok bool, err error) {
	var text *string
	if err := c.QueryRow(ctx, query).Scan(&text); err != nil {
		return 0, false, err
	}
	if text == nil {
		return 0, false, nil
	}
	p, err := tier.ParsePosition(*text)
	if err != nil {
		return 0, false, errors.Join(errors.New("data: unreadable WAL position "+*text), err)
	}
	return uint64(p), true, nil
}

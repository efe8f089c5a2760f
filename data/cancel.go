package data

import (
	"context"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
)

// cancelGrace is how long PostgreSQL has to stop a statement whose
// context ended, once asked to, before its connection is cut instead.
const cancelGrace = 500 * time.Millisecond

// cancelSettle is how long a connection waits, after its cancel request
// was taken, before its next statement: the server delivers the cancel to
// the statement's backend on its own time, and a late one would cancel
// the next statement (pgx waits as long).
const cancelSettle = 100 * time.Millisecond

// cancelRequestTimeout bounds a cancel request, which runs on after
// cancelGrace when the server is slow to take it.
const cancelRequestTimeout = 10 * time.Second

// serverCancel makes a statement whose context ends (the request's
// deadline, a lock wait it cannot afford) stop on the server: it sends
// PostgreSQL a cancel request, the statement ends with 57014, and the
// connection goes back to the pool ready for the next one. pgx's default
// cuts the connection at once instead, so that every deadline costs a new
// connection while the old backend sleeps, or waits in the row's lock
// queue, until the cancel pgx sends as it closes lands. If the server
// does not stop the statement within cancelGrace (it hangs, or cannot be
// reached), the connection is cut after all.
//
// It is pgx's CancelRequestContextWatcherHandler but for one thing: the
// cancel request runs to its end (or cancelRequestTimeout), never cut off
// when the statement ends first or the grace runs out, since PgBouncer
// 1.18 dies when a cancel request's client leaves while it forwards it.
type serverCancel struct {
	pg *pgconn.PgConn
	// settled closes once the cancel request was taken and had time to
	// land, or cancelGrace passed: the connection may then be used again
	// (or, its deadline passed, it is being closed).
	settled chan struct{}
}

func cancelOnServer(pg *pgconn.PgConn) ctxwatch.Handler { return &serverCancel{pg: pg} }

func (h *serverCancel) HandleCancel(context.Context) {
	_ = h.pg.Conn().SetDeadline(time.Now().Add(cancelGrace))
	settled := make(chan struct{})
	h.settled = settled
	var once sync.Once
	settle := func() { once.Do(func() { close(settled) }) }
	grace := time.AfterFunc(cancelGrace, settle)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), cancelRequestTimeout)
		defer cancel()
		if h.pg.CancelRequest(ctx) == nil {
			time.Sleep(cancelSettle)
		}
		grace.Stop()
		settle()
	}()
}

func (h *serverCancel) HandleUnwatchAfterCancel() {
	<-h.settled
	_ = h.pg.Conn().SetDeadline(time.Time{})
}

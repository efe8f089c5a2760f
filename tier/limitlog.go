package tier

import (
	"log/slog"
	"sync/atomic"
	"time"
)

// reportEvery is the most often a server logs the limits it hit.
const reportEvery = time.Second

// limitReport counts the limits a server hit and logs them as one warning
// line at most every reportEvery, with the counts since the line before.
type limitReport struct {
	log    *slog.Logger
	server string
	open   func() int
	max    func() int

	bodyTimeouts, sendTimeouts, shedIdle, shedStalled atomic.Int64
	framingErrors                                     atomic.Int64 // requests refused for their framing
	// resetFloods counts HTTP/2 connections ended for resetting more
	// streams than their budget.
	resetFloods atomic.Int64

	due  atomic.Bool  // a line is scheduled
	last atomic.Int64 // when the last line went, unix nanoseconds
}

// hit schedules a line, unless one already is: at once after a quiet
// second, else when the second since the last line is over.
func (r *limitReport) hit() {
	if !r.due.CompareAndSwap(false, true) {
		return
	}
	wait := time.Until(time.Unix(0, r.last.Load()).Add(reportEvery))
	time.AfterFunc(max(wait, 0), r.flush)
}

func (r *limitReport) flush() {
	r.due.Store(false) // a hit from now on schedules the next line
	r.last.Store(time.Now().UnixNano())
	body, send := r.bodyTimeouts.Swap(0), r.sendTimeouts.Swap(0)
	idle, stalled := r.shedIdle.Swap(0), r.shedStalled.Swap(0)
	framing, floods := r.framingErrors.Swap(0), r.resetFloods.Swap(0)
	if body+send+idle+stalled+framing+floods == 0 {
		return
	}
	r.log.Warn("connection limits hit",
		"server", r.server,
		"body_timeouts", body,
		"send_timeouts", send,
		"shed_idle", idle,
		"shed_stalled", stalled,
		"framing_errors", framing,
		"h2_reset_floods", floods,
		"open", r.open(),
		"max_conns", r.max())
}

// framing counts a request refused for its framing (see framingConn). The
// warning line carries the count, not each request: a client can send
// these as fast as it likes.
func (r *limitReport) framing(*FramingError) {
	if r == nil {
		return
	}
	r.framingErrors.Add(1)
	r.hit()
}

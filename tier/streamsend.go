package tier

import (
	"net/http"
	"sync"
	"time"
)

// streamSendTimeout holds every HTTP/2 response to SendTimeout, stream by
// stream: the connection's own send deadline sees bytes move as long as
// any stream progresses, and a stream whose client stopped taking its
// data (its flow-control window at zero) would hold its handler forever.
// HTTP/1 responses are left to the connection's deadline.
type streamSendTimeout struct {
	next    http.Handler
	timeout time.Duration
	report  *limitReport
}

func (h *streamSendTimeout) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.ProtoMajor != 2 {
		h.next.ServeHTTP(w, r)
		return
	}
	sw := &streamSend{ResponseWriter: w, rc: http.NewResponseController(w), h: h}
	defer sw.stop() // also on a panic
	h.next.ServeHTTP(sw, r)
	sw.stop()
	if sw.pending && (sw.user.IsZero() || sw.user.After(time.Now().Add(h.timeout))) {
		// What the handler left in the stream's buffer (a few KiB) goes
		// out once it returns, where no write of ours times it: the
		// stream's own deadline does. Not flushed here, which would
		// cost the answer the Content-Length HTTP/2 gives one that fits
		// the buffer.
		_ = sw.rc.SetWriteDeadline(time.Now().Add(h.timeout))
	}
}

// streamSend bounds each write and flush of a stream's response: one that
// waits SendTimeout without completing resets the stream, which fails the
// write and frees the handler; the connection's other streams go on.
// Writes go sendChunk at a time, so a client must take sendChunk per
// SendTimeout, as over HTTP/1. An idle stream (an event stream between
// events) is never cut: only a write under way is timed.
type streamSend struct {
	http.ResponseWriter
	rc      *http.ResponseController
	h       *streamSendTimeout
	pending bool      // written since the last flush; the handler's goroutine only
	user    time.Time // the write deadline the handler set; the handler's goroutine only

	mu    sync.Mutex
	since time.Time // when the write under way began; zero when none is
	timer *time.Timer
	armed bool // timer will fire
	cut   bool
}

func (w *streamSend) Write(p []byte) (int, error) {
	var total int
	for len(p) > 0 {
		w.begin()
		n, err := w.ResponseWriter.Write(p[:min(len(p), sendChunk)])
		w.end()
		total += n
		p = p[n:]
		if err != nil {
			return total, err
		}
	}
	w.pending = true
	return total, nil
}

// FlushError sends what is buffered, under the bound;
// http.ResponseController finds it first.
func (w *streamSend) FlushError() error {
	w.begin()
	defer w.end()
	w.pending = false
	return w.rc.Flush()
}

// Flush is FlushError for handlers that flush through http.Flusher.
func (w *streamSend) Flush() { _ = w.FlushError() }

// SetWriteDeadline notes the handler's own deadline, which the stream
// keeps as well.
func (w *streamSend) SetWriteDeadline(t time.Time) error {
	w.user = t
	return w.rc.SetWriteDeadline(t)
}

// Unwrap lets http.ResponseController reach the stream's deadlines and
// full duplex beneath.
func (w *streamSend) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *streamSend) begin() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.since = time.Now()
	switch {
	case w.timer == nil:
		w.timer = time.AfterFunc(w.h.timeout, w.check)
		w.armed = true
	case !w.armed:
		w.timer.Reset(w.h.timeout)
		w.armed = true
	}
}

func (w *streamSend) end() {
	w.mu.Lock()
	w.since = time.Time{}
	w.mu.Unlock()
}

// check runs when the timer fires: it cuts the stream if the write under
// way began SendTimeout ago, else waits for that moment.
func (w *streamSend) check() {
	w.mu.Lock()
	if w.since.IsZero() || w.cut {
		w.armed = false
		w.mu.Unlock()
		return
	}
	if left := w.h.timeout - time.Since(w.since); left > 0 {
		w.timer.Reset(left)
		w.mu.Unlock()
		return
	}
	defer w.mu.Unlock()
	w.cut, w.armed = true, false
	w.h.report.sendTimeouts.Add(1)
	w.h.report.hit()
	// A deadline in the past resets the stream at once. Under mu: once
	// the handler has returned (stop), its writer must not be touched.
	_ = w.rc.SetWriteDeadline(time.Now().Add(-time.Second))
}

// stop ends the timing once the handler has returned.
func (w *streamSend) stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.timer != nil {
		w.timer.Stop()
	}
	w.since, w.cut = time.Time{}, true
}

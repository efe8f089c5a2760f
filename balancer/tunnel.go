package balancer

import (
	"io"
	"net/http"
	"strings"
	"sync"
)

// tunnels tracks the connections a proxy switched to another protocol
// (WebSocket and any other Upgrade): net/http forgets hijacked connections,
// so Stop closes them here once the ordinary requests have drained.
type tunnels struct {
	mu     sync.Mutex
	conns  map[io.Closer]struct{}
	closed bool // closeAll ran: no new tunnel
	wg     sync.WaitGroup
}

// add tracks c; false means the proxy is stopping and c must not be used.
func (t *tunnels) add(c io.Closer) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return false
	}
	if t.conns == nil {
		t.conns = make(map[io.Closer]struct{})
	}
	t.conns[c] = struct{}{}
	t.wg.Add(1)
	return true
}

func (t *tunnels) done(c io.Closer) {
	t.mu.Lock()
	delete(t.conns, c)
	t.mu.Unlock()
	t.wg.Done()
}

// closeAll cuts every tunnel and waits for their copies to end.
func (t *tunnels) closeAll() {
	t.mu.Lock()
	t.closed = true
	for c := range t.conns {
		_ = c.Close()
	}
	t.mu.Unlock()
	t.wg.Wait()
}

// tunnel completes a 101 Switching Protocols: it checks that the upstream
// switched to what the client asked for, hands the 101 to the client on
// its own connection, and copies bytes both ways until either side ends.
func (px *Proxy) tunnel(w *answer, r *http.Request, id, asked string, resp *http.Response) {
	got := resp.Header.Get("Upgrade")
	if asked == "" || !strings.EqualFold(asked, got) {
		px.problem(w, r, id, http.StatusBadGateway, errNoUpgrade.Error(), 0)
		return
	}
	back, ok := resp.Body.(io.ReadWriteCloser)
	if !ok {
		px.problem(w, r, id, http.StatusBadGateway, "the upstream's switched connection cannot be written to", 0)
		return
	}
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		px.problem(w, r, id, http.StatusBadGateway, "this connection cannot switch protocols", 0)
		return
	}
	defer conn.Close()
	// The connection is the tunnel's now: a panic can only cut it.
	w.status = http.StatusSwitchingProtocols
	h := make(http.Header, len(resp.Header)+1)
	copyEndToEnd(h, resp.Header)
	h["Connection"], h["Upgrade"] = connUpgrade, []string{got}
	if _, ok := h["X-Request-Id"]; !ok {
		h["X-Request-Id"] = []string{id}
	}
	if _, err := brw.WriteString("HTTP/1.1 101 Switching Protocols\r\n"); err != nil {
		return
	}
	if err := h.Write(brw); err != nil {
		return
	}
	if _, err := brw.WriteString("\r\n"); err != nil || brw.Flush() != nil {
		return
	}
	if !px.tunnels.add(conn) {
		return // stopping: the deferred Close ends it
	}
	defer px.tunnels.done(conn)

	// Bytes the client sent after its request, already buffered, go first.
	var fromClient io.Reader = conn
	if n := brw.Reader.Buffered(); n > 0 {
		fromClient = io.MultiReader(io.LimitReader(brw.Reader, int64(n)), conn)
	}
	errc := make(chan error, 2)
	go func() { errc <- pipe(back, fromClient) }()
	go func() { errc <- pipe(conn, back) }()
	<-errc
	// One direction ended: close both so that the other copy ends too.
	_ = conn.Close()
	_ = back.Close()
	<-errc
}

// pipe copies src to dst, and half-closes dst's writing side when it can,
// so that the peer sees the end of src.
func pipe(dst io.Writer, src io.Reader) error {
	bp := bufferPool.Get().(*[]byte)
	defer bufferPool.Put(bp)
	_, err := io.CopyBuffer(dst, src, *bp)
	if cw, ok := dst.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	return err
}

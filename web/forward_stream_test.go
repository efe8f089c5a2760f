package web

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/websocket"

	"github.com/threetier/threetier/balancer"
)

// streamingApp is an app tier with the routes that need the whole proxy
// path: an early refusal, an echo, a full-duplex upload, an event stream
// and a WebSocket echo.
func streamingApp(t *testing.T, events <-chan string) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/reject", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusUnprocessableEntity) // without reading the body
	})
	mux.HandleFunc("POST /api/echo", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write(b)
	})
	mux.HandleFunc("POST /api/duplex", func(w http.ResponseWriter, r *http.Request) {
		_ = http.NewResponseController(w).EnableFullDuplex()
		buf := make([]byte, 4)
		_, _ = io.ReadFull(r.Body, buf)
		_, _ = fmt.Fprintf(w, "got:%s\n", buf)
		_ = http.NewResponseController(w).Flush()
		rest, _ := io.ReadAll(r.Body)
		_, _ = fmt.Fprintf(w, "rest:%s\n", rest)
	})
	mux.HandleFunc("GET /api/events", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		_ = http.NewResponseController(w).Flush()
		for {
			select {
			case ev, ok := <-events:
				if !ok {
					return
				}
				_, _ = fmt.Fprintf(w, "data: %s\n\n", ev)
				_ = http.NewResponseController(w).Flush()
			case <-r.Context().Done():
				return
			}
		}
	})
	mux.Handle("GET /api/ws", websocket.Handler(func(ws *websocket.Conn) {
		for {
			var msg string
			if websocket.Message.Receive(ws, &msg) != nil || websocket.Message.Send(ws, "echo:"+msg) != nil {
				return
			}
		}
	}))
	app := httptest.NewServer(mux)
	t.Cleanup(app.Close)
	return app
}

func TestForwardStreamsThroughTheWebTier(t *testing.T) {
	forEachEngine(t, func(t *testing.T, eng engine) {
		events := make(chan string)
		app := streamingApp(t, events)
		pool := newPool(t, balancer.Config{Name: "app", Endpoints: []string{app.URL}})
		s := startServer(t, eng, Config{}, WithForward(pool, ForwardConfig{Prefix: "/api/"}))
		addr := s.Addr()

		t.Run("100-continue", func(t *testing.T) {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			br := bufio.NewReader(c)
			_, _ = io.WriteString(c, "POST /api/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
			if line, err := br.ReadString('\n'); err != nil || !strings.HasPrefix(line, "HTTP/1.1 100 ") {
				t.Fatalf("first line %q %v, want 100 Continue", line, err)
			}
			_, _ = br.ReadString('\n')
			_, _ = io.WriteString(c, "hello")
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusCreated || string(b) != "hello" || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
				t.Fatalf("final %d %q %v", resp.StatusCode, b, resp.Header)
			}

			// The app refuses before the body: the client's final status is 422.
			c2, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c2.Close()
			_ = c2.SetDeadline(time.Now().Add(5 * time.Second))
			_, _ = io.WriteString(c2, "POST /api/reject HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
			resp, err = http.ReadResponse(bufio.NewReader(c2), nil)
			if err != nil || resp.StatusCode != http.StatusUnprocessableEntity {
				t.Fatalf("refusal: %v %v, want 422", resp, err)
			}
		})

		t.Run("full-duplex upload", func(t *testing.T) {
			pr, pw := io.Pipe()
			req, _ := http.NewRequest("POST", "http://"+addr+"/api/duplex", pr)
			done := make(chan *http.Response, 1)
			go func() {
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Error(err)
				}
				done <- resp
			}()
			_, _ = io.WriteString(pw, "ping")
			var resp *http.Response
			select {
			case resp = <-done:
			case <-time.After(5 * time.Second):
				t.Fatal("no answer while the upload is open")
			}
			if resp == nil {
				return
			}
			defer resp.Body.Close()
			br := bufio.NewReader(resp.Body)
			if line, _ := br.ReadString('\n'); line != "got:ping\n" {
				t.Fatalf("first line %q", line)
			}
			_, _ = io.WriteString(pw, "-pong")
			_ = pw.Close()
			if line, _ := br.ReadString('\n'); line != "rest:-pong\n" {
				t.Fatalf("second line %q", line)
			}
		})

		t.Run("server-sent events", func(t *testing.T) {
			// The stream ends with the events: on the fast engine a client
			// gone is noticed only at the next write.
			defer close(events)
			resp, err := http.Get("http://" + addr + "/api/events")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			br := bufio.NewReader(resp.Body)
			for _, ev := range []string{"one", "two"} {
				events <- ev // the next one is sent only once this one arrived
				if line, err := br.ReadString('\n'); err != nil || line != "data: "+ev+"\n" {
					t.Fatalf("event %q: got %q %v", ev, line, err)
				}
				_, _ = br.ReadString('\n')
			}
		})

		t.Run("websocket", func(t *testing.T) {
			ws, err := websocket.Dial("ws://"+addr+"/api/ws", "", "http://"+addr)
			if err != nil {
				t.Fatal(err)
			}
			defer ws.Close()
			_ = ws.SetDeadline(time.Now().Add(5 * time.Second))
			if err := websocket.Message.Send(ws, "hi"); err != nil {
				t.Fatal(err)
			}
			var got string
			if err := websocket.Message.Receive(ws, &got); err != nil || got != "echo:hi" {
				t.Fatalf("got %q %v", got, err)
			}
		})
	})
}

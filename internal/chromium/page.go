package chromium

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/threetier/threetier/internal/wait"
)

// Page is a page open in headless Chromium that a test drives over the
// DevTools protocol, for what a dump cannot show: clicks, dialogs, the
// layout at a given width. The protocol runs over a pair of pipes
// (--remote-debugging-pipe), so no port is opened.
type Page struct {
	tb      testing.TB
	cmds    *os.File      // to the browser
	events  *bufio.Reader // from the browser
	from    *os.File
	session string
	lastID  int
}

// commandTimeout bounds one protocol command.
const commandTimeout = 30 * time.Second

// Open starts Chromium (bin, from Find) with a viewport of width×height
// CSS pixels and loads url in it. The browser is killed by its PID when
// the test ends.
func Open(tb testing.TB, bin, url string, width, height int) *Page {
	tb.Helper()
	toBrowser, cmds, err := os.Pipe()
	if err != nil {
		tb.Fatal(err)
	}
	from, fromBrowser, err := os.Pipe()
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "--headless", "--no-sandbox", "--disable-gpu",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--no-first-run", "--disable-extensions", "--hide-scrollbars", "--user-data-dir="+tb.TempDir(),
		"--window-size="+strconv.Itoa(width)+","+strconv.Itoa(height),
		"--remote-debugging-pipe", "about:blank")
	// The browser reads commands on its fd 3 and writes on its fd 4.
	cmd.ExtraFiles = []*os.File{toBrowser, fromBrowser}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		cancel()
		tb.Fatalf("chromium: %v", err)
	}
	_ = toBrowser.Close()
	_ = fromBrowser.Close()
	p := &Page{tb: tb, cmds: cmds, events: bufio.NewReader(from), from: from}
	tb.Cleanup(func() {
		_ = cmds.Close()
		cancel() // kills the browser's own process by PID
		_ = cmd.Wait()
		_ = from.Close()
		if tb.Failed() && stderr.Len() > 0 {
			tb.Logf("chromium's stderr:\n%s", stderr.String())
		}
	})

	var target struct {
		TargetID string `json:"targetId"`
	}
	p.call("", "Target.createTarget", map[string]any{"url": "about:blank"}, &target)
	var attached struct {
		SessionID string `json:"sessionId"`
	}
	p.call("", "Target.attachToTarget", map[string]any{"targetId": target.TargetID, "flatten": true}, &attached)
	p.session = attached.SessionID
	p.call(p.session, "Emulation.setDeviceMetricsOverride", map[string]any{
		"width": width, "height": height, "deviceScaleFactor": 1, "mobile": false}, nil)
	p.call(p.session, "Page.navigate", map[string]any{"url": url}, nil)
	p.WaitFor(10*time.Second, "the page to load", `document.readyState === "complete" && location.href !== "about:blank"`)
	return p
}

// call sends one command (to the browser itself when session is "") and
// stores its result in result, when not nil.
func (p *Page) call(session, method string, params any, result any) {
	p.tb.Helper()
	p.lastID++
	id := p.lastID
	msg := map[string]any{"id": id, "method": method, "params": params}
	if session != "" {
		msg["sessionId"] = session
	}
	b, err := json.Marshal(msg)
	if err != nil {
		p.tb.Fatal(err)
	}
	if _, err := p.cmds.Write(append(b, 0)); err != nil {
		p.tb.Fatalf("chromium %s: %v", method, err)
	}
	_ = p.from.SetReadDeadline(time.Now().Add(commandTimeout))
	for {
		line, err := p.events.ReadBytes(0)
		if err != nil {
			p.tb.Fatalf("chromium %s: no answer: %v", method, err)
		}
		var reply struct {
			ID     int             `json:"id"`
			Result json.RawMessage `json:"result"`
			Error  *struct {
				Message string `json:"message"`
			} `json:"error"`
		}
		if err := json.Unmarshal(line[:len(line)-1], &reply); err != nil {
			p.tb.Fatalf("chromium %s: %v", method, err)
		}
		if reply.ID != id {
			continue // an event, or the answer to another command
		}
		if reply.Error != nil {
			p.tb.Fatalf("chromium %s: %s", method, reply.Error.Message)
		}
		if result != nil {
			if err := json.Unmarshal(reply.Result, result); err != nil {
				p.tb.Fatalf("chromium %s: %v", method, err)
			}
		}
		return
	}
}

// Eval runs the JavaScript expression js in the page, waits for it when
// it is a promise, and returns its value as JSON. A thrown exception fails
// the test.
func (p *Page) Eval(js string) json.RawMessage {
	p.tb.Helper()
	var out struct {
		Result struct {
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		Exception *struct {
			Text      string `json:"text"`
			Exception struct {
				Description string `json:"description"`
			} `json:"exception"`
		} `json:"exceptionDetails"`
	}
	p.call(p.session, "Runtime.evaluate", map[string]any{"expression": js, "awaitPromise": true, "returnByValue": true}, &out)
	if out.Exception != nil {
		p.tb.Fatalf("%s: %s %s", js, out.Exception.Text, out.Exception.Exception.Description)
	}
	return out.Result.Value
}

// String runs js, which must give a string, and returns it.
func (p *Page) String(js string) string {
	p.tb.Helper()
	var s string
	if err := json.Unmarshal(p.Eval(js), &s); err != nil {
		p.tb.Fatalf("%s: not a string: %v", js, err)
	}
	return s
}

// WaitFor evaluates the boolean expression cond until it is true, failing
// the test after timeout; what names the wait in the failure.
func (p *Page) WaitFor(timeout time.Duration, what, cond string) {
	p.tb.Helper()
	wait.For(p.tb, timeout, what+" ("+cond+")", func() bool { return string(p.Eval("Boolean("+cond+")")) == "true" })
}

// Screenshot returns the viewport as a PNG image.
func (p *Page) Screenshot() []byte {
	p.tb.Helper()
	var out struct {
		Data string `json:"data"`
	}
	p.call(p.session, "Page.captureScreenshot", map[string]any{"format": "png"}, &out)
	png, err := base64.StdEncoding.DecodeString(out.Data)
	if err != nil {
		p.tb.Fatal(fmt.Errorf("screenshot: %w", err))
	}
	return png
}

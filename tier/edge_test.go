package tier_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/threetier/threetier/internal/httpx"
	"github.com/threetier/threetier/tier"
)

func TestRecovered(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	r := httptest.NewRequest(http.MethodGet, "/a%20b", nil)
	err := tier.Recovered(log, r, "boom")
	w := httptest.NewRecorder()
	var p *tier.Problem
	if !errors.As(err, &p) || p.Status != http.StatusInternalServerError {
		t.Fatalf("%v: want a 500 problem", err)
	}
	tier.ServeProblem(w, r, p)
	if w.Code != 500 || w.Header().Get("Content-Type") != tier.ContentTypeProblem || !strings.Contains(w.Body.String(), `"instance":"/a%20b"`) {
		t.Fatalf("%d %q %s", w.Code, w.Header().Get("Content-Type"), w.Body)
	}
	if !strings.Contains(logs.String(), `"panic":"boom"`) || !strings.Contains(logs.String(), `"stack":"goroutine`) {
		t.Fatalf("panic not logged with its stack: %s", logs.String())
	}
	defer func() {
		if v := recover(); v != http.ErrAbortHandler {
			t.Fatalf("recovered %v, want http.ErrAbortHandler passed on", v)
		}
	}()
	_ = tier.Recovered(log, r, http.ErrAbortHandler)
}

func TestAccessLog(t *testing.T) {
	r := httptest.NewRequest(http.MethodGet, "/items/7?x=1", nil)
	r = r.WithContext(httpx.WithRequestID(r.Context(), "rid"))
	at := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	entry := &tier.AccessEntry{Request: r, Route: "/items/:id", Status: 200, Bytes: 5, Duration: time.Millisecond, Time: at}

	var out bytes.Buffer
	al, err := tier.NewAccessLog(tier.AccessLogConfig{Format: tier.AccessLogJSON, Output: &out}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !al.Enabled(r.Context(), 200, false) || al.Enabled(r.Context(), 200, true) || (*tier.AccessLog)(nil).Enabled(r.Context(), 500, false) {
		t.Fatal("Enabled disagrees with the lines' levels: info for answers, debug for quiet ones, nothing without a log")
	}
	al.Log(entry)
	var line map[string]any
	if err := json.Unmarshal(out.Bytes(), &line); err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	if line["msg"] != "access" || line["uri"] != "/items/7?x=1" || line["route"] != "/items/:id" || line["status"] != float64(200) || line["request_id"] != "rid" ||
		line["time"] != at.Format(time.RFC3339) {
		t.Fatalf("JSON line %v", line)
	}

	out.Reset()
	fields, err := tier.ParseAccessFields("method, path,status")
	if err != nil {
		t.Fatal(err)
	}
	al, _ = tier.NewAccessLog(tier.AccessLogConfig{Format: tier.AccessLogText, Output: &out, Fields: fields}, nil)
	al.Log(entry)
	if s := out.String(); !strings.Contains(s, "method=GET path=/items/7 status=200 request_id=rid") || strings.Contains(s, "route=") {
		t.Fatalf("text line with chosen fields: %s", s)
	}
	if _, err := tier.ParseAccessFields("method,nope"); err == nil {
		t.Fatal("unknown field accepted")
	}
	if _, err := tier.NewAccessLog(tier.AccessLogConfig{Format: "xml"}, nil); err == nil {
		t.Fatal("unknown format accepted")
	}

	// Off: no access lines, and the logger still takes errors.
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	al, err = tier.NewAccessLog(tier.AccessLogConfig{Format: tier.AccessLogOff}, log)
	if err != nil || al != nil {
		t.Fatalf("off: %v, %v", al, err)
	}
	al.Log(entry)
	_ = tier.Recovered(log, r, "boom")
	if s := logs.String(); strings.Contains(s, `"msg":"access"`) || !strings.Contains(s, "panic serving request") {
		t.Fatalf("off: %s", s)
	}
}

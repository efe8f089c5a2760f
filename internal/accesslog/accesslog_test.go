package accesslog_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/threetier/threetier/internal/accesslog"
	"github.com/threetier/threetier/internal/httpedge"
	"github.com/threetier/threetier/internal/httpx"
	"github.com/threetier/threetier/tier"
)

func TestAccessLog(t *testing.T) {
	r := httptest.NewRequest(http.MethodGet, "/items/7?x=1", nil)
	r = r.WithContext(httpx.WithRequestID(r.Context(), "rid"))
	at := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	entry := &accesslog.Entry{Request: r, Route: "/items/:id", Status: 200, Bytes: 5, Duration: time.Millisecond, Time: at}

	var out bytes.Buffer
	al, err := accesslog.New(tier.AccessLogConfig{Format: tier.AccessLogJSON, Output: &out}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !al.Enabled(r.Context(), 200, false) || al.Enabled(r.Context(), 200, true) || (*accesslog.Log)(nil).Enabled(r.Context(), 500, false) {
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
	al, _ = accesslog.New(tier.AccessLogConfig{Format: tier.AccessLogText, Output: &out, Fields: fields}, nil)
	al.Log(entry)
	if s := out.String(); !strings.Contains(s, "method=GET path=/items/7 status=200 request_id=rid") || strings.Contains(s, "route=") {
		t.Fatalf("text line with chosen fields: %s", s)
	}
	if _, err := tier.ParseAccessFields("method,nope"); err == nil {
		t.Fatal("unknown field accepted")
	}
	if _, err := accesslog.New(tier.AccessLogConfig{Format: "xml"}, nil); err == nil {
		t.Fatal("unknown format accepted")
	}

	// Off: no access lines, and the logger still takes errors.
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	al, err = accesslog.New(tier.AccessLogConfig{Format: tier.AccessLogOff}, log)
	if err != nil || al != nil {
		t.Fatalf("off: %v, %v", al, err)
	}
	al.Log(entry)
	_ = httpedge.Recovered(log, r, "boom")
	if s := logs.String(); strings.Contains(s, `"msg":"access"`) || !strings.Contains(s, "panic serving request") {
		t.Fatalf("off: %s", s)
	}
}

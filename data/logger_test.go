package data

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/threetier/threetier/internal/httpx"
	"github.com/threetier/threetier/tier"
)

func TestLoggerLevelsAndPrivacy(t *testing.T) {
	var buf bytes.Buffer
	log, err := tier.NewLogger(tier.LogConfig{Level: "info", Format: "json"}, &buf)
	if err != nil {
		t.Fatal(err)
	}
	db := openTest(t, Config{Path: filepath.Join(t.TempDir(), "l.db"), SlowQuery: time.Nanosecond}, WithLogger(log))
	ctx := httpx.WithRequestID(context.Background(), "req-42")
	buf.Reset()

	_ = db.WithContext(ctx).Create(&Product{Name: "secret-value", Stock: 1}).Error
	_ = db.WithContext(ctx).Exec("SELEC nonsense").Error
	var p Product
	_ = db.WithContext(ctx).First(&p, 999).Error // an answer, not a fault

	var records []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var r map[string]any
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		records = append(records, r)
	}
	if strings.Contains(buf.String(), "secret-value") {
		t.Errorf("values leaked into the log:\n%s", buf.String())
	}
	levels := map[string]string{}
	for _, r := range records {
		if r["request_id"] != "req-42" {
			t.Errorf("record without the request ID: %v", r)
		}
		levels[r["sql"].(string)] = r["level"].(string) + " " + r["msg"].(string)
	}
	var sawInsert, sawBad, sawNotFound bool
	for sql, lvl := range levels {
		switch {
		case strings.HasPrefix(sql, "INSERT"):
			sawInsert = lvl == "WARN slow sql"
		case strings.HasPrefix(sql, "SELEC "):
			sawBad = lvl == "ERROR sql failed"
		case strings.HasPrefix(sql, "SELECT"):
			sawNotFound = lvl == "WARN slow sql" // not an error
		}
	}
	if !sawInsert || !sawBad || !sawNotFound {
		t.Errorf("levels by statement: %v", levels)
	}
}

func TestLoggerTellsAConflictFromAFault(t *testing.T) {
	var buf bytes.Buffer
	log, err := tier.NewLogger(tier.LogConfig{Level: "info"}, &buf)
	if err != nil {
		t.Fatal(err)
	}
	l := slogLogger{log: log}
	sql := func() (string, int64) { return "UPDATE products SET stock = stock - ?", 0 }
	l.Trace(context.Background(), time.Now(), sql, &Error{Kind: ErrRetryable, Err: errors.New("could not serialize access")})
	l.Trace(context.Background(), time.Now(), sql, &Error{Kind: ErrUnavailable, Err: errors.New("connection refused")})
	out := buf.String()
	if !strings.Contains(out, `level=INFO msg="sql conflict"`) || !strings.Contains(out, `level=ERROR msg="sql failed"`) {
		t.Fatalf("want the conflict at info and the outage at error:\n%s", out)
	}
}

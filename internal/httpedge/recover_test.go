package httpedge_test

import (
	"bytes"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/threetier/threetier/internal/httpedge"
	"github.com/threetier/threetier/tier"
)

func TestRecovered(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	r := httptest.NewRequest(http.MethodGet, "/a%20b", nil)
	err := httpedge.Recovered(log, r, "boom")
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
	_ = httpedge.Recovered(log, r, http.ErrAbortHandler)
}

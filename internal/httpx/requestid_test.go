package httpx_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/threetier/threetier/internal/httpx"
)

func TestAcceptRequestID(t *testing.T) {
	h := http.Header{httpx.HeaderRequestID: {"caller-1"}}
	if got := httpx.AcceptRequestID(h, nil); got[0] != "caller-1" {
		t.Fatalf("valid ID replaced by %q", got[0])
	}
	for _, bad := range [][]string{{"has space"}, {"a", "b"}, {strings.Repeat("x", 129)}, nil} {
		got := httpx.AcceptRequestID(http.Header{httpx.HeaderRequestID: bad}, nil)
		if len(got[0]) != 32 || !httpx.ValidRequestID(got[0]) {
			t.Fatalf("%q: got %q, want a fresh ID", bad, got[0])
		}
	}
	if got := httpx.AcceptRequestID(http.Header{}, func() string { return "made" }); got[0] != "made" {
		t.Fatalf("generator not used: %q", got[0])
	}
	ctx := httpx.WithRequestID(t.Context(), "abc")
	if httpx.RequestID(ctx) != "abc" || httpx.RequestID(t.Context()) != "" {
		t.Fatal("request ID not carried by the context")
	}
}

package readafter_test

import (
	"context"
	"testing"

	"github.com/threetier/threetier/internal/readafter"
)

// A request's reads must see the later of the client's position and its
// own last commit.
func TestReadAfter(t *testing.T) {
	if readafter.From(context.Background()) != nil {
		t.Fatal("a bare context carries positions")
	}
	ra := readafter.New(10)
	ctx := readafter.With(context.Background(), ra)
	if readafter.From(ctx) != ra || ra.After() != 10 || ra.Written() != 0 {
		t.Fatalf("after %s, written %s", ra.After(), ra.Written())
	}
	ra.Wrote(20)
	ra.Wrote(15)
	if ra.After() != 20 || ra.Written() != 20 {
		t.Errorf("after %s, written %s; want 0/14 both", ra.After(), ra.Written())
	}
}

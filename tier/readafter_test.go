package tier

import (
	"context"
	"errors"
	"testing"
)

// Positions read and write as PostgreSQL writes an LSN; anything else is
// ErrBadPosition.
func TestParsePosition(t *testing.T) {
	for _, s := range []string{"0/0", "16/B374D848", "FFFFFFFF/FFFFFFFF", "0/1"} {
		p, err := ParsePosition(s)
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		if q, _ := ParsePosition(p.String()); q != p {
			t.Errorf("%s reads back as %s", s, p)
		}
	}
	if p, _ := ParsePosition("16/B374D848"); p != 0x16B374D848 {
		t.Errorf("16/B374D848 is %x", uint64(p))
	}
	for _, s := range []string{"", "/", "1/", "/1", "16", "x/1", "1/-1", "100000000/0", "1/1/1", " 1/1", "+1/1"} {
		if _, err := ParsePosition(s); !errors.Is(err, ErrBadPosition) {
			t.Errorf("%q: %v, want ErrBadPosition", s, err)
		}
	}
}

// A request's reads must see the later of the client's position and its
// own last commit.
func TestReadAfter(t *testing.T) {
	if ReadAfterFrom(context.Background()) != nil {
		t.Fatal("a bare context carries a ReadAfter")
	}
	ra := NewReadAfter(10)
	ctx := WithReadAfter(context.Background(), ra)
	if ReadAfterFrom(ctx) != ra || ra.After() != 10 || ra.Written() != 0 {
		t.Fatalf("after %s, written %s", ra.After(), ra.Written())
	}
	ra.Wrote(20)
	ra.Wrote(15)
	if ra.After() != 20 || ra.Written() != 20 {
		t.Errorf("after %s, written %s; want 0/14 both", ra.After(), ra.Written())
	}
}

package tier

import (
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

package tier

import "testing"

func TestConnCapStaysBelowTheDescriptorLimit(t *testing.T) {
	l := Limits{}.withDefaults()
	for _, tc := range []struct {
		fdLimit uint64
		want    int
	}{
		{0, DefaultMaxConns},          // unknown
		{^uint64(0), DefaultMaxConns}, // unlimited
		{1024, 1024 - 128},
		{20000, DefaultMaxConns},
		{100, 100 - 64},
		{50, 1},
	} {
		if got := l.connCap(tc.fdLimit); got != tc.want {
			t.Errorf("connCap(%d) = %d, want %d", tc.fdLimit, got, tc.want)
		}
	}
}

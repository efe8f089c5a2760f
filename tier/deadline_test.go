package tier_test

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/threetier/threetier/tier"
)

func TestParseTimeout(t *testing.T) {
	for _, c := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"4850ms", 4850 * time.Millisecond, true},
		{"0ms", 0, true},
		{"00012ms", 12 * time.Millisecond, true},
		{"99999999ms", 99999999 * time.Millisecond, true},
		{"100000000ms", 0, false}, // nine digits
		{"99999999999999999999ms", 0, false},
		{"", 0, false},
		{"ms", 0, false},
		{"5", 0, false},
		{"5s", 0, false},
		{"5MS", 0, false},
		{"-5ms", 0, false},
		{"+5ms", 0, false},
		{" 5ms", 0, false},
		{"5 ms", 0, false},
		{"5.5ms", 0, false},
		{"0x10ms", 0, false},
		{"５ms", 0, false}, // a full-width digit
	} {
		got, err := tier.ParseTimeout(c.in)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("ParseTimeout(%q) = %v, %v; want %v (ok %v)", c.in, got, err, c.want, c.ok)
		}
	}
	_, err := tier.ParseTimeout(strings.Repeat("9", 10000) + "ms")
	if err == nil || len(err.Error()) > 200 {
		t.Errorf("a long malformed value: error %q; want a short one", err)
	}
}

func TestFormatTimeout(t *testing.T) {
	for _, c := range []struct {
		in   time.Duration
		want string
	}{
		{4850 * time.Millisecond, "4850ms"},
		{4850*time.Millisecond + 999*time.Microsecond, "4850ms"}, // rounded down: never more than is left
		{999 * time.Microsecond, "0ms"},
		{0, "0ms"},
		{-time.Second, "0ms"},
		{48 * time.Hour, "99999999ms"},
	} {
		if got := tier.FormatTimeout(c.in); got != c.want {
			t.Errorf("FormatTimeout(%v) = %q, want %q", c.in, got, c.want)
		}
		if got := string(tier.AppendTimeout([]byte("x"), c.in)); got != "x"+c.want {
			t.Errorf("AppendTimeout(x, %v) = %q, want %q", c.in, got, "x"+c.want)
		}
	}
}

func TestShortenDeadline(t *testing.T) {
	start := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	own := start.Add(2 * time.Second)
	for _, c := range []struct {
		name     string
		deadline time.Time
		v        string
		want     time.Time
		bad      bool
	}{
		{"shorter", own, "500ms", start.Add(500 * time.Millisecond), false},
		{"longer cannot extend", own, "99999999ms", own, false},
		{"none of its own", time.Time{}, "750ms", start.Add(750 * time.Millisecond), false},
		{"spent", own, "0ms", start, false},
		{"malformed", own, "1s", own, true},
		{"malformed, none of its own", time.Time{}, "soon", time.Time{}, true},
	} {
		got, err := tier.ShortenDeadline(c.deadline, start, c.v)
		if !got.Equal(c.want) || (err != nil) != c.bad {
			t.Errorf("%s: ShortenDeadline(%q) = %v, %v; want %v (error %v)", c.name, c.v, got, err, c.want, c.bad)
		}
	}
}

// A value that parses is what FormatTimeout writes for it; no value, however
// long or strange, parses to a negative budget or one beyond the header's
// range, and none extends a deadline.
func FuzzParseTimeout(f *testing.F) {
	for _, s := range []string{"4850ms", "0ms", "99999999ms", "100000000ms", "ms", "5s", "-1ms", " 1ms", "1e3ms", "00ms"} {
		f.Add(s)
	}
	start := time.Unix(1e9, 0)
	own := start.Add(time.Minute)
	f.Fuzz(func(t *testing.T, v string) {
		d, err := tier.ParseTimeout(v)
		if err != nil {
			if dl, _ := tier.ShortenDeadline(own, start, v); !dl.Equal(own) {
				t.Fatalf("malformed %q moved the deadline to %v", v, dl)
			}
			return
		}
		if d < 0 || d > 99999999*time.Millisecond {
			t.Fatalf("ParseTimeout(%q) = %v: out of range", v, d)
		}
		if ms, _ := strconv.ParseInt(strings.TrimSuffix(v, "ms"), 10, 64); time.Duration(ms)*time.Millisecond != d {
			t.Fatalf("ParseTimeout(%q) = %v", v, d)
		}
		if back, _ := tier.ParseTimeout(tier.FormatTimeout(d)); back != d {
			t.Fatalf("%q -> %v -> %q -> %v", v, d, tier.FormatTimeout(d), back)
		}
		if dl, _ := tier.ShortenDeadline(own, start, v); dl.After(own) {
			t.Fatalf("%q extended the deadline to %v", v, dl)
		}
	})
}

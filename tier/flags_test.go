package tier_test

import (
	"flag"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/threetier/threetier/tier"
)

func TestDurationVarSaysAUnitIsNeeded(t *testing.T) {
	for _, tc := range []struct {
		value, want string
		d           time.Duration
	}{
		{"1m30s", "", 90 * time.Second},
		{"-1s", "", -time.Second},
		{"0", "", 0},
		{"2", `invalid value "2" for flag -every: a duration needs a unit: 2s, 2ms or 2m`, 0},
		{"1.5", "a duration needs a unit: 1.5s", 0},
		{"soon", "not a duration: want a number with a unit, such as 2s", 0},
		{"", "not a duration", 0},
	} {
		fs := flag.NewFlagSet("x", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		var d time.Duration
		tier.DurationVar(fs, &d, "every", time.Minute, "how often")
		err := fs.Parse([]string{"-every", tc.value})
		switch {
		case tc.want == "" && (err != nil || d != tc.d):
			t.Errorf("-every %q: %v, %v; want %v", tc.value, d, err, tc.d)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("-every %q: error %v, want one with %q", tc.value, err, tc.want)
		}
	}

	// The default is set, and shown by -h as fs.DurationVar's would be.
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	var d time.Duration
	tier.DurationVar(fs, &d, "every", 2*time.Second, "how often")
	var help strings.Builder
	fs.SetOutput(&help)
	fs.PrintDefaults()
	if d != 2*time.Second || !strings.Contains(help.String(), "(default 2s)") {
		t.Fatalf("default %v, help %q", d, help.String())
	}
}

package accept

import (
	"strings"
	"testing"
)

func TestPrefersHTML(t *testing.T) {
	for _, c := range []struct {
		accept string
		html   bool
	}{
		// Browsers navigating.
		{"text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8", true},
		{"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", true},
		{"TEXT/HTML", true},
		{"text/*", true},
		{"*/*;q=0.5, text/html", true},
		{" text/html ; level=1 ; q=0.7 , application/json;q=0.6", true},
		// Programs and shells.
		{"", false},
		{"*/*", false},
		{"application/json", false},
		{"application/problem+json", false},
		{"application/json, application/problem+json", false},
		{"application/json, text/html", false},          // a tie keeps JSON
		{"text/html;q=0.5, application/*;q=0.5", false}, // a tie keeps JSON
		{"text/html;q=0, */*", false},                   // html refused
		{"application/*;q=0.1, text/html;q=0.2", true},  // html weighs more
		{"*/*;q=0.9, application/json;q=0.1", true},     // json named, and weighs less than html by */*
		{"text/html;q=0.9, application/problem+json", false},
		{"text/html;q=0.1, application/json;q=0.9, application/json;q=0.05", false}, // the higher q of equals
		// Malformed ranges are skipped.
		{"text/html;q=2", false},
		{"text/html;q=x", false},
		{"text/html;q=NaN", false},
		{"text /html", false},
		{"*/html", false},
		{"html", false},
		{",,,;;;", false},
		{"text/html;q=0.8;q=0.1", true}, // the first q counts
		{`text/html;x="a,b"`, true},
	} {
		if got := PrefersHTML(c.accept); got != c.html {
			t.Errorf("PrefersHTML(%q) = %v, want %v", c.accept, got, c.html)
		}
	}
}

func TestPrefersHTMLAllocatesNothing(t *testing.T) {
	const browser = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"
	if n := testing.AllocsPerRun(100, func() { PrefersHTML(browser) }); n != 0 {
		t.Errorf("%v allocations per call, want 0", n)
	}
}

// FuzzPrefersHTML: any header is read without a panic; HTML is chosen
// only when something names it, and never over a problem+json asked for
// first with the full weight.
func FuzzPrefersHTML(f *testing.F) {
	for _, s := range []string{"", "*/*", "text/html", "text/html;q=0.5,*/*;q=0.4", "application/json", "text/*;q=1.0", `a/b;c="d,e";q=0`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, accept string) {
		if PrefersHTML(accept) {
			lower := strings.ToLower(accept)
			if !strings.Contains(lower, "html") && !strings.Contains(lower, "*") {
				t.Fatalf("HTML for %q, which names neither html nor a wildcard", accept)
			}
		}
		if PrefersHTML("application/problem+json," + accept) {
			t.Fatalf("HTML over problem+json;q=1 for %q", accept)
		}
	})
}

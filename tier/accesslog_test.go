package tier_test

import (
	"testing"

	"github.com/threetier/threetier/tier"
)

func TestAccessFieldsReadBackAsWritten(t *testing.T) {
	for _, f := range []tier.AccessFields{tier.DefaultAccessFields, tier.AccessMethod | tier.AccessStatus, tier.AccessUserAgent} {
		got, err := tier.ParseAccessFields(f.String())
		if err != nil || got != f {
			t.Errorf("%b written %q, read back %b, %v", f, f.String(), got, err)
		}
	}
	if s := tier.AccessFields(0).String(); s != "" {
		t.Errorf("no fields written %q", s)
	}
	if _, err := tier.ParseAccessFields("method,nope"); err == nil {
		t.Error("an unknown field accepted")
	}
}

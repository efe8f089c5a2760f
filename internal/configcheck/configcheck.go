// Package configcheck holds the rules that the tiers' Config.Validate
// methods share but users never call.
package configcheck

import (
	"strings"

	"github.com/threetier/threetier/tier"
)

// InField returns err with parent and a dot put before the Field of every
// *tier.ConfigError in it, for a Config whose Validate checks a nested one:
// web's Config reports its FilesConfig's "Prefix" as "Files.Prefix".
func InField(parent string, err error) error {
	switch e := err.(type) {
	case *tier.ConfigError:
		if e.Field != "" {
			e.Field = parent + "." + e.Field
		}
	case interface{ Unwrap() []error }:
		for _, inner := range e.Unwrap() {
			InField(parent, inner)
		}
	case interface{ Unwrap() error }:
		InField(parent, e.Unwrap())
	}
	return err
}

// RoutePath is the rule for a Config field that names a route a tier
// serves on its listener (a metrics or probe path): empty or "-"
// means not served, anything else must be a plain path starting with "/"
// (no ":", "*", "?" or "#", which a router would read as a pattern or
// never see). It returns a *tier.ConfigError naming field, or nil.
func RoutePath(field, path string) error {
	if path == "" || path == "-" || (strings.HasPrefix(path, "/") && !strings.ContainsAny(path, ":*?#")) {
		return nil
	}
	return &tier.ConfigError{Field: field, Value: path, Problem: "must be a plain path starting with /", Allowed: `for example /metrics, or "-" for off`}
}

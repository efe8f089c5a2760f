package main

import "strings"

// spec is what the templates are filled with: the command line's choices
// and the names made from them.
type spec struct {
	Module    string // the service's module path
	Resource  string // the first resource, plural: its table, route and file
	Postgres  bool   // PostgreSQL is the default database
	FrontDoor bool   // the balancer role and its cluster are included
	Version   string // the framework version to require, or "" with Replace
	Replace   string // an absolute path to a checkout of the framework, or ""
}

// Name is the service's short name: binary, database, namespace.
func (s spec) Name() string { return serviceName(s.Module) }

// Type is the Go type of one row of the resource: "orders" is Order.
func (s spec) Type() string { return strings.ToUpper(s.singular()[:1]) + s.singular()[1:] }

// Require is the framework version go.mod requires: with a replace
// directive any version will do, and v0.0.0 says that none was released.
func (s spec) Require() string {
	if s.Version != "" {
		return s.Version
	}
	return "v0.0.0"
}

// singular undoes the common English plurals; a name that is no plural
// stays as it is.
func (s spec) singular() string {
	r := s.Resource
	switch {
	case len(r) > 3 && strings.HasSuffix(r, "ies"):
		return r[:len(r)-3] + "y"
	case len(r) > 3 && (strings.HasSuffix(r, "sses") || strings.HasSuffix(r, "xes") || strings.HasSuffix(r, "ches") || strings.HasSuffix(r, "shes")):
		return r[:len(r)-2]
	case len(r) > 1 && strings.HasSuffix(r, "s") && !strings.HasSuffix(r, "ss") && !strings.HasSuffix(r, "us"):
		return r[:len(r)-1]
	}
	return r
}

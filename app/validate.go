package app

import (
	"errors"
	"reflect"
	"strings"

	"github.com/go-playground/validator/v10"
	"github.com/labstack/echo/v4"

	"github.com/threetier/threetier/tier"
)

// BodyValidator checks bound requests against their `validate` struct tags
// (go-playground/validator) and reports every invalid field by the name
// the client used for it (its json, query or param name). It implements
// echo.Validator. Safe for concurrent use; make one per server.
type BodyValidator struct {
	v *validator.Validate
}

var _ echo.Validator = (*BodyValidator)(nil)

// NewBodyValidator returns a BodyValidator with go-playground's built-in rules.
// Add rules of your own on Engine().
func NewBodyValidator() *BodyValidator {
	v := validator.New(validator.WithRequiredStructEnabled())
	v.RegisterTagNameFunc(clientName)
	return &BodyValidator{v: v}
}

// Engine returns the underlying validator, to register custom rules.
func (v *BodyValidator) Engine() *validator.Validate { return v.v }

// Validate checks i (a struct or a pointer to one; anything else, a nil
// pointer included, passes) and returns a *ValidationError listing every
// invalid field.
func (v *BodyValidator) Validate(i any) error {
	rv := reflect.ValueOf(i)
	for rv.Kind() == reflect.Pointer {
		if rv.IsNil() {
			return nil // an optional body that was not sent
		}
		rv = rv.Elem()
	}
	if rv.Kind() != reflect.Struct {
		return nil
	}
	err := v.v.Struct(i)
	var verrs validator.ValidationErrors
	if !errors.As(err, &verrs) {
		return err
	}
	fields := make([]tier.FieldProblem, 0, len(verrs))
	for _, fe := range verrs {
		fields = append(fields, tier.FieldProblem{Field: fieldPath(fe), Detail: describe(fe, rulesOf(rv.Type(), fe))})
	}
	return &ValidationError{Fields: fields}
}

// clientName names a field as the client sent it.
func clientName(f reflect.StructField) string {
	for _, tag := range []string{"json", "query", "param", "form", "header"} {
		name, _, _ := strings.Cut(f.Tag.Get(tag), ",")
		if name != "" && name != "-" {
			return name
		}
	}
	return f.Name
}

// fieldPath drops the root type from the namespace: "items[0].name".
func fieldPath(fe validator.FieldError) string {
	ns := fe.Namespace()
	if _, rest, ok := strings.Cut(ns, "."); ok {
		return rest
	}
	return ns
}

// rulesOf returns the validate tag that applies to the field fe is about,
// found from root (the validated struct's type) by fe's namespace, or ""
// when the namespace cannot be followed (a map key with a dot in it).
func rulesOf(root reflect.Type, fe validator.FieldError) string {
	segments := strings.Split(fe.StructNamespace(), ".")
	t, rules := root, ""
	for _, seg := range segments[1:] {
		name, _, _ := strings.Cut(seg, "[")
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct {
			return ""
		}
		f, ok := t.FieldByName(name)
		if !ok {
			return ""
		}
		t, rules = f.Type, f.Tag.Get("validate")
		// Each index steps into an element, whose rules follow "dive".
		for range strings.Count(seg, "[") {
			for t.Kind() == reflect.Pointer {
				t = t.Elem()
			}
			if t.Kind() != reflect.Slice && t.Kind() != reflect.Array && t.Kind() != reflect.Map {
				return ""
			}
			t = t.Elem()
			_, rules, _ = strings.Cut(rules, "dive")
			rules = strings.TrimPrefix(rules, ",")
		}
	}
	return rules
}

// lowerBound is what the rules (a validate tag) say about the smallest
// number allowed: "must be at least 1" for min=1 or gte=1, "must be more
// than 0" for gt=0, or "" when they say nothing.
func lowerBound(rules string) string {
	for rule := range strings.SplitSeq(rules, ",") {
		tag, p, _ := strings.Cut(rule, "=")
		switch tag {
		case "dive":
			return "" // the rules after it are the elements'
		case "min", "gte":
			return "must be at least " + p
		case "gt":
			return "must be more than " + p
		}
	}
	return ""
}

// describe says what is wrong with a field in words a client understands.
// rules is the field's validate tag, when known: a number that is
// required and has a lower bound is told the bound, so that 0 and -1 get
// the same answer.
func describe(fe validator.FieldError, rules string) string {
	p := fe.Param()
	unit := ""
	switch fe.Kind() {
	case reflect.String:
		unit = " character"
	case reflect.Slice, reflect.Array, reflect.Map:
		unit = " item"
	}
	if unit != "" && p != "1" {
		unit += "s"
	}
	switch fe.Tag() {
	case "required", "required_if", "required_unless", "required_with", "required_without":
		if isNumber(fe.Kind()) {
			if bound := lowerBound(rules); bound != "" {
				return bound
			}
		}
		return "is required"
	case "min", "gte":
		return "must be at least " + p + unit
	case "max", "lte":
		return "must be at most " + p + unit
	case "gt":
		return "must be more than " + p + unit
	case "lt":
		return "must be less than " + p + unit
	case "len":
		return "must be exactly " + p + unit
	case "eq":
		return "must be " + p
	case "ne":
		return "must not be " + p
	case "oneof":
		return "must be one of: " + strings.Join(strings.Fields(p), ", ")
	case "email":
		return "must be an email address"
	case "url", "http_url":
		return "must be a URL"
	case "uri":
		return "must be a URI"
	case "uuid", "uuid4", "uuid7":
		return "must be a UUID"
	case "alpha":
		return "must contain letters only"
	case "alphanum":
		return "must contain letters and digits only"
	case "numeric", "number":
		return "must be a number"
	case "datetime":
		return "must be a date/time in the layout " + p
	}
	if p != "" {
		return "fails the " + fe.Tag() + "=" + p + " rule"
	}
	return "fails the " + fe.Tag() + " rule"
}

func isNumber(k reflect.Kind) bool {
	switch k {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64:
		return true
	}
	return false
}

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

// Validator is the former name of BodyValidator, which tier.Validator (a
// Config that checks itself) made ambiguous.
//
// Deprecated: use BodyValidator.
type Validator = BodyValidator

// NewValidator is the former name of NewBodyValidator.
//
// Deprecated: use NewBodyValidator.
func NewValidator() *BodyValidator { return NewBodyValidator() }

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
		fields = append(fields, tier.FieldProblem{Field: fieldPath(fe), Detail: describe(fe)})
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

// describe says what is wrong with a field in words a client understands.
func describe(fe validator.FieldError) string {
	p := fe.Param()
	unit := ""
	switch fe.Kind() {
	case reflect.String:
		unit = " characters"
	case reflect.Slice, reflect.Array, reflect.Map:
		unit = " items"
	}
	switch fe.Tag() {
	case "required", "required_if", "required_unless", "required_with", "required_without":
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

package app

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/labstack/echo/v4"

	"github.com/threetier/threetier/tier"
)

// Bind decodes a request into a new T (a struct, or any type a JSON body
// decodes into) and validates it: path parameters
// into fields tagged `param`, query parameters into fields tagged `query`
// (for every method), then a JSON body into the `json` fields. A request
// that cannot be decoded gets a 400 problem (413 past the body limit, 415
// for a body that is not JSON); fields that break their `validate` rules
// or have the wrong JSON type get a 422 problem naming each one. With a
// pointer T the body is optional: none (or JSON null) gives nil. The
// handler returns that error as it is:
//
//	in, err := app.Bind[CreateUser](c)
//	if err != nil {
//		return err
//	}
func Bind[T any](c echo.Context) (T, error) {
	var v T
	if isStruct(reflect.TypeFor[T]()) {
		b := &echo.DefaultBinder{}
		if err := b.BindPathParams(c, &v); err != nil {
			var num *strconv.NumError
			if errors.As(err, &num) && errors.Is(num.Err, strconv.ErrRange) {
				// A number too large for its field names nothing there is.
				return v, outOfRange(c, num.Num)
			}
			return v, badRequest("invalid path parameter", err)
		}
		if err := b.BindQueryParams(c, &v); err != nil {
			return v, badRequest("invalid query parameter", err)
		}
	}
	if err := decodeJSONBody(c.Request(), &v); err != nil {
		return v, err
	}
	if val := c.Echo().Validator; val != nil {
		target := any(&v)
		if reflect.TypeFor[T]().Kind() == reflect.Pointer {
			target = v // the struct it points to, if the body made one
		}
		if err := val.Validate(target); err != nil {
			return v, err
		}
	}
	return v, nil
}

// PathID returns the path parameter name as the id of a row: a positive
// integer that fits a BIGINT key, 1 to math.MaxInt64 (leading zeros
// allowed). Anything else the handler returns as it is: a 400 problem for
// what is not a positive integer ("abc", "0", "-1"), a 404 for a positive
// integer too large to be any row's id.
//
//	id, err := app.PathID(c, "id")
//	if err != nil {
//		return err
//	}
func PathID(c echo.Context, name string) (uint64, error) {
	raw := c.Param(name)
	if raw != "" && strings.Trim(raw, "0123456789") == "" && strings.Trim(raw, "0") != "" {
		id, err := strconv.ParseInt(raw, 10, 64)
		if err != nil {
			return 0, outOfRange(c, raw)
		}
		return uint64(id), nil
	}
	return 0, tier.NewProblem(http.StatusBadRequest, fmt.Sprintf("%s must be a positive integer, not %q", name, raw))
}

// outOfRange is the 404 for the path parameter whose value is raw, a
// number too large to name anything.
func outOfRange(c echo.Context, raw string) *tier.Problem {
	name := "the path parameter"
	if i := slices.Index(c.ParamValues(), raw); i >= 0 && i < len(c.ParamNames()) {
		name = c.ParamNames()[i]
	}
	return tier.NewProblem(http.StatusNotFound, fmt.Sprintf("%s %s does not exist", name, raw))
}

// Handle adapts a typed handler: it binds and validates In (see Bind),
// calls h, and sends what h returns as JSON with the given status (204
// sends no body). Errors from h go to the server's error handler.
//
//	e.POST("/users", app.Handle(http.StatusCreated, svc.CreateUser))
func Handle[In, Out any](status int, h func(c echo.Context, in In) (Out, error)) echo.HandlerFunc {
	return func(c echo.Context) error {
		in, err := Bind[In](c)
		if err != nil {
			return err
		}
		out, err := h(c, in)
		if err != nil {
			return err
		}
		if status == http.StatusNoContent {
			return c.NoContent(status)
		}
		return c.JSON(status, out)
	}
}

// isStruct tells the types Echo can bind parameters into.
func isStruct(t reflect.Type) bool { return t.Kind() == reflect.Struct }

func badRequest(what string, err error) *tier.Problem {
	msg := err.Error()
	var he *echo.HTTPError
	if errors.As(err, &he) {
		if s, ok := he.Message.(string); ok {
			msg = s
		}
	}
	return tier.NewProblem(http.StatusBadRequest, what+": "+msg)
}

// decodeJSONBody decodes the body, if there is one, into v: exactly one
// JSON value, nothing after it.
func decodeJSONBody(r *http.Request, v any) error {
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		return nil
	}
	if ct := r.Header.Get(echo.HeaderContentType); !isJSON(ct) {
		return tier.NewProblem(http.StatusUnsupportedMediaType, fmt.Sprintf("request body must be application/json, not %q", ct))
	}
	// What was read is kept to name a field of the wrong type by its
	// place in the body: encoding/json leaves array indexes out. The
	// buffer is reused: only an error reads it, and keeps none of it.
	read := bodyCopies.Get().(*bytes.Buffer)
	defer func() {
		if read.Cap() <= 64<<10 { // a large body's buffer is not kept
			read.Reset()
			bodyCopies.Put(read)
		}
	}()
	dec := json.NewDecoder(io.TeeReader(r.Body, read))
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) && r.ContentLength < 0 {
			return nil // a chunked request with an empty body
		}
		return jsonProblem(err, read.Bytes())
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		if err != nil {
			return jsonProblem(err, nil)
		}
		return tier.NewProblem(http.StatusBadRequest, "malformed JSON body: more data after the JSON value")
	}
	return nil
}

func isJSON(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return false
	}
	return mt == echo.MIMEApplicationJSON || strings.HasSuffix(mt, "+json")
}

// bodyCopies holds the buffers decodeJSONBody copies bodies into.
var bodyCopies = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// jsonProblem says what is wrong with a body encoding/json refused; body
// is what it read.
func jsonProblem(err error, body []byte) error {
	var (
		syntax *json.SyntaxError
		typ    *json.UnmarshalTypeError
		tooBig *http.MaxBytesError
	)
	switch {
	case errors.As(err, &tooBig):
		return tier.NewProblem(http.StatusRequestEntityTooLarge, fmt.Sprintf("request body is larger than %d bytes", tooBig.Limit))
	case errors.As(err, &syntax):
		return tier.NewProblem(http.StatusBadRequest, fmt.Sprintf("malformed JSON body at byte %d: %v", syntax.Offset, syntax))
	case errors.As(err, &typ) && typ.Field != "":
		field := jsonPathAt(body, typ.Offset)
		if field == "" {
			field = typ.Field
		}
		return &ValidationError{Fields: []tier.FieldProblem{{Field: field, Detail: "must be " + jsonKind(typ.Type) + ", not " + typ.Value}}}
	case errors.As(err, &typ):
		return tier.NewProblem(http.StatusBadRequest, "JSON body must be "+jsonKind(typ.Type)+", not "+typ.Value)
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return tier.NewProblem(http.StatusBadRequest, "malformed JSON body: it ends too early")
	}
	return tier.NewProblem(http.StatusBadRequest, "malformed JSON body: "+err.Error())
}

// jsonPathAt names the value of body that an UnmarshalTypeError's offset
// points at (the end of a literal, the opening of an object or array) the
// way BodyValidator names fields: "items[2].quantity". It returns "" for
// an offset past the body.
func jsonPathAt(body []byte, offset int64) string {
	type level struct {
		array bool
		index int    // of the current element, in an array
		key   string // of the current member, in an object
		onKey bool   // in an object, the next string is a key
	}
	var stack []*level
	dec := json.NewDecoder(bytes.NewReader(body))
	for {
		tok, err := dec.Token()
		if err != nil {
			return ""
		}
		if d, ok := tok.(json.Delim); ok && (d == '}' || d == ']') {
			stack = stack[:len(stack)-1]
			continue
		}
		if n := len(stack); n > 0 {
			top := stack[n-1]
			if top.onKey {
				top.key, top.onKey = tok.(string), false
				continue
			}
			top.index++
			top.onKey = !top.array
		}
		if dec.InputOffset() >= offset {
			var b strings.Builder
			for _, l := range stack {
				switch {
				case l.array:
					fmt.Fprintf(&b, "[%d]", l.index)
				case b.Len() > 0:
					b.WriteString("." + l.key)
				default:
					b.WriteString(l.key)
				}
			}
			return b.String()
		}
		if d, ok := tok.(json.Delim); ok {
			stack = append(stack, &level{array: d == '[', index: -1, onKey: d == '{'})
		}
	}
}

// jsonKind names a Go type the way a JSON client thinks of it.
func jsonKind(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Map, reflect.Struct:
		return "an object"
	}
	return "a " + t.String()
}

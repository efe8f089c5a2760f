package app

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/go-playground/validator/v10"
	"github.com/labstack/echo/v4"

	"github.com/threetier/threetier/tier"
)

type searchRequest struct {
	Org   string   `param:"org" json:"-" validate:"required,alphanum"`
	Q     string   `query:"q" json:"-" validate:"omitempty,max=50"`
	Page  int      `query:"page" json:"-" validate:"gte=0"`
	Title string   `json:"title" validate:"required,min=1,max=80"`
	Score float64  `json:"score" validate:"gte=0,lte=1"`
	Kind  string   `json:"kind" validate:"omitempty,oneof=book film"`
	Tags  []string `json:"tags" validate:"max=5,dive,min=1"`
	Owner *struct {
		Email string `json:"email" validate:"required,email"`
	} `json:"owner"`
}

// bindRequest runs Bind on a request the way the server would.
func bindRequest[T any](t testing.TB, method, target, contentType, body string, params ...string) (T, error) {
	t.Helper()
	e := echo.New()
	e.Validator = NewBodyValidator()
	var r *http.Request
	if body == "" {
		r = httptest.NewRequest(method, target, nil)
	} else {
		r = httptest.NewRequest(method, target, strings.NewReader(body))
	}
	if contentType != "" {
		r.Header.Set("Content-Type", contentType)
	}
	c := e.NewContext(r, httptest.NewRecorder())
	var names, values []string
	for i := 0; i+1 < len(params); i += 2 {
		names, values = append(names, params[i]), append(values, params[i+1])
	}
	c.SetParamNames(names...)
	c.SetParamValues(values...)
	return Bind[T](c)
}

func TestBindAllSources(t *testing.T) {
	in, err := bindRequest[searchRequest](t, "POST", "/orgs/acme/search?q=go&page=2", "application/json; charset=utf-8",
		`{"title":"Go","score":0.5,"kind":"book","tags":["x"],"owner":{"email":"a@b.example"}}`, "org", "acme")
	if err != nil {
		t.Fatal(err)
	}
	if in.Org != "acme" || in.Q != "go" || in.Page != 2 || in.Title != "Go" || in.Score != 0.5 || in.Owner.Email != "a@b.example" {
		t.Fatalf("bound %+v", in)
	}
}

func TestBindReportsEveryField(t *testing.T) {
	_, err := bindRequest[searchRequest](t, "POST", "/orgs/a-b/search?page=-1", "application/json",
		`{"title":"","score":2,"kind":"song","tags":["ok",""],"owner":{"email":"nope"}}`, "org", "a-b")
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("err = %v, want a ValidationError", err)
	}
	want := map[string]string{
		"org":         "must contain letters and digits only",
		"page":        "must be at least 0",
		"title":       "is required",
		"score":       "must be at most 1",
		"kind":        "must be one of: book, film",
		"tags[1]":     "must be at least 1 character",
		"owner.email": "must be an email address",
	}
	got := map[string]string{}
	for _, f := range ve.Fields {
		got[f.Field] = f.Detail
	}
	for field, detail := range want {
		if got[field] != detail {
			t.Errorf("field %s: %q, want %q", field, got[field], detail)
		}
	}
	if len(got) != len(want) {
		t.Errorf("fields %v, want exactly %d", got, len(want))
	}
	if p := ProblemFor(err); p.Status != http.StatusUnprocessableEntity || len(p.Errors) != len(want) {
		t.Fatalf("problem %+v", p)
	}
}

func TestBindPointerAndForeignValidator(t *testing.T) {
	type note struct {
		Title string `json:"title" validate:"required"`
	}
	in, err := bindRequest[*note](t, "POST", "/s", "application/json", `{"title":"x"}`)
	if err != nil || in == nil || in.Title != "x" {
		t.Fatalf("%+v, %v", in, err)
	}
	if _, err := bindRequest[*note](t, "POST", "/s", "application/json", `{"title":""}`); ProblemFor(err).Status != http.StatusUnprocessableEntity {
		t.Fatalf("pointer target: err = %v, want 422", err)
	}
	// A pointer target is how a handler takes an optional body: none, or
	// JSON null, gives nil, which has no fields to validate.
	for _, body := range []string{"", "null"} {
		in, err := bindRequest[*note](t, "POST", "/s", "application/json", body)
		if err != nil || in != nil {
			t.Fatalf("body %q into a pointer: %+v, %v (problem %d), want nil and no error", body, in, err, ProblemFor(err).Status)
		}
	}
	// A plain go-playground validator's errors map to 422 as well.
	err = validator.New().Struct(struct {
		Name string `validate:"required"`
	}{})
	if p := ProblemFor(err); p.Status != http.StatusUnprocessableEntity || len(p.Errors) != 1 || p.Errors[0].Field != "Name" {
		t.Fatalf("problem %+v", p)
	}
}

func TestBindNonStructBodies(t *testing.T) {
	ids, err := bindRequest[[]int](t, "POST", "/ids?x=1", "application/json", `[1,2,3]`)
	if err != nil || len(ids) != 3 {
		t.Fatalf("%v, %v", ids, err)
	}
	m, err := bindRequest[map[string]any](t, "POST", "/m", "application/problem+json", `{"a":1}`)
	if err != nil || m["a"] != float64(1) {
		t.Fatalf("%v, %v", m, err)
	}
}

// FuzzBind feeds arbitrary bodies, content types, queries and path values
// to Bind: it must answer with the value or a clear 4xx problem, never
// panic, never a 5xx.
func FuzzBind(f *testing.F) {
	f.Add(`{"title":"Go","score":0.5}`, "application/json", "q=go&page=1", "acme")
	f.Add(`{"title":`, "application/json", "page=x", "")
	f.Add(`{"title":"a"} trailing`, "application/json", "", "a")
	f.Add(`[]`, "application/vnd.api+json", "page=99999999999999999999", "a")
	f.Add(`{"owner":{"email":5}}`, "application/json; charset=\"", "q=%zz", "x/y")
	f.Add(`{"tags":[null,"",1]}`, "text/plain", "tags=a&tags=b", "ü")
	f.Add("\x00\xff", "", "page=-0", "%")
	f.Fuzz(func(t *testing.T, body, contentType, query, org string) {
		e := echo.New()
		e.Validator = NewBodyValidator()
		r := httptest.NewRequest("POST", "/orgs/x/search", strings.NewReader(body))
		r.URL.RawQuery = query
		if _, err := url.ParseQuery(query); err != nil {
			r.URL.RawQuery = url.QueryEscape(query)
		}
		if contentType != "" {
			r.Header.Set("Content-Type", contentType)
		}
		rec := httptest.NewRecorder()
		r.Body = http.MaxBytesReader(rec, r.Body, 1<<10)
		c := e.NewContext(r, rec)
		c.SetParamNames("org")
		c.SetParamValues(org)
		_, err := Bind[searchRequest](c)
		if err == nil {
			return
		}
		p := ProblemFor(err)
		if p.Status < 400 || p.Status > 499 {
			t.Fatalf("status %d for %q (%q): %v", p.Status, body, contentType, err)
		}
		var tp *tier.Problem
		var ve *ValidationError
		if !errors.As(err, &tp) && !errors.As(err, &ve) {
			t.Fatalf("Bind returned a %T: %v", err, err)
		}
	})
}

// bindProblem binds body into T and returns the problem its error gets,
// with its fields by name.
func bindProblem[T any](t *testing.T, body string, params ...string) (*tier.Problem, map[string]string) {
	t.Helper()
	_, err := bindRequest[T](t, "POST", "/x", "application/json", body, params...)
	if err == nil {
		t.Fatalf("%s: bound without an error", body)
	}
	p := ProblemFor(err)
	fields := map[string]string{}
	for _, f := range p.Errors {
		fields[f.Field] = f.Detail
	}
	return p, fields
}

type orderLines struct {
	Items []struct {
		ProductID uint64 `json:"product_id" validate:"required,min=1"`
		Quantity  int    `json:"quantity" validate:"required,min=1,max=1000"`
	} `json:"items" validate:"required,min=1,max=50,dive"`
	Codes []int    `json:"codes" validate:"dive,required,gte=10"`
	Note  string   `json:"note" validate:"omitempty,min=1,max=1"`
	Tags  []string `json:"tags" validate:"max=1"`
}

// A number the rules bound below is told the bound, whether it is 0 (which
// "required" catches first) or below; the index of a line is in its path,
// for a wrong JSON type too; a bound of 1 is singular.
func TestBindDescribesFieldsPrecisely(t *testing.T) {
	_, got := bindProblem[orderLines](t, `{"items":[{"product_id":1,"quantity":1},{"product_id":0,"quantity":0},{"product_id":2,"quantity":-1}],"codes":[10,0,5],"note":"ab","tags":["a","b"]}`)
	want := map[string]string{
		"items[1].product_id": "must be at least 1",
		"items[1].quantity":   "must be at least 1",
		"items[2].quantity":   "must be at least 1",
		"codes[1]":            "must be at least 10",
		"codes[2]":            "must be at least 10",
		"note":                "must be at most 1 character",
		"tags":                "must be at most 1 item",
	}
	if len(got) != len(want) {
		t.Errorf("fields %v, want %d", got, len(want))
	}
	for field, detail := range want {
		if got[field] != detail {
			t.Errorf("%s: %q, want %q", field, got[field], detail)
		}
	}

	_, got = bindProblem[orderLines](t, `{"items":[]}`)
	if got["items"] != "must be at least 1 item" {
		t.Errorf("no items: %v", got)
	}
	for body, field := range map[string]string{
		`{"items":[{"product_id":1,"quantity":1},{"product_id":1,"quantity":1},{"product_id":1, "quantity" : "2"}]}`: "items[2].quantity",
		`{"items":[{"product_id":1,"quantity":1},{"product_id":[1]}]}`:                                               "items[1].product_id",
		`{"codes":[1,2,{}]}`: "codes[2]",
		`{"items":{}}`:       "items",
	} {
		p, got := bindProblem[orderLines](t, body)
		if p.Status != http.StatusUnprocessableEntity || len(got) != 1 || got[field] == "" {
			t.Errorf("%s: %d %v, want the field %s", body, p.Status, got, field)
		}
	}
}

// An id in the path is a positive integer that fits a BIGINT: a malformed
// one is a 400 that says so, one too large for any row a 404; through Bind
// as through PathID.
func TestPathIDs(t *testing.T) {
	type byID struct {
		ID int64 `param:"id" json:"-"`
	}
	for raw, status := range map[string]int{
		"9223372036854775808":  http.StatusNotFound,
		"18446744073709551616": http.StatusNotFound,
		"99999999999999999999": http.StatusNotFound,
		"abc":                  http.StatusBadRequest,
		"0":                    http.StatusBadRequest,
		"000":                  http.StatusBadRequest,
		"-1":                   http.StatusBadRequest,
		"+1":                   http.StatusBadRequest,
		"1.5":                  http.StatusBadRequest,
		"":                     http.StatusBadRequest,
	} {
		c := echo.New().NewContext(httptest.NewRequest("GET", "/orders/x", nil), httptest.NewRecorder())
		c.SetParamNames("id")
		c.SetParamValues(raw)
		_, err := PathID(c, "id")
		p := ProblemFor(err)
		if p.Status != status || !strings.HasPrefix(p.Detail, "id ") || (status == http.StatusBadRequest) != strings.Contains(p.Detail, "positive integer") {
			t.Errorf("PathID %q: %d %q, want %d", raw, p.Status, p.Detail, status)
		}
	}
	for raw, want := range map[string]uint64{"1": 1, "007": 7, "9223372036854775807": 1<<63 - 1} {
		c := echo.New().NewContext(httptest.NewRequest("GET", "/orders/x", nil), httptest.NewRecorder())
		c.SetParamNames("id")
		c.SetParamValues(raw)
		if id, err := PathID(c, "id"); err != nil || id != want {
			t.Errorf("PathID %q: %d, %v; want %d", raw, id, err, want)
		}
	}
	_, err := bindRequest[byID](t, "GET", "/orders/x", "", "", "id", "9223372036854775808")
	if p := ProblemFor(err); p.Status != http.StatusNotFound || p.Detail != "id 9223372036854775808 does not exist" {
		t.Errorf("Bind, out of range: %d %q", p.Status, p.Detail)
	}
	_, err = bindRequest[byID](t, "GET", "/orders/x", "", "", "id", "x1")
	if p := ProblemFor(err); p.Status != http.StatusBadRequest {
		t.Errorf("Bind, malformed: %d %q", p.Status, p.Detail)
	}
}

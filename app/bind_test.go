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
		"tags[1]":     "must be at least 1 characters",
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

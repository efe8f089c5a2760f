package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/go-playground/validator/v10"
	"github.com/labstack/echo/v4"

	"github.com/threetier/threetier/internal/httpx"
	"github.com/threetier/threetier/internal/obs"
	"github.com/threetier/threetier/tier"
)

// ProblemFor maps an error to the problem the client gets, for the errors
// that do not choose their own status elsewhere (a handler can write any
// response itself):
//
//   - an error that describes its answer (a tier.ProblemError: a
//     *tier.Problem, the data tier's errors) gets that answer, wrapped or
//     not: 404 for a missing row, 409 for a duplicate, 503 with
//     Retry-After for an unreachable database;
//   - a *ValidationError is 422 with one entry per field;
//   - a *GuardError is 503 with Retry-After for a rejection (open breaker,
//     full bulkhead, busy key, spent retry budget) and 504 for a
//     dependency timeout;
//   - a *StatusError (another service's failure, see Client) is 502;
//   - an *echo.HTTPError keeps its status (Echo's own 404, 405, 413, ...);
//   - the caller's cancellation is 499, a deadline that passed is 503;
//   - anything else is 500, without the error's text, which only the log
//     gets.
func ProblemFor(err error) *tier.Problem {
	if p := tier.ProblemOf(err); p != nil {
		return p
	}
	var (
		ve *ValidationError
		vs validator.ValidationErrors
		ge *GuardError
		he *echo.HTTPError
		se *StatusError
		mb *http.MaxBytesError
	)
	switch {
	case errors.As(err, &ve):
		return invalidFields(ve.Fields)
	case errors.As(err, &vs):
		// From a validator used directly rather than through BodyValidator.
		fields := make([]tier.FieldProblem, len(vs))
		for i, fe := range vs {
			fields[i] = tier.FieldProblem{Field: fieldPath(fe), Detail: describe(fe, "")}
		}
		return invalidFields(fields)
	case errors.As(err, &ge):
		if errors.Is(ge.Err, ErrTimeout) {
			return tier.NewProblem(http.StatusGatewayTimeout, "a dependency did not answer in time")
		}
		p := tier.NewProblem(http.StatusServiceUnavailable, "a dependency is unavailable: "+ge.Err.Error())
		p.RetryAfter = max(ge.RetryAfter, 1)
		return p
	case errors.As(err, &se):
		return tier.NewProblem(http.StatusBadGateway, fmt.Sprintf("a dependency answered %d", se.Status))
	case errors.As(err, &mb):
		return tier.NewProblem(http.StatusRequestEntityTooLarge, fmt.Sprintf("request body is larger than %d bytes", mb.Limit))
	case errors.As(err, &he):
		if inner, ok := he.Internal.(*echo.HTTPError); ok {
			he = inner
		}
		detail := ""
		if s, ok := he.Message.(string); ok && he.Code < 500 && s != http.StatusText(he.Code) {
			detail = s
		}
		return tier.NewProblem(he.Code, detail)
	case errors.Is(err, context.Canceled):
		return &tier.Problem{Title: "Client Closed Request", Status: httpx.StatusClientClosedRequest}
	case errors.Is(err, context.DeadlineExceeded):
		return tier.NewProblem(http.StatusServiceUnavailable, "the request took too long")
	}
	return tier.NewProblem(http.StatusInternalServerError, "")
}

func invalidFields(fields []tier.FieldProblem) *tier.Problem {
	return &tier.Problem{
		Title:  http.StatusText(http.StatusUnprocessableEntity),
		Status: http.StatusUnprocessableEntity,
		Detail: "the request has invalid fields",
		Errors: fields,
	}
}

// ErrorHandler returns Echo's HTTPErrorHandler for the tier: every error
// leaves as application/problem+json carrying the request ID, and errors
// of the server's own making (5xx) are logged with their cause. mapper,
// when not nil, is asked first (see WithProblems).
func ErrorHandler(log *slog.Logger, mapper func(error) *tier.Problem) echo.HTTPErrorHandler {
	log = obs.Logger(log)
	return func(err error, c echo.Context) {
		r := c.Request()
		if c.Response().Committed {
			log.LogAttrs(r.Context(), slog.LevelWarn, "error after the response started", slog.String("path", r.URL.Path), slog.Any("err", err))
			return
		}
		var p *tier.Problem
		if fe := tier.BodyFramingError(r); fe != nil {
			// The body broke, whatever the handler made of it: the
			// client's request was malformed.
			p = tier.ProblemOf(fe)
		}
		if p == nil && mapper != nil {
			p = mapper(err)
		}
		if p == nil {
			p = ProblemFor(err)
		}
		if p.Status == httpx.StatusClientClosedRequest && r.Context().Err() == nil {
			// Canceled while the client still waits: our own doing.
			p = tier.NewProblem(http.StatusInternalServerError, "")
		}
		switch {
		case p.Status == http.StatusServiceUnavailable, p.Status == http.StatusGatewayTimeout:
			// Expected under load or outages; the access log counts them.
			log.LogAttrs(r.Context(), slog.LevelDebug, "request refused", slog.Int("status", p.Status), slog.Any("err", err))
		case p.Status >= 500 && p.Status != httpx.StatusClientClosedRequest:
			log.LogAttrs(r.Context(), slog.LevelError, "request failed", slog.Int("status", p.Status), slog.String("path", r.URL.Path), slog.Any("err", err))
		}
		tier.ServeProblem(c.Response(), r, p)
	}
}

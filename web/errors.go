package web

import (
	"errors"
	"net/http"

	"github.com/threetier/threetier/tier"
)

// Errors returned by path checks; the handler maps them to 400.
var (
	// ErrBadPath is wrapped by every rejection of a request path.
	ErrBadPath = errors.New("bad request path")
	// ErrNoRoot means neither FilesConfig.Root nor WithFS gave files to serve.
	ErrNoRoot = errors.New("web: no root directory or file system to serve")
)

// problem sends a problem+json error for r, carrying its request ID.
func problem(w http.ResponseWriter, r *http.Request, status int, detail string) {
	p := tier.NewProblem(status, detail)
	p.Instance = r.URL.EscapedPath()
	p.RequestID = tier.RequestID(r.Context())
	tier.WriteProblem(w, p)
}

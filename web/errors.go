package web

import (
	"errors"
)

// ErrNoRoot means neither FilesConfig.Root nor WithFS gave files to serve.
var ErrNoRoot = errors.New("web: no root directory or file system to serve")

// errBadPath is wrapped by every rejection of a request path; the handler
// answers it with 400.
var errBadPath = errors.New("bad request path")

// errBusy: every compression slot is taken; the response goes out in
// the identity form.
var errBusy = errors.New("compression limit reached")

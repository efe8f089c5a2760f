package web

import (
	"io/fs"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/threetier/threetier/internal/accept"
	"github.com/threetier/threetier/tier"
)

// refuse answers p: with the page FilesConfig.ErrorPages holds for its
// status when the client prefers HTML, else as every tier answers a
// problem (tier.ProblemAnswer: problem+json, or a small page of its own).
func refuse[X exchange](f *Files, x X, p *tier.Problem) {
	if f.cfg.ErrorPages != "" && accept.PrefersHTML(x.headerList("Accept")) && errorPage(f, x, p) {
		return
	}
	x.problem(p)
}

// errorPage sends the page for p's status, "404.html" or else "4xx.html"
// under ErrorPages, with that status, and reports whether there was one
// to send.
func errorPage[X exchange](f *Files, x X, p *tier.Problem) bool {
	code := strconv.Itoa(p.Status)
	for _, name := range [...]string{code + ".html", code[:1] + "xx.html"} {
		e, err := f.lookup(path.Join(f.cfg.ErrorPages, name))
		if err != nil || e.isDir {
			continue
		}
		var file fs.File
		if e.content == nil {
			if file, err = f.open(e); err != nil {
				continue
			}
		}
		for _, k := range problemDropped {
			x.delHeader(k)
		}
		x.setHeader("Content-Type", e.hdrType)
		x.setHeader("Cache-Control", noStore)
		if p.RetryAfter > 0 {
			x.setHeader("Retry-After", one(strconv.FormatInt(int64((p.RetryAfter+time.Second-1)/time.Second), 10)))
		}
		x.setHeader("Content-Length", e.hdrLength)
		x.writeHeader(p.Status)
		switch {
		case x.method() == http.MethodHead:
			if file != nil {
				e.fds.give(file)
			}
		case file != nil:
			x.sendFile(file, e.stamp.size, e.fds.give)
		default:
			x.write(e.content)
		}
		return true
	}
	return false
}

var noStore = []string{"no-store"}

// validErrorPages checks FilesConfig.ErrorPages: a directory under the
// root, "/" or "." for the root itself.
func validErrorPages(dir string) bool {
	dir = strings.Trim(dir, "/")
	if dir == "" || dir == "." {
		return true
	}
	_, _, err := cleanPath("/"+dir, "/")
	return err == nil
}

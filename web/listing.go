package web

import (
	"bytes"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

var listingTemplate = template.Must(template.New("listing").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>Index of {{.Path}}</title>
<style>body{font-family:system-ui,sans-serif;margin:2em}td{padding:0 1em 0 0}td.n{text-align:right}</style>
</head><body><h1>Index of {{.Path}}</h1><table>
{{if .Parent}}<tr><td><a href="../">../</a></td><td></td><td></td></tr>
{{end}}{{range .Entries}}<tr><td><a href="{{.Href}}">{{.Name}}</a></td><td class="n">{{.Size}}</td><td>{{.Modified}}</td></tr>
{{end}}</table></body></html>
`))

type listingEntry struct {
	Name, Href, Size, Modified string
	dir                        bool
}

// list sends an HTML listing of directory name: directories first, then
// files, by name; hidden names stay hidden unless Dotfiles is on.
func list[X exchange](f *Files, x X, name string) {
	des, err := fs.ReadDir(f.fsys, fsName(name))
	if err != nil {
		lookupFailed(f, x, err)
		return
	}
	var entries []listingEntry
	for _, de := range des {
		n := de.Name()
		if !f.cfg.Dotfiles && strings.HasPrefix(n, ".") {
			continue
		}
		le := listingEntry{Name: n, Href: (&url.URL{Path: n}).EscapedPath(), dir: de.IsDir()}
		if strings.Contains(n, ":") { // keep "a:b" from reading as a URL scheme
			le.Href = "./" + le.Href
		}
		if info, err := de.Info(); err == nil {
			if !de.IsDir() {
				le.Size = formatSize(info.Size())
			}
			if !info.ModTime().IsZero() {
				le.Modified = info.ModTime().UTC().Format(time.DateTime)
			}
		}
		if le.dir {
			le.Name += "/"
			le.Href += "/"
		}
		entries = append(entries, le)
	}
	slices.SortFunc(entries, func(a, b listingEntry) int {
		if a.dir != b.dir {
			if a.dir {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Name, b.Name)
	})
	x.setHeader("Content-Type", listingType)
	x.setHeader("Cache-Control", noCache)
	x.writeHeader(http.StatusOK)
	if x.method() == http.MethodHead {
		return
	}
	var page bytes.Buffer
	_ = listingTemplate.Execute(&page, struct {
		Path    string
		Parent  bool
		Entries []listingEntry
	}{x.path(), name != "", entries})
	x.write(page.Bytes())
}

var (
	listingType = []string{"text/html; charset=utf-8"}
	noCache     = []string{"no-cache"}
)

func formatSize(n int64) string {
	const unit = 1024
	if n < unit {
		return itoa(n) + " B"
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	whole := n / div
	tenth := (n % div) * 10 / div
	return itoa(whole) + "." + itoa(tenth) + " " + string("KMGTP"[exp]) + "iB"
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

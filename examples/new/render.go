package main

import (
	"bytes"
	"embed"
	"fmt"
	"go/format"
	"io/fs"
	"path"
	"strings"
	"text/template"
)

// templates holds the service's files as they are written: each path
// without its .tmpl suffix, RESOURCE in a path standing for the resource's
// name. all: keeps the dot files (.ci/run, .gitignore).
//
//go:embed all:template
var templates embed.FS

// file is one file of the service, ready to write.
type file struct {
	path string // slash-separated, relative to the service's directory
	body []byte
	mode fs.FileMode
}

// render fills every template with s. A template that renders to nothing
// is a file this service does not have (the balancer's manifest without
// -front-door). Go files come out gofmt'd: one that does not parse is a
// fault in its template.
func render(s spec) ([]file, error) {
	root, err := fs.Sub(templates, "template")
	if err != nil {
		return nil, err
	}
	var files []file
	err = fs.WalkDir(root, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		text, err := fs.ReadFile(root, name)
		if err != nil {
			return err
		}
		t, err := template.New(name).Option("missingkey=error").Parse(string(text))
		if err != nil {
			return err
		}
		var out bytes.Buffer
		if err := t.Execute(&out, s); err != nil {
			return err
		}
		if len(bytes.TrimSpace(out.Bytes())) == 0 {
			return nil
		}
		f := file{path: strings.ReplaceAll(strings.TrimSuffix(name, ".tmpl"), "RESOURCE", s.Resource), body: out.Bytes(), mode: 0o644}
		if path.Ext(f.path) == ".go" {
			if f.body, err = format.Source(f.body); err != nil {
				return fmt.Errorf("template %s: %v", name, err)
			}
		}
		if path.Dir(f.path) == ".ci" {
			f.mode = 0o755
		}
		files = append(files, f)
		return nil
	})
	return files, err
}

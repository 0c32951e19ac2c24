package app

import (
	"io/fs"
	"strings"

	"github.com/changebank/changebank/static"
	"github.com/changebank/changebank/templates"
)

// assets are the embedded templates and static files as the one tree
// package routes reads: templates/<name>.html and static/<path>, as they
// lie in the repository (its tests read the repository's folder itself).
var assets fs.FS = assetTree{"templates": templates.FS, "static": static.FS}

// assetTree serves each top-level folder from its own file system.
type assetTree map[string]fs.FS

func (t assetTree) Open(name string) (fs.File, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrInvalid}
	}
	top, rest, _ := strings.Cut(name, "/")
	sub, ok := t[top]
	if !ok {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	if rest == "" {
		rest = "."
	}
	return sub.Open(rest)
}

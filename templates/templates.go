// Package templates holds the app's HTML templates and embeds them, so the
// binary carries them: FS is every .html file of this folder.
// (go:embed reaches only a package's own folder and those below it, hence
// a package here rather than an embed in the code that renders them.)
package templates

import "embed"

// FS is the templates, at their file names (layout.html, account.html...).
//
//go:embed *.html
var FS embed.FS

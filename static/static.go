// Package static holds the app's stylesheets, scripts and images and embeds
// them, so the binary carries them: FS is this folder's css, img and js.
// (go:embed reaches only a package's own folder and those below it, hence
// a package here rather than an embed in the code that serves them.)
package static

import "embed"

// FS is the static files, at their paths below this folder (css/app.css...).
//
//go:embed css img js
var FS embed.FS

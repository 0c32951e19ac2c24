package e2e

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode"
)

// The README and the pages under docs/ link to each other, to sections of
// each other, and to files of the repository. A link that leads nowhere on
// GitHub loses the reader; an issue number ("#21") means nothing to one.

// docPages returns README.md and every Markdown page under docs/, by their
// slash-separated paths from the repository's root.
func docPages(t *testing.T, root string) []string {
	t.Helper()
	pages := []string{"README.md"}
	err := filepath.WalkDir(filepath.Join(root, "docs"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".md") {
			rel, _ := filepath.Rel(root, p)
			pages = append(pages, filepath.ToSlash(rel))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return pages
}

// markdownLine is one line of a Markdown text outside fenced code blocks,
// with its inline code spans blanked out.
type markdownLine struct {
	n    int // 1-based
	text string
}

var codeSpan = regexp.MustCompile("`[^`]*`")

// proseLines returns the lines of md outside ``` fences, code spans
// blanked: what is there is not a link, and a `#5` in code is no issue.
func proseLines(md string) (prose []markdownLine, headings []markdownLine) {
	fenced := false
	for i, line := range strings.Split(md, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			fenced = !fenced
			continue
		}
		if fenced {
			continue
		}
		if strings.HasPrefix(line, "#") {
			headings = append(headings, markdownLine{i + 1, line})
		}
		prose = append(prose, markdownLine{i + 1, codeSpan.ReplaceAllStringFunc(line, func(s string) string {
			return strings.Repeat(" ", len(s))
		})})
	}
	return prose, headings
}

var (
	atxHeading  = regexp.MustCompile(`^#{1,6}\s+(.*?)\s*#*\s*$`)
	inlineLink  = regexp.MustCompile(`\[([^\]]*)\]\(([^)\s]*)\)`)
	htmlTag     = regexp.MustCompile(`<[^>]+>`)
	issueNumber = regexp.MustCompile(`(?:^|[^\w&/#-])(#\d+)\b(?:[^-\w]|$)`)
)

// githubAnchor is the id GitHub gives a heading: the text as rendered
// (code spans, emphasis and links reduced to their words), lower-cased,
// every character but letters, digits, marks, '_', '-' and spaces dropped,
// each space turned into '-'.
func githubAnchor(heading string) string {
	text := inlineLink.ReplaceAllString(heading, "$1")
	text = htmlTag.ReplaceAllString(text, "")
	text = strings.NewReplacer("`", "", "*", "").Replace(text)
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(text)) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

// anchors returns every heading anchor of a Markdown text, numbered as
// GitHub numbers repeated ones ("x", "x-1", "x-2").
func anchors(md string) []string {
	_, headings := proseLines(md)
	var out []string
	seen := map[string]int{}
	for _, h := range headings {
		m := atxHeading.FindStringSubmatch(h.text)
		if m == nil {
			continue
		}
		a := githubAnchor(m[1])
		if n := seen[a]; n > 0 {
			seen[a]++
			a = fmt.Sprintf("%s-%d", a, n)
		} else {
			seen[a] = 1
		}
		out = append(out, a)
	}
	return out
}

// brokenLinks returns a message for each relative link of the page at
// path p (slash-separated, from root) that names a file or an anchor that
// does not exist, and for each issue number in its prose.
func brokenLinks(root, p, md string) []string {
	var problems []string
	prose, _ := proseLines(md)
	for _, line := range prose {
		for _, m := range issueNumber.FindAllStringSubmatch(line.text, -1) {
			problems = append(problems, fmt.Sprintf("%s:%d: %q reads as an issue number, which means nothing to a reader", p, line.n, m[1]))
		}
		for _, m := range inlineLink.FindAllStringSubmatch(line.text, -1) {
			if msg := checkLink(root, p, m[2]); msg != "" {
				problems = append(problems, fmt.Sprintf("%s:%d: (%s) %s", p, line.n, m[2], msg))
			}
		}
	}
	return problems
}

// checkLink says what is wrong with one link target of the page p, or "".
func checkLink(root, p, target string) string {
	if target == "" {
		return "is empty"
	}
	if u := strings.ToLower(target); strings.HasPrefix(u, "http://") || strings.HasPrefix(u, "https://") || strings.HasPrefix(u, "mailto:") {
		return ""
	}
	if strings.Contains(target, "://") || strings.HasPrefix(target, "/") {
		return "is neither a web address nor relative to this page"
	}
	file, anchor, _ := strings.Cut(target, "#")
	linked := p
	if file != "" {
		linked = path.Clean(path.Join(path.Dir(p), file))
		if linked == ".." || strings.HasPrefix(linked, "../") {
			return "leaves the repository"
		}
		if _, err := os.Stat(filepath.Join(root, filepath.FromSlash(linked))); err != nil {
			return "names a file that does not exist"
		}
	}
	if anchor == "" {
		return ""
	}
	if !strings.HasSuffix(linked, ".md") {
		return "has an anchor into a file that is not Markdown"
	}
	data, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(linked)))
	if err != nil {
		return err.Error()
	}
	if !slices.Contains(anchors(string(data)), anchor) {
		return fmt.Sprintf("no heading of %s has the anchor #%s", linked, anchor)
	}
	return ""
}

// TestDocsLinksArrive: every relative link and anchor in README.md and
// docs/ leads to a file and a heading that exist, and no page cites an
// issue by number.
func TestDocsLinksArrive(t *testing.T) {
	pages := docPages(t, repo("."))
	if len(pages) < 10 {
		t.Fatalf("found %d pages: %v", len(pages), pages)
	}
	links := 0
	for _, p := range pages {
		data, err := os.ReadFile(repo(p))
		if err != nil {
			t.Fatal(err)
		}
		prose, _ := proseLines(string(data))
		for _, l := range prose {
			links += len(inlineLink.FindAllString(l.text, -1))
		}
		for _, msg := range brokenLinks(repo("."), p, string(data)) {
			t.Error(msg)
		}
	}
	if links < 50 {
		t.Fatalf("found only %d links: the pattern no longer matches how the pages link", links)
	}
}

// TestBrokenLinksAreFound shows that the check above can fail, and on what.
func TestBrokenLinksAreFound(t *testing.T) {
	root := t.TempDir()
	files := map[string]string{
		"README.md": "# Guide\n\n## Rotating `APP_SECRET_KEY` in a rolling deploy\n\n## Why SameSite=Lax, not Strict?\n\n## Notes\n\n## Notes\n\n" +
			"```sh\n# not a heading\n```\n",
		"docs/a.md":   "# A page\n\n## Über die Größe: 24 KB & more\n\n## 12 steps\n",
		"deploy/x.cf": "x",
	}
	for name, body := range files {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		page, md string
		broken   bool
	}{
		{"README.md", "[a](docs/a.md)", false},
		{"README.md", "[a](docs/b.md)", true},
		{"README.md", "[a](#rotating-app_secret_key-in-a-rolling-deploy)", false},
		{"README.md", "[a](#rotating-app-secret-key-in-a-rolling-deploy)", true},
		{"README.md", "[a](#why-samesitelax-not-strict)", false},
		{"README.md", "[a](#notes-1)", false},
		{"README.md", "[a](#notes-2)", true},
		{"README.md", "[a](#not-a-heading)", true},
		{"docs/a.md", "[a](../README.md#guide)", false},
		{"docs/a.md", "[a](README.md#guide)", true},
		{"docs/a.md", "[a](#über-die-größe-24-kb--more)", false},
		{"docs/a.md", "[a](../deploy/x.cf)", false},
		{"docs/a.md", "[a](../deploy/x.cf#L1)", true},
		{"docs/a.md", "[a](../../outside.md)", true},
		{"docs/a.md", "![shot](screenshots/none.png)", true},
		{"docs/a.md", "[a](https://example.com/x#y)", false},
		{"docs/a.md", "`[a](nowhere.md)` in code", false},
		{"docs/a.md", "as measured in #21, it", true},
		{"docs/a.md", "(#21: the figure)", true},
		{"docs/a.md", "`go test -run '#21'`", false},
		{"docs/a.md", "mermaid writes #59; for a semicolon", true},
		{"docs/a.md", "see [a](#12-steps) and go.dev/issue/75804", false},
		{"docs/a.md", "see [a](#13-steps)", true},
	}
	for _, tt := range tests {
		if got := brokenLinks(root, tt.page, tt.md); (len(got) > 0) != tt.broken {
			t.Errorf("%s: %q: %v, want broken: %v", tt.page, tt.md, got, tt.broken)
		}
	}
}

// testFlags are the flags this repository's tests define: the go command
// does not know them, so it takes every argument after one for the test
// binary, and a package named after it is never tested.
var testFlags = []string{"-screenshots", "-update"}

var goTestCommand = regexp.MustCompile("go test [^`#\n]*")

// misplacedPackages returns each `go test` command of md that names a
// package after one of testFlags.
func misplacedPackages(md string) []string {
	var bad []string
	for _, cmd := range goTestCommand.FindAllString(md, -1) {
		flagAt := -1
		for i, f := range strings.Fields(cmd) {
			switch {
			case slices.Contains(testFlags, f) && flagAt < 0:
				flagAt = i
			case flagAt >= 0 && (f == "." || strings.HasPrefix(f, "./")):
				bad = append(bad, strings.TrimSpace(cmd))
			}
		}
	}
	return bad
}

// TestDocsGoTestCommandsRunTheirPackage: a command such as
// `go test -run X -screenshots docs/screenshots ./e2e` tests nothing (the go
// command hands "docs/screenshots ./e2e" to no binary at all); the package
// goes before the test's own flags.
func TestDocsGoTestCommandsRunTheirPackage(t *testing.T) {
	for _, p := range docPages(t, repo(".")) {
		data, err := os.ReadFile(repo(p))
		if err != nil {
			t.Fatal(err)
		}
		for _, cmd := range misplacedPackages(string(data)) {
			t.Errorf("%s: `%s` names its package after a flag of the tests: put the package first", p, cmd)
		}
	}
	for md, want := range map[string]int{
		"`go test -run 'TestBrowser' -screenshots docs/screenshots ./e2e`": 1,
		"`go test ./e2e -run 'TestBrowser' -screenshots docs/screenshots`": 0,
		"go test ./routes -run Golden -update\n":                           0,
		"go test -update ./routes # rewrites them\n":                       1,
	} {
		if got := len(misplacedPackages(md)); got != want {
			t.Errorf("%q: %d misplaced, want %d", md, got, want)
		}
	}
}

package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// The diagrams of README.md and docs/ rendered by the real mermaid library (the version
// pinned in package.json, installed by `npm ci`) in headless Chromium, with
// no network: GitHub shows an error box where a diagram does not parse.

// mermaidJS is where `npm ci`, run at the repository's root, installs mermaid.
const mermaidJS = "../node_modules/mermaid/dist/mermaid.min.js"

// mermaidBlock is one ```mermaid fence of a Markdown file.
type mermaidBlock struct {
	line int // of the opening fence, 1-based
	src  string
}

// mermaidBlocks returns every ```mermaid block of a Markdown text.
func mermaidBlocks(markdown string) []mermaidBlock {
	var blocks []mermaidBlock
	var cur *mermaidBlock
	sc := bufio.NewScanner(strings.NewReader(markdown))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case cur == nil && strings.TrimSpace(line) == "```mermaid":
			cur = &mermaidBlock{line: n}
		case cur != nil && strings.TrimSpace(line) == "```":
			blocks = append(blocks, *cur)
			cur = nil
		case cur != nil:
			cur.src += line + "\n"
		}
	}
	return blocks
}

// mermaidPage serves a blank page and the pinned mermaid bundle, so the
// browser needs nothing from the network.
func mermaidPage(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat(mermaidJS); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is missing, and CI=true: .ci/run installs it with npm ci", mermaidJS)
		}
		t.Skip(noMermaid)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `<!doctype html><meta charset="utf-8"><script src="/mermaid.min.js"></script><body></body>`)
	})
	mux.HandleFunc("GET /mermaid.min.js", func(w http.ResponseWriter, r *http.Request) {
		http.ServeFile(w, r, mermaidJS)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL + "/"
}

// openMermaid opens the page in a fresh browser and sets mermaid up.
func openMermaid(t *testing.T) context.Context {
	t.Helper()
	page := mermaidPage(t)
	ctx := newBrowser(t)
	run1(t, ctx, chromedp.Navigate(page))
	if v := get(t, ctx, chromedp.Evaluate[string](`typeof mermaid === "object" ? mermaid.initialize({startOnLoad: false}) || "ready" : "no mermaid"`)); v != "ready" {
		t.Fatalf("the mermaid bundle did not load: %s", v)
	}
	return ctx
}

// renderMermaid parses and renders one diagram, and returns mermaid's error
// message, or "" when it drew an SVG that shows every sequence message's
// words: mermaid drops some text without an error (a `#` starts a comment in
// a message), and the reader then loses part of the lesson.
func renderMermaid(t *testing.T, ctx context.Context, id int, src string) string {
	t.Helper()
	// The source goes in as a quoted argument of a function, never spliced
	// into the script's text.
	js := fmt.Sprintf(`(async (src) => {
  try {
    await mermaid.parse(src);
    const {svg} = await mermaid.render("d%d", src);
    const box = document.createElement("div");
    box.innerHTML = svg;
    if (!box.querySelector("svg")) return {error: "no SVG came out"};
    return {text: Array.from(box.querySelectorAll("text, foreignObject")).map(e => e.textContent).join("\n")};
  } catch (e) {
    return {error: String(e && e.message || e) || "unknown error"};
  }
})(%s)`, id, jsString(src))
	out := get(t, ctx, chromedp.Evaluate[struct{ Error, Text string }](js, chromedp.EvalAwaitPromise))
	if out.Error != "" {
		// Drop the long list of tokens the parser expected.
		msg, _, _ := strings.Cut(out.Error, "\nExpecting ")
		return msg
	}
	drawn := strings.Join(strings.Fields(out.Text), " ")
	for _, m := range sequenceMessages(src) {
		if !strings.Contains(drawn, m) {
			return fmt.Sprintf("the message %q is not drawn in full", m)
		}
	}
	return ""
}

// A sequence diagram's message or note: "A->>B: text", "Note over A: text".
var sequenceMessage = regexp.MustCompile(`^\s*(?:Note\s+(?:over|left of|right of)\s+[^:]+|[\w ]+?\s*--?(?:>>|>|x|\))[+-]?\s*[\w ]+?)\s*:(.*)$`)

var lineBreak = regexp.MustCompile(`<br\s*/?>`)

// sequenceMessages lists the text a reader should see for each message and
// note of a sequence diagram, one entry per <br/>-separated line, with
// mermaid's #name; and #number; escapes decoded.
func sequenceMessages(src string) []string {
	if !strings.HasPrefix(strings.TrimSpace(src), "sequenceDiagram") {
		return nil
	}
	entities := strings.NewReplacer("#lt;", "<", "#gt;", ">", "#quot;", `"`, "#amp;", "&", "#59;", ";", "#35;", "#")
	var out []string
	for _, line := range strings.Split(src, "\n") {
		m := sequenceMessage.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		for _, part := range lineBreak.Split(m[1], -1) {
			if part = strings.Join(strings.Fields(entities.Replace(part)), " "); part != "" {
				out = append(out, part)
			}
		}
	}
	return out
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, "\r", `\r`, "\u2028", `\u2028`, "\u2029", `\u2029`, "<", `\x3c`)
	return `"` + r.Replace(s) + `"`
}

func TestReadmeDiagramsRender(t *testing.T) {
	type page struct {
		path   string
		blocks []mermaidBlock
	}
	var pages []page
	total := 0
	for _, p := range docPages(t, repo(".")) {
		md, err := os.ReadFile(repo(p))
		if err != nil {
			t.Fatal(err)
		}
		blocks := mermaidBlocks(string(md))
		if want := strings.Count(string(md), "```mermaid"); len(blocks) != want {
			t.Fatalf("%s: %d closed mermaid blocks for %d opening fences", p, len(blocks), want)
		}
		pages = append(pages, page{p, blocks})
		total += len(blocks)
	}
	if total < 6 {
		t.Fatalf("found %d mermaid blocks in the README and docs/: the pages lost their diagrams, or the reader lost them", total)
	}
	ctx := openMermaid(t)
	id := 0
	for _, p := range pages {
		for _, b := range p.blocks {
			id++
			t.Run(fmt.Sprintf("%s line %d", p.path, b.line), func(t *testing.T) {
				if msg := renderMermaid(t, ctx, id, b.src); msg != "" {
					t.Errorf("%s line %d: the mermaid diagram does not render: %s", p.path, b.line, msg)
				}
			})
		}
	}
}

// TestMermaidRenderCatchesErrors shows that the check above can fail: the
// mistakes that broke the README's diagrams are reported, and the same
// diagrams written correctly pass.
func TestMermaidRenderCatchesErrors(t *testing.T) {
	ctx := openMermaid(t)
	const head = "sequenceDiagram\n  participant B as Browser\n  participant A as ChangeBank\n"
	tests := []struct {
		name    string
		src     string
		wantErr bool
	}{
		{"plain message", head + "  B->>A: GET /login\n", false},
		{"semicolon in a message", head + "  A->>A: state, nonce; return_to kept\n", true},
		{"semicolon written as an entity", head + "  A->>A: state, nonce#59; return_to kept\n", false},
		{"hash and angle brackets written as entities", head + "  A->>A: open cb_login_#lt;hash#gt; #35;1\n", false},
		{"raw angle brackets and a line break", head + "  A-->>B: 302<br/>Set-Cookie cb_login_<hash of state>\n", false},
		{"flowchart with quoted labels", "flowchart LR\n  a[\"app<br/>:8080\"] -- \"http://x (y)\" --> b\n", false},
		{"unclosed flowchart label", "flowchart LR\n  a[\"app --> b\n", true},
		{"hash in a message, silently cut", head + "  B->>A: GET /api/me #1\n", true},
		{"unknown diagram type", "sequenceDiagramm\n  B->>A: hi\n", true},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg := renderMermaid(t, ctx, 1000+i, tt.src)
			if gotErr := msg != ""; gotErr != tt.wantErr {
				t.Errorf("error %q, want an error: %v", msg, tt.wantErr)
			}
		})
	}
}

func TestMermaidBlocks(t *testing.T) {
	md := "# T\n```mermaid\nflowchart LR\n  a --> b\n```\ntext\n```sh\nls\n```\n\n```mermaid\nsequenceDiagram\n```\n"
	got := mermaidBlocks(md)
	want := []mermaidBlock{{2, "flowchart LR\n  a --> b\n"}, {11, "sequenceDiagram\n"}}
	if len(got) != len(want) {
		t.Fatalf("got %d blocks: %+v", len(got), got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("block %d: %+v, want %+v", i, got[i], want[i])
		}
	}
}

package routes

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"unsafe"

	"github.com/gin-gonic/gin"

	bmap "github.com/changebank/changebank/internal/bounded" // named apart from quietlog.go's func bounded
	"github.com/changebank/changebank/routes/inspect"
	"github.com/changebank/changebank/tokens"
)

// views holds the parsed templates: the layout plus one page each.
type views struct {
	pages  map[string]*template.Template
	log    *slog.Logger
	issuer string // the provider's URL, named when it cannot be reached
	// viewer returns the logged-in user and their CSRF token, for the
	// header of error pages, from the userinfo cookie alone (no refresh).
	viewer func(c *gin.Context) (*tokens.UserInfo, string)
	// take reads and deletes the request's one-shot notice cookie.
	take func(c *gin.Context) (tokens.Notice, bool)
	done renderedPages
}

var pageNames = []string{"home", "account", "make_change", "session", "error", "lab"}

func parseViews(assets fs.FS, log *slog.Logger) (*views, error) {
	v := &views{pages: map[string]*template.Template{}, log: log, done: newRenderedPages(),
		viewer: func(*gin.Context) (*tokens.UserInfo, string) { return nil, "" },
		take:   func(*gin.Context) (tokens.Notice, bool) { return tokens.Notice{}, false }}
	for _, name := range pageNames {
		t, err := template.New("layout.html").ParseFS(assets, "templates/layout.html", "templates/trace.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("routes: template %s: %w", name, err)
		}
		v.pages[name] = t
	}
	return v, nil
}

// page is what every template gets.
type page struct {
	Title string
	User  *tokens.UserInfo // nil on public pages
	CSRF  string           // the session's anti-CSRF token, for forms
	Data  any              // the page's own
	// Notice says what happened on the request before this page, once.
	Notice *noticeView
	Trace  *inspect.Trace // the verification trace of this request, when the route made one (withTrace)
}

// renderBuffers are reused across requests: a page is a few kilobytes, and
// growing a fresh buffer to that size was a tenth of a page's cost. c.Data
// has written the bytes out before a buffer goes back.
var renderBuffers = sync.Pool{New: func() any { return bytes.NewBuffer(make([]byte, 0, 16<<10)) }}

// maxPooledBuffer keeps an unusually large page's buffer out of the pool.
const maxPooledBuffer = 256 << 10

// render writes a page; it renders into a buffer first so that a template
// error becomes a clean 500 rather than half a page.
func (v *views) render(c *gin.Context, status int, name string, p page) {
	if status == http.StatusOK {
		p.Notice = v.notice(c)
	}
	if t, ok := c.Get(traceKey); ok && p.Trace == nil {
		p.Trace = t.(*inspect.Trace)
	}
	buf := renderBuffers.Get().(*bytes.Buffer)
	buf.Reset()
	defer func() {
		if buf.Cap() <= maxPooledBuffer {
			renderBuffers.Put(buf)
		}
	}()
	var scratch [512]byte
	key, cacheable := pageKey(scratch[:0], name, p)
	if cacheable {
		if html, ok := v.done.get(key); ok {
			c.Data(status, "text/html; charset=utf-8", html)
			return
		}
	}
	if err := v.pages[name].Execute(buf, p); err != nil {
		// The error names the template and the field, never the page's data.
		v.log.Error("rendering a page", "page", name, "path", c.Request.URL.Path, "err", err)
		_ = c.Error(err)
		c.Data(http.StatusInternalServerError, "text/plain; charset=utf-8", []byte("Something went wrong on our side."))
		return
	}
	if cacheable {
		v.done.put(key, buf.Bytes())
	}
	c.Data(status, "text/html; charset=utf-8", buf.Bytes())
}

// renderedPages remembers pages already rendered, by everything that went
// into them, so that a browser loading its account page again gets the same
// bytes without html/template running again: its escaping functions, each
// one a reflect call, were a third of an account request. The key is the
// whole input of the template (the page's name and the page value), so a hit
// is exactly what Execute would write; pages with data, a notice or a trace
// are never cached.
//
// The map is keyed on the input itself, as the session cache is on the
// cookie values: the runtime's hash over it costs a fraction of the SHA-256
// it replaced, and the input holds nothing the page does not (the CSRF
// token is in the page's forms).
type renderedPages struct {
	pages *bmap.Map[string, []byte] // never modified once stored: c.Data writes them out as they are
}

// maxRenderedPages bounds the cache: a page is a few kilobytes, so at most a
// few megabytes; a flood of distinct sessions only evicts.
const maxRenderedPages = 1000

func newRenderedPages() renderedPages {
	return renderedPages{pages: bmap.New[string, []byte](maxRenderedPages, bmap.Evict)}
}

func (r *renderedPages) get(key []byte) ([]byte, bool) {
	// No copy of key: the lookup reads it in place and keeps nothing, and
	// key is not written to meanwhile (it is this request's own buffer).
	return r.pages.Get(unsafe.String(unsafe.SliceData(key), len(key)))
}

func (r *renderedPages) put(key, html []byte) {
	r.pages.Put(string(key), bytes.Clone(html), nil)
}

// pageKey appends to b what page name renders from p, each part prefixed
// with its length so that no two inputs share a key. It reports false for a
// page whose output depends on more than these fields.
func pageKey(b []byte, name string, p page) ([]byte, bool) {
	if p.Data != nil || p.Notice != nil || p.Trace != nil {
		return nil, false
	}
	str := func(s string) {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	str(name)
	str(p.Title)
	str(p.CSRF)
	if u := p.User; u != nil {
		b = append(b, 1)
		for _, s := range []string{u.Subject, u.Name, u.GivenName, u.FamilyName, u.Email, u.Birthdate, u.LoginID} {
			str(s)
		}
		b = strconv.AppendBool(b, u.EmailVerified)
		b = binary.AppendVarint(b, u.LoginAt)
		b = binary.AppendVarint(b, u.Expires)
		b = binary.AppendUvarint(b, uint64(len(u.AccessHash)))
		b = append(b, u.AccessHash...)
		b = strconv.AppendBool(b, u.OpaqueAccess)
	}
	return b, true
}

// errorView is the error page's content: a message written for people.
type errorView struct {
	Status  int
	Message string
	Retry   string // a link to try again, when that could help
}

// messagePart is a run of an error message: words, or a command to type.
type messagePart struct {
	Text string
	Code bool
}

// Parts cuts the message at its backticks, so that a `command` in it shows
// as code rather than between backticks. The messages are this app's own:
// no visitor's text reaches them.
func (e errorView) Parts() []messagePart {
	var out []messagePart
	for i, s := range strings.Split(e.Message, "`") {
		if s != "" {
			out = append(out, messagePart{Text: s, Code: i%2 == 1})
		}
	}
	return out
}

// fail answers with the error page and stops the chain.
func (v *views) fail(c *gin.Context, status int, msg string) {
	v.failRetry(c, status, msg, "")
}

func (v *views) failRetry(c *gin.Context, status int, msg, retry string) {
	if status == http.StatusServiceUnavailable {
		c.Header("Retry-After", "5")
	}
	p := page{Title: http.StatusText(status), Data: errorView{Status: status, Message: msg, Retry: retry}}
	p.User, p.CSRF = v.viewer(c)
	v.render(c, status, "error", p)
	c.Abort()
}

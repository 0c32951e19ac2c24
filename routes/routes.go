// Package routes is ChangeBank's HTTP surface on Gin: the route list, the
// handlers, and the middleware that loads the cookie session, guards forms
// against CSRF and keeps private pages out of caches. Sessions themselves
// are the tokens package's business.
package routes

import (
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/changebank/changebank/tokens"
)

// An Option adds an optional part to the app.
type Option func(*options)

type options struct {
	attacker string          // the attacker page's origin, linked from the inspector
	observer RequestObserver // told of every request; nil when metrics are off
}

// A RequestObserver is told of every request the app answers: its method,
// its route as New lists it ("/session/lab", "/static/*filepath"; "" for a
// path no route serves), its status code and how long the answer took.
type RequestObserver interface {
	ObserveRequest(method, route string, code int, elapsed time.Duration)
}

// WithRequestObserver tells o of every request the app answers.
func WithRequestObserver(o RequestObserver) Option {
	return func(opts *options) { opts.observer = o }
}

// WithAttackerPage links the inspector to the cross-site attacker page
// served at origin (see Attacker).
func WithAttackerPage(origin string) Option {
	return func(o *options) { o.attacker = origin }
}

// New returns the app's handler. Every route is listed here. sessions logs
// users in and out and loads their cookie sessions; through it the handlers
// also read cookies (the inspector), verify Bearer tokens, guard forms and
// ask whether the provider is ready. now tells the time.
func New(log *slog.Logger, sessions *tokens.Sessions, now func() time.Time, assets fs.FS, appURL string, opts ...Option) (http.Handler, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	views, err := parseViews(assets, log)
	if err != nil {
		return nil, err
	}
	views.viewer = viewer(sessions)
	views.take = func(c *gin.Context) (tokens.Notice, bool) {
		if framed(c.Request) {
			return tokens.Notice{}, false // never shown: see framed
		}
		return sessions.TakeNotice(c.Writer, c.Request)
	}
	static, err := fs.Sub(assets, "static")
	if err != nil {
		return nil, fmt.Errorf("routes: static files: %w", err)
	}
	origin, err := url.Parse(appURL)
	if err != nil {
		return nil, fmt.Errorf("routes: APP_URL: %w", err)
	}
	issuer, err := url.Parse(sessions.Provider().Issuer())
	if err != nil {
		return nil, fmt.Errorf("routes: ISSUER: %w", err)
	}
	views.issuer = sessions.Provider().Issuer()

	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.HandleMethodNotAllowed = true
	// Gin's own trailing-slash redirect answers before any middleware (no
	// security headers) and honours a client's X-Forwarded-Prefix in its
	// Location: notFound redirects instead, inside the middleware.
	r.RedirectTrailingSlash = false
	r.Use(requestLog(log, o.observer), recovery(log, views), securityHeaders(issuer.Scheme+"://"+issuer.Host, origin.Scheme == "https"))
	r.NoMethod(methodNotAllowed(views))

	quiet := newQuietLog(log) // for the lines anyone can cause
	page := sessionRequired(log, sessions, views)
	form := checkForm(quiet, sessions, views, origin.Scheme+"://"+origin.Host)

	r.GET("/", home(sessions, views))
	r.GET("/login", login(log, sessions, sessions.Provider(), views))
	r.GET("/callback", callback(log, quiet, sessions, views))
	r.GET("/account", page, account(views))
	r.GET("/make-change", page, makeChangeForm(views))
	r.POST("/make-change", page, form, makeChange(views))
	r.GET("/session", page, withTrace(sessions), inspector(sessions.Cookies(), now, views, o.attacker))
	r.GET("/session/lab", page, labPage(views))
	r.POST("/session/lab", userRequired(sessions), form, runAttack(log, sessions, views))
	r.POST("/session/expire", page, form, expireAccess(sessions))
	r.POST("/session/refresh", page, form, refreshNow(log, sessions, views))
	r.POST("/logout", form, logout(sessions, origin.Scheme+"://"+origin.Host+"/"))
	r.GET("/logout", frontChannelLogout(sessions, issuer.Scheme+"://"+issuer.Host))
	r.GET("/api/me", apiSession(quiet, sessions, me(now)))
	r.GET("/healthz", healthz())
	r.GET("/readyz", readyz(sessions.Provider()))
	r.StaticFS("/static", http.FS(filesOnly{static}))
	r.NoRoute(notFound(views, r)) // after the routes: it redirects to them
	return headAsGet(r), nil
}

// headAsGet answers HEAD on every GET route as GET does (RFC 9110 says a
// server should): the router sees GET, and net/http sends the status and
// headers of the GET answer without its body, because the request it
// answers is still a HEAD.
func headAsGet(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodHead {
			r = r.Clone(r.Context())
			r.Method = http.MethodGet
		}
		h.ServeHTTP(w, r)
	})
}

// viewer finds who is logged in for the header of pages that did not
// load the session (error pages): the session a middleware loaded, else
// the sealed userinfo cookie alone, never refreshing anything.
func viewer(sessions *tokens.Sessions) func(c *gin.Context) (*tokens.UserInfo, string) {
	return func(c *gin.Context) (*tokens.UserInfo, string) {
		if v, ok := c.Get(sessionKey); ok {
			s := v.(*tokens.Session)
			return &s.User, s.CSRF
		}
		if u, ok := sessions.User(c.Request); ok {
			return &u, sessions.CSRF(u)
		}
		return nil, ""
	}
}

// filesOnly serves files and answers 404 for directories, so the static
// tree is never listed.
type filesOnly struct{ fs.FS }

func (f filesOnly) Open(name string) (fs.File, error) {
	file, err := f.FS.Open(name)
	if err != nil {
		return nil, err
	}
	if st, err := file.Stat(); err != nil || st.IsDir() {
		file.Close()
		return nil, fs.ErrNotExist
	}
	return file, nil
}

// requestLog logs each request's method, path (never the query: a
// callback's carries the authorization code; cut to maxLogText bytes, as
// anyone can send a long one), status and duration: at info,
// except static files and health probes, which succeed by the thousand and
// tell nothing, at debug. A failed one of those is still logged at info.
// observer, when not nil, is told of every request, logged or not.
func requestLog(log *slog.Logger, observer RequestObserver) gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		c.Next()
		if observer != nil {
			observer.ObserveRequest(c.Request.Method, c.FullPath(), c.Writer.Status(), time.Since(start))
		}
		level := slog.LevelInfo
		path := c.Request.URL.Path
		if c.Writer.Status() < http.StatusBadRequest && (strings.HasPrefix(path, "/static/") || path == "/healthz" || path == "/readyz") {
			level = slog.LevelDebug
		}
		if !log.Enabled(c.Request.Context(), level) {
			return
		}
		log.LogAttrs(c.Request.Context(), level, "request", slog.String("method", clip(c.Request.Method)), slog.String("path", clip(path)),
			slog.Int("status", c.Writer.Status()), slog.Duration("duration", time.Since(start).Round(time.Microsecond)))
	}
}

// recovery turns a panic into a logged error and a page for people.
func recovery(log *slog.Logger, views *views) gin.HandlerFunc {
	return gin.CustomRecoveryWithWriter(nil, func(c *gin.Context, err any) {
		log.Error("panic serving request", "path", c.Request.URL.Path, "panic", err)
		views.fail(c, http.StatusInternalServerError, "Something went wrong on our side. Please try again.")
	})
}

// securityHeaders sets the headers every response carries. Nothing here
// runs inline script, so the CSP forbids it; forms may only post here, and
// a form's redirect may only go to the provider (logout goes there).
//
// Over https, Strict-Transport-Security tells browsers to come back over
// https only, for a year: the session cookies are Secure there, and a first
// plain-http visit would otherwise be open to a downgrade. It names no
// subdomains, which may be other apps this one cannot speak for.
func securityHeaders(providerOrigin string, https bool) gin.HandlerFunc {
	csp := contentPolicy(providerOrigin, "'none'")
	return func(c *gin.Context) {
		h := c.Writer.Header()
		h.Set("Content-Security-Policy", csp)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "same-origin") // a URL with a code or state never leaves in a Referer
		h.Set("X-Frame-Options", "DENY")
		if https {
			h.Set("Strict-Transport-Security", "max-age=31536000")
		}
		if staticFile(c.Request) {
			h.Set("Cache-Control", "public, max-age=3600")
		} else {
			// Every other response may carry private data or Set-Cookie: no
			// cache may keep it, and Back after logout shows nothing private.
			h.Set("Cache-Control", "no-store")
		}
		c.Next()
	}
}

// contentPolicy is the Content-Security-Policy of the app's answers, with
// ancestors as the frames that may show them: 'none' everywhere but the
// front-channel logout, which the provider's logout page frames.
func contentPolicy(providerOrigin, ancestors string) string {
	return strings.Join([]string{
		"default-src 'self'",
		"script-src 'self'",
		"style-src 'self'",
		"img-src 'self' data:",
		"form-action 'self' " + providerOrigin,
		"frame-ancestors " + ancestors,
		"base-uri 'none'",
	}, "; ")
}

// notFound answers a path no route serves. A missing static file gets a
// plain 404 that no cache keeps and that shows no session (a page with the
// Log out button and CSRF token, cached as a static file, would outlive the
// logout). A page's path with a trailing slash is sent to the page, always
// to a path of this app, whatever X-Forwarded-Prefix says.
func notFound(views *views, r *gin.Engine) gin.HandlerFunc {
	pages := map[string]bool{}
	for _, rt := range r.Routes() {
		if rt.Method == http.MethodGet && !strings.HasSuffix(rt.Path, "/") && !strings.Contains(rt.Path, "*") {
			pages[rt.Path] = true
		}
	}
	return func(c *gin.Context) {
		path := c.Request.URL.Path
		if strings.HasPrefix(path, "/static/") {
			c.Header("Cache-Control", "no-store")
			c.String(http.StatusNotFound, "404 page not found")
			return
		}
		if trimmed := strings.TrimRight(path, "/"); c.Request.Method == http.MethodGet && trimmed != path && pages[trimmed] {
			target := trimmed
			if q := c.Request.URL.RawQuery; q != "" {
				target += "?" + q
			}
			c.Redirect(http.StatusMovedPermanently, target)
			return
		}
		if strings.HasPrefix(path, "/api/") {
			c.JSON(http.StatusNotFound, gin.H{"error": "not_found"})
			return
		}
		views.fail(c, http.StatusNotFound, "There is no page at this address.")
	}
}

// staticFile reports whether r asks for one of the static files, the only
// answers a cache may keep.
func staticFile(r *http.Request) bool {
	return strings.HasPrefix(r.URL.Path, "/static/") && (r.Method == http.MethodGet || r.Method == http.MethodHead)
}

// methodNotAllowed answers a method a path does not take. Under /static/
// the answer is plain, as notFound's is there: a page with the session's
// Log out button and CSRF token has no place at a static file's address.
func methodNotAllowed(views *views) gin.HandlerFunc {
	return func(c *gin.Context) {
		if strings.HasPrefix(c.Request.URL.Path, "/static/") {
			c.Header("Cache-Control", "no-store")
			c.Header("Allow", "GET, HEAD")
			c.String(http.StatusMethodNotAllowed, "405 method not allowed")
			c.Abort()
			return
		}
		views.fail(c, http.StatusMethodNotAllowed, "This page does not take that kind of request.")
	}
}

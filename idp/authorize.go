package idp

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	_ "embed"
	"encoding/base64"
	"html/template"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// ssoCookie is the stand-in's login session, as FusionAuth's fusionauth.sso.
const ssoCookie = "fusionauth.sso"

// codeTTL is how long an authorization code may wait to be exchanged:
// FusionAuth's default (the tenant's authorization code time to live).
const codeTTL = 30 * time.Second

// grant is what an authorization code stands for.
type grant struct {
	clientID, redirectURI string
	userID, scope, nonce  string
	challenge             string
	authTime              time.Time
	expires               time.Time
}

type ssoSession struct {
	userID   string
	authTime time.Time
	expires  time.Time
}

//go:embed login.html
var loginHTML string

var loginPage = template.Must(template.New("login").Parse(loginHTML))

type loginView struct {
	Demo    []demoUser // the kickstart's users of this application, shown as a hint
	AppName string
	Email   string
	Error   string
	Params  map[string]string // the authorize request, carried through the form
	CSRF    string            // the form's token: see csrfToken
}

// csrfCookie holds a random value per browser that the login form's token
// is bound to. Only the authorize path sees it, so it never reaches an app
// on the same host.
const csrfCookie = "standin.csrf"

// csrfToken binds a login form to the browser that asked for it (the value
// of its csrfCookie) and to the authorize request it carries: a page on
// another site can neither read the token nor set the cookie, so it cannot
// post the form with its own credentials into the victim's browser (login
// CSRF), even from a browser that sends no Origin.
func (s *Server) csrfToken(browser string, p map[string]string) string {
	mac := hmac.New(sha256.New, s.csrfKey)
	mac.Write([]byte(browser))
	for _, k := range authorizeParams {
		mac.Write([]byte{0})
		mac.Write([]byte(p[k]))
	}
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// formCookie returns the browser's csrfCookie value, setting a new one on
// w when the request has none.
func (s *Server) formCookie(w http.ResponseWriter, r *http.Request) string {
	if ck, err := r.Cookie(csrfCookie); err == nil && len(ck.Value) >= 32 {
		return ck.Value
	}
	v := randomToken()
	http.SetCookie(w, &http.Cookie{Name: csrfCookie, Value: v, Path: "/oauth2/authorize", HttpOnly: true, SameSite: http.SameSiteLaxMode})
	return v
}

// crossSite reports whether a POST comes from a page of another origin:
// browsers say so in Sec-Fetch-Site, and in Origin.
func crossSite(r *http.Request) bool {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "", "same-origin", "none":
	default:
		return true
	}
	origin := r.Header.Get("Origin")
	return origin != "" && origin != baseURL(r)
}

// demoUser is a kickstart user the login page suggests: the stand-in only
// ever runs the demo's own seeded accounts.
type demoUser struct{ Email, Password string }

// demoUsers are the kickstart's users who may log in to app, by email.
func (s *Server) demoUsers(app *Application) []demoUser {
	var out []demoUser
	for _, u := range s.ks.Users {
		if _, registered := u.Registrations[app.ID]; registered || !app.RequireRegistration {
			out = append(out, demoUser{u.Email, u.Password})
		}
	}
	slices.SortFunc(out, func(a, b demoUser) int { return strings.Compare(a.Email, b.Email) })
	return out
}

// authorizeParams are the request parameters the login form carries through.
var authorizeParams = []string{"client_id", "redirect_uri", "response_type", "scope", "state", "nonce", "code_challenge", "code_challenge_method"}

// authorize is GET (show the form, or skip it under an SSO session) and
// POST (check the password) /oauth2/authorize.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		s.errorPage(w, "The request could not be read.")
		return
	}
	p := map[string]string{}
	for _, k := range authorizeParams {
		p[k] = r.Form.Get(k)
	}
	app := s.application(p["client_id"])
	if app == nil {
		s.errorPage(w, "Unknown client_id: no application has that id.")
		return
	}
	// Never redirect to an unregistered URL: that would make this an open redirector.
	if !s.redirectAllowed(app, p["redirect_uri"]) {
		s.errorPage(w, "The redirect_uri is not one of this application's authorized redirect URLs.")
		return
	}
	back := func(v url.Values) {
		if p["state"] != "" {
			v.Set("state", p["state"])
		}
		http.Redirect(w, r, withQuery(p["redirect_uri"], v), http.StatusFound)
	}
	switch {
	case p["response_type"] != "code":
		back(url.Values{"error": {"unsupported_response_type"}, "error_description": {"response_type must be code"}})
		return
	case p["code_challenge"] == "" && app.PKCEPolicy == "Required":
		back(url.Values{"error": {"invalid_request"}, "error_description": {"code_challenge is required"}})
		return
	case p["code_challenge"] != "" && p["code_challenge_method"] != "S256":
		back(url.Values{"error": {"invalid_request"}, "error_description": {"code_challenge_method must be S256"}})
		return
	}

	view := loginView{AppName: app.Name, Params: p, Demo: s.demoUsers(app)}
	var sso *ssoSession
	if r.Method == http.MethodGet {
		if ck, err := r.Cookie(ssoCookie); err == nil {
			s.mu.Lock()
			sso = s.sessions[ck.Value]
			s.mu.Unlock()
			if sso != nil && !s.now().Before(sso.expires) {
				sso = nil
			}
		}
		if sso == nil {
			view.CSRF = s.csrfToken(s.formCookie(w, r), p)
			s.render(w, http.StatusOK, view)
			return
		}
	} else {
		browser := ""
		if ck, err := r.Cookie(csrfCookie); err == nil {
			browser = ck.Value
		}
		want := s.csrfToken(browser, p)
		if crossSite(r) || browser == "" || !hmac.Equal([]byte(r.PostForm.Get("csrf_token")), []byte(want)) {
			if n, warn := s.refusedForm(); warn {
				s.log.Warn("idp: login form refused: sent from another site, or without this browser's form token", "occurrences", n)
			}
			// No new cookie here: one this browser holds but did not send
			// (SameSite) would be replaced under its open login tabs.
			view.Error = "This login form was sent from another site, or it expired. Go back to the app and log in again."
			view.Params, view.Demo = nil, nil
			s.render(w, http.StatusForbidden, view)
			return
		}
		view.CSRF = want
		view.Email = r.PostForm.Get("loginId")
		u := s.users[strings.ToLower(view.Email)]
		if u == nil || subtle.ConstantTimeCompare([]byte(u.Password), []byte(r.PostForm.Get("password"))) != 1 {
			view.Error = "Invalid login credentials."
			s.render(w, http.StatusOK, view)
			return
		}
		sso = &ssoSession{userID: u.ID, authTime: s.now(), expires: s.now().Add(ssoTTL)}
		id := randomToken()
		s.witnessed("sso_session", id)
		s.mu.Lock()
		s.makeRoomLocked()
		s.sessions[id] = sso
		s.mu.Unlock()
		http.SetCookie(w, &http.Cookie{Name: ssoCookie, Value: id, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode})
	}

	user := s.userByID(sso.userID)
	if user == nil {
		s.errorPage(w, "The user of this session no longer exists.")
		return
	}
	if _, registered := user.Registrations[app.ID]; app.RequireRegistration && !registered {
		if view.CSRF == "" {
			view.CSRF = s.csrfToken(s.formCookie(w, r), p)
		}
		view.Error = "You are not registered for " + app.Name + "."
		s.render(w, http.StatusOK, view)
		return
	}
	code := randomToken()
	s.witnessed("code", code)
	s.mu.Lock()
	s.makeRoomLocked()
	s.codes[code] = &grant{
		clientID: app.ID, redirectURI: p["redirect_uri"], userID: user.ID, scope: p["scope"], nonce: p["nonce"],
		challenge: p["code_challenge"], authTime: sso.authTime, expires: s.now().Add(codeTTL),
	}
	s.mu.Unlock()
	back(url.Values{"code": {code}, "userState": {"Authenticated"}})
}

func (s *Server) redirectAllowed(app *Application, uri string) bool {
	return uri != "" && (slices.Contains(app.RedirectURLs, uri) || slices.Contains(s.extra, uri))
}

// application finds an application by client id. FusionAuth's ids are
// UUIDs, compared whatever their case.
func (s *Server) application(clientID string) *Application {
	return s.ks.Applications[strings.ToLower(clientID)]
}

func (s *Server) userByID(id string) *User {
	for _, u := range s.users {
		if u.ID == id {
			return u
		}
	}
	return nil
}

// render writes the login page. No other site may frame it, as
// FusionAuth's hosted pages cannot be: a framed login form invites
// clickjacking, and a framed page posts with the frame's own cookies.
func (s *Server) render(w http.ResponseWriter, status int, v loginView) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Security-Policy", "frame-ancestors 'none'")
	w.Header().Set("X-Frame-Options", "DENY")
	w.WriteHeader(status)
	if err := loginPage.Execute(w, v); err != nil {
		s.log.Error("idp: rendering the login page", "err", err)
	}
}

func (s *Server) errorPage(w http.ResponseWriter, msg string) {
	s.render(w, http.StatusBadRequest, loginView{Error: msg})
}

//go:embed favicon.svg
var faviconSVG []byte

// favicon is the icon the stand-in's pages link, so a browser showing them
// asks for no /favicon.ico the stand-in does not have.
func favicon(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "image/svg+xml")
	w.Header().Set("Cache-Control", "public, max-age=86400")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Write(faviconSVG)
}

//go:embed logout.html
var logoutHTML string

var logoutPage = template.Must(template.New("logout").Parse(logoutHTML))

type logoutView struct {
	Target string   // where the browser goes once the frames have loaded
	Frames []string // every application's logoutURL
	Nonce  string   // for the page's own style and script, under its CSP
}

// logout is /oauth2/logout with FusionAuth's default logout behaviour
// (AllApplications): it ends the SSO session and renders a page that loads
// every application's logoutURL in a hidden iframe, then goes on to
// post_logout_redirect_uri (which must be an authorized redirect URL) or,
// without one, to the application's logoutURL. Refresh tokens stay valid,
// as in FusionAuth.
func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		s.errorPage(w, "The request could not be read.")
		return
	}
	clientID := r.Form.Get("client_id")
	if clientID == "" {
		clientID, _ = s.verifyOwn(r.Form.Get("id_token_hint"))["aud"].(string)
	}
	app := s.application(clientID)
	target := "/"
	if app != nil && s.logoutURL(app) != "" {
		target = s.logoutURL(app)
	}
	if uri := r.Form.Get("post_logout_redirect_uri"); uri != "" {
		// Never a silent fallback: the application asked for a place it is not allowed.
		if app == nil || !s.redirectAllowed(app, uri) {
			s.errorPage(w, "invalid_post_logout_redirect_uri: the post_logout_redirect_uri is not one of this application's authorized redirect URLs.")
			return
		}
		target = uri
	}
	if st := r.Form.Get("state"); st != "" && target != "/" {
		target = withQuery(target, url.Values{"state": {st}})
	}
	if ck, err := r.Cookie(ssoCookie); err == nil {
		s.mu.Lock()
		delete(s.sessions, ck.Value)
		s.mu.Unlock()
	}
	http.SetCookie(w, &http.Cookie{Name: ssoCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteLaxMode})

	view := logoutView{Target: target, Nonce: randomToken()}
	origins := map[string]bool{}
	for _, a := range s.ks.Applications {
		u := s.logoutURL(a)
		if p, err := url.Parse(u); u != "" && err == nil && (p.Scheme == "http" || p.Scheme == "https") && !slices.Contains(view.Frames, u) {
			view.Frames = append(view.Frames, u)
			origins[p.Scheme+"://"+p.Host] = true
		}
	}
	slices.Sort(view.Frames)
	frameSrc := "'none'"
	if len(origins) > 0 {
		frameSrc = strings.Join(slices.Sorted(maps.Keys(origins)), " ")
	}
	w.Header().Set("Content-Security-Policy", strings.Join([]string{
		"default-src 'none'",
		"script-src 'nonce-" + view.Nonce + "'",
		"style-src 'nonce-" + view.Nonce + "'",
		"img-src 'self'", // the icon
		"frame-src " + frameSrc,
		"base-uri 'none'",
		"form-action 'none'",
		"frame-ancestors 'none'",
	}, "; "))
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer")
	if err := logoutPage.Execute(w, view); err != nil {
		s.log.Error("idp: rendering the logout page", "err", err)
	}
}

// logoutURL is where the application ends its own session: the running
// app's, when Options.LogoutURL names it, else the kickstart's.
func (s *Server) logoutURL(app *Application) string {
	return or(s.logoutOverride, app.LogoutURL)
}

func withQuery(base string, v url.Values) string {
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
	}
	return base + sep + v.Encode()
}

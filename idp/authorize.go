package idp

import (
	"crypto/subtle"
	_ "embed"
	"html/template"
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
}

//go:embed login.html
var loginHTML string

var loginPage = template.Must(template.New("login").Parse(loginHTML))

type loginView struct {
	AppName string
	Email   string
	Error   string
	Params  map[string]string // the authorize request, carried through the form
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

	view := loginView{AppName: app.Name, Params: p}
	var sso *ssoSession
	if r.Method == http.MethodGet {
		if ck, err := r.Cookie(ssoCookie); err == nil {
			s.mu.Lock()
			sso = s.sessions[ck.Value]
			s.mu.Unlock()
		}
		if sso == nil {
			s.render(w, http.StatusOK, view)
			return
		}
	} else {
		view.Email = r.PostForm.Get("loginId")
		u := s.users[strings.ToLower(view.Email)]
		if u == nil || subtle.ConstantTimeCompare([]byte(u.Password), []byte(r.PostForm.Get("password"))) != 1 {
			view.Error = "Invalid login credentials."
			s.render(w, http.StatusOK, view)
			return
		}
		sso = &ssoSession{userID: u.ID, authTime: s.now()}
		id := randomToken()
		s.mu.Lock()
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
		view.Error = "You are not registered for " + app.Name + "."
		s.render(w, http.StatusOK, view)
		return
	}
	code := randomToken()
	s.mu.Lock()
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

func (s *Server) render(w http.ResponseWriter, status int, v loginView) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	if err := loginPage.Execute(w, v); err != nil {
		s.log.Error("idp: rendering the login page", "err", err)
	}
}

func (s *Server) errorPage(w http.ResponseWriter, msg string) {
	s.render(w, http.StatusBadRequest, loginView{Error: msg})
}

// logout is /oauth2/logout: it ends the SSO session and redirects to
// post_logout_redirect_uri when the application authorizes it, else to the
// application's logoutURL.
func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		s.errorPage(w, "The request could not be read.")
		return
	}
	if ck, err := r.Cookie(ssoCookie); err == nil {
		s.mu.Lock()
		delete(s.sessions, ck.Value)
		s.mu.Unlock()
	}
	http.SetCookie(w, &http.Cookie{Name: ssoCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteLaxMode})

	clientID := r.Form.Get("client_id")
	if clientID == "" {
		clientID, _ = s.verifyOwn(r.Form.Get("id_token_hint"))["aud"].(string)
	}
	target := "/"
	if app := s.application(clientID); app != nil {
		if uri := r.Form.Get("post_logout_redirect_uri"); s.redirectAllowed(app, uri) {
			target = uri
		} else if app.LogoutURL != "" {
			target = app.LogoutURL
		}
		if st := r.Form.Get("state"); st != "" && target != "/" {
			target = withQuery(target, url.Values{"state": {st}})
		}
	}
	http.Redirect(w, r, target, http.StatusFound)
}

func withQuery(base string, v url.Values) string {
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
	}
	return base + sep + v.Encode()
}

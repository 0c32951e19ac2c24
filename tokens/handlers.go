package tokens

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
)

// The front door: handlers for an app on net/http that has no pages of its
// own for logging in and out. They answer in plain text where something
// goes wrong, and never with an internal error's text. An app that renders
// its own pages builds the same flows from BeginLogin, FinishLogin, Load,
// EndSession and EndAtProvider.

// contextKey is the context key of the session Require loaded.
type contextKey struct{}

// From returns the session Require loaded for the request whose context
// ctx is, and nil outside Require.
func From(ctx context.Context) *Session {
	s, _ := ctx.Value(contextKey{}).(*Session)
	return s
}

// Require lets through requests that carry a session, loading it (and
// refreshing it silently when its access token is about to expire) on
// every request; the handler finds it with From. Without a session, a
// browser is sent to /login?return_to=<this path> (303), and a request
// that carries an Authorization header or accepts application/json gets
// 401 with a JSON body. While the provider cannot be reached (or has not
// been discovered yet) it answers 503 "try again" and keeps every cookie.
// Every answer it lets through is marked Cache-Control: no-store.
func (s *Sessions) Require(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		sess, err := s.Load(r.Context(), w, r)
		switch {
		case err == nil:
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), contextKey{}, sess)))
		case errors.Is(err, ErrProviderUnavailable):
			s.log.Warn("session not checked: provider unavailable", "path", r.URL.Path, "err", err)
			w.Header().Set("Retry-After", "5")
			refuse(w, r, http.StatusServiceUnavailable, "temporarily_unavailable",
				"The identity provider cannot be reached right now, so your session cannot be checked. You are still logged in: try again in a moment.")
		case errors.Is(err, ErrSessionTooLarge):
			refuse(w, r, http.StatusUnauthorized, "unauthorized", tooLarge)
		case wantsJSON(r):
			refuse(w, r, http.StatusUnauthorized, "unauthorized", "Log in first.")
		default:
			back := r.URL.Path
			if r.Method == http.MethodGet || r.Method == http.MethodHead {
				back = r.URL.RequestURI()
			}
			http.Redirect(w, r, "/login?return_to="+url.QueryEscape(back), http.StatusSeeOther)
		}
	})
}

// tooLarge explains a session whose tokens cannot be kept in cookies: a
// new login brings the same tokens, so it offers no "try again".
const tooLarge = "Your account's access token is too large to keep in cookies, so you are not logged in. " +
	"Whoever runs the identity provider can fix it by trimming the token's claims for this application (fewer roles or groups)."

// wantsJSON reports whether r comes from a program rather than a browser
// navigating: it carries credentials of its own, or asks for JSON.
func wantsJSON(r *http.Request) bool {
	return r.Header.Get("Authorization") != "" || strings.Contains(r.Header.Get("Accept"), "application/json")
}

// refuse answers status with msg: as JSON ({"error": code,
// "error_description": msg}) to a program, as plain text to a browser.
func refuse(w http.ResponseWriter, r *http.Request, status int, code, msg string) {
	if !wantsJSON(r) {
		http.Error(w, msg, status)
		return
	}
	if status == http.StatusUnauthorized {
		// RFC 9110 wants a challenge on a 401: this resource takes the
		// session cookie that /login sets.
		w.Header().Set("WWW-Authenticate", `Cookie realm="session", login="/login"`)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(`{"error":"` + code + `","error_description":` + jsonString(msg) + "}\n"))
}

// jsonString quotes msg, one of this file's own sentences, as JSON.
func jsonString(msg string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(msg) + `"`
}

// Login is GET /login: it starts a login and sends the browser to the
// provider. ?return_to= names where the user goes once logged in: a path
// on this site (see SafeReturnPath), else "/".
func (s *Sessions) Login(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	authURL, err := s.BeginLogin(w, r, r.URL.Query().Get("return_to"))
	switch {
	case err == nil:
		http.Redirect(w, r, authURL, http.StatusFound)
	case errors.Is(err, ErrProviderUnavailable):
		s.log.Debug("login not started: provider unavailable", "err", err) // anyone can ask, as often as they like
		w.Header().Set("Retry-After", "5")
		http.Error(w, "The identity provider is starting or cannot be reached. Try again in a moment.", http.StatusServiceUnavailable)
	default:
		s.log.Error("starting a login", "err", err)
		http.Error(w, "The login could not be started. Please try again.", http.StatusInternalServerError)
	}
}

// Callback is GET /callback, where the provider sends the browser back:
// it finishes the login (see FinishLogin) and sends the user where the
// login was going (303).
func (s *Sessions) Callback(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	returnTo, err := s.FinishLogin(r.Context(), w, r)
	var pe *ProviderError
	switch {
	case err == nil:
		http.Redirect(w, r, returnTo, http.StatusSeeOther)
	case errors.As(err, &pe):
		// The provider's words are not shown: anyone can put text in a callback URL.
		s.log.Info("login refused by the provider", "err", err)
		http.Error(w, "The identity provider did not log you in. You can try again at /login.", http.StatusBadRequest)
	case errors.Is(err, ErrSessionTooLarge):
		s.log.Warn("callback: tokens too large for cookies", "err", err)
		http.Error(w, tooLarge, http.StatusBadRequest)
	case errors.Is(err, ErrBadCallback):
		if _, ok := s.User(r); ok {
			// Back right after logging in replays the spent callback URL:
			// the user is logged in already.
			http.Redirect(w, r, "/", http.StatusSeeOther)
			return
		}
		s.log.Info("callback refused", "err", err)
		http.Error(w, "This login link is no longer valid: it was used already, it expired, or it was started in another browser. Log in again at /login.", http.StatusBadRequest)
	case errors.Is(err, ErrProviderUnavailable): // ErrLoginsThrottled too
		s.log.Warn("callback: provider unavailable", "err", err)
		w.Header().Set("Retry-After", "5")
		http.Error(w, "The identity provider cannot be reached right now. Log in again in a moment at /login.", http.StatusServiceUnavailable)
	default:
		s.log.Warn("callback: tokens refused", "err", err)
		http.Error(w, "The identity provider's answer did not pass the checks, so you were not logged in.", http.StatusBadRequest)
	}
}

// maxFormBytes bounds a logout form's body: it has one field.
const maxFormBytes = 64 << 10

// Logout is POST /logout, the Log out button: a form from this site
// (Origin, or Sec-Fetch-Site where no Origin is sent) whose csrf_token
// field is the session's Session.CSRF. It ends the session here (see
// EndSession) and sends the browser (303) to the provider's end-session
// endpoint, which comes back to AppURL + "/"; without one, home.
//
// A page whose content security policy has a form-action directive holds
// every redirect its form leads to against that list, and a provider may
// send the browser on from its end-session endpoint to a logout page on
// another origin (Ory Hydra's login and consent app). An app with such a
// policy serves POST /logout itself: EndSession, then EndAtProvider, then a
// page that moves the browser on to that URL (a meta refresh is a
// navigation of its own, so the policy needs nothing added), as the
// ChangeBank app does.
func (s *Sessions) Logout(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "Log out with the Log out button (POST).", http.StatusMethodNotAllowed)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "This form could not be read. Reload the page and try again.", http.StatusBadRequest)
		return
	}
	if !s.sameOrigin(r) {
		s.log.Warn("logout refused: cross-origin form")
		http.Error(w, "This form was sent from another site, so it was refused.", http.StatusForbidden)
		return
	}
	user, ok := s.User(r)
	if sess := From(r.Context()); sess != nil {
		user, ok = sess.User, true
	}
	if ok && !s.CheckCSRF(user, r.PostForm.Get("csrf_token")) {
		s.log.Warn("logout refused: bad CSRF token")
		http.Error(w, "This form has expired. Reload the page and try again.", http.StatusForbidden)
		return
	}
	s.EndSession(r.Context(), w, r)
	http.Redirect(w, r, s.EndAtProvider(w, r), http.StatusSeeOther)
}

// sameOrigin reports whether a form comes from this app's own pages: its
// Origin is the app's, or (a browser that sends none) Sec-Fetch-Site says
// neither cross-site nor same-site.
func (s *Sessions) sameOrigin(r *http.Request) bool {
	if origin := r.Header.Get("Origin"); origin != "" && origin != s.origin {
		return false
	}
	site := r.Header.Get("Sec-Fetch-Site")
	return site != "cross-site" && site != "same-site"
}

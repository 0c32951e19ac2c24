package routes

import (
	"errors"
	"fmt"
	"html"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/changebank/changebank/tokens"
	"github.com/changebank/changebank/tokens/cookie"
	"github.com/changebank/changebank/tokens/oidc"
)

const sessionKey = "changebank.session"

// sessionOf returns the session sessionRequired loaded.
func sessionOf(c *gin.Context) *tokens.Session {
	s, _ := c.MustGet(sessionKey).(*tokens.Session)
	return s
}

// sessionRequired loads the cookie session (refreshing it silently when
// needed). Without one, a page sends the browser to log in and come back.
// When the provider cannot be reached, the cookies stay and the user is
// asked to try again.
func sessionRequired(log *slog.Logger, sessions *tokens.Sessions, views *views) gin.HandlerFunc {
	return func(c *gin.Context) {
		s, err := sessions.Load(c.Request.Context(), c.Writer, c.Request)
		switch {
		case err == nil:
			c.Set(sessionKey, s)
			c.Next()
		case errors.Is(err, tokens.ErrSessionTooLarge):
			// Logging in again would bring the same token: say why, and stop.
			log.Warn("session ended: tokens too large for cookies", "path", c.Request.URL.Path, "err", err)
			views.fail(c, http.StatusBadRequest, tooLargeMessage)
		case errors.Is(err, tokens.ErrProviderUnavailable):
			log.Warn("session not checked: provider unavailable", "path", c.Request.URL.Path, "err", err)
			views.failRetry(c, http.StatusServiceUnavailable,
				"The identity provider is unreachable right now, so we cannot check your session. You are still logged in: try again in a moment.",
				c.Request.URL.RequestURI())
		default:
			log.Debug("no session", "path", c.Request.URL.Path, "err", err)
			back := c.Request.URL.Path
			if c.Request.Method == http.MethodGet {
				back = c.Request.URL.RequestURI()
			}
			c.Redirect(http.StatusSeeOther, "/login?return_to="+url.QueryEscape(back))
			c.Abort()
		}
	}
}

// tooLargeMessage is the page for a session whose tokens cannot be kept in
// cookies. It offers no "try again": a new login brings the same token.
var tooLargeMessage = fmt.Sprintf("Your account's access token is too large to keep in cookies: "+
	"with it, this app's session would pass the %s bytes it allows, a limit set because the browser sends every cookie with every request and servers refuse large request headers, so you are not logged in. "+
	"Nothing is wrong with your password. Whoever runs the identity provider can fix it by trimming the token's claims "+
	"for this application (fewer roles or groups, shorter names).", group(strconv.Itoa(cookie.MaxSessionBytes)))

// maxFormBytes bounds a form body: ours are a few fields.
const maxFormBytes = 64 << 10

// checkForm guards every state-changing POST beyond SameSite: the request
// must come from this site (Origin, or Sec-Fetch-Site when a browser sends
// no Origin) and, when a session is present, carry its CSRF token.
func checkForm(quiet *quietLog, sessions *tokens.Sessions, views *views, appOrigin string) gin.HandlerFunc {
	return func(c *gin.Context) {
		c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, maxFormBytes)
		if err := c.Request.ParseForm(); err != nil {
			if tooBig := new(http.MaxBytesError); errors.As(err, &tooBig) {
				quiet.Warn(c.Request.Context(), "form refused: too large", "path", c.Request.URL.Path, "limit", tooBig.Limit)
				views.fail(c, http.StatusRequestEntityTooLarge, "This form is too large to be sent. Go back, shorten what you typed and try again.")
				return
			}
			quiet.Info(c.Request.Context(), "form refused: unreadable", "path", c.Request.URL.Path, "err", err)
			views.fail(c, http.StatusBadRequest, "This form could not be read. Go back, reload the page and try again.")
			return
		}
		origin := c.GetHeader("Origin")
		site := c.GetHeader("Sec-Fetch-Site")
		if (origin != "" && origin != appOrigin) || site == "cross-site" || site == "same-site" {
			quiet.Warn(c.Request.Context(), "form refused: cross-origin", "path", c.Request.URL.Path)
			views.fail(c, http.StatusForbidden, "This form was sent from another site, so it was refused.")
			return
		}
		// The session loaded by sessionRequired, else (logout) the userinfo cookie alone.
		var user tokens.UserInfo
		ok := false
		if v, loaded := c.Get(sessionKey); loaded {
			user, ok = v.(*tokens.Session).User, true
		} else {
			user, ok = sessions.User(c.Request)
		}
		if ok && !sessions.CheckCSRF(user, c.PostForm("csrf_token")) {
			quiet.Warn(c.Request.Context(), "form refused: bad CSRF token", "path", c.Request.URL.Path)
			views.failRetry(c, http.StatusForbidden, "This form has expired. Go back, reload the page and try again.", "/account")
			return
		}
		c.Next()
	}
}

// home is the public landing page; a logged-in visitor goes to the
// account. It is also where the provider's logout sends the browser back,
// with the state of that logout: when it is the one this browser was sent
// with, the provider's session is known to be over and the notice says so.
func home(sessions *tokens.Sessions, views *views) gin.HandlerFunc {
	return func(c *gin.Context) {
		if state := c.Query("state"); state != "" {
			sessions.ConfirmLogout(c.Writer, c.Request, state)
			c.Redirect(http.StatusSeeOther, "/") // the state works once: off the address bar
			return
		}
		if _, ok := sessions.User(c.Request); ok {
			c.Redirect(http.StatusSeeOther, "/account")
			return
		}
		views.render(c, http.StatusOK, "home", page{Title: "Welcome"})
	}
}

// login starts the authorization code flow and sends the browser to the
// provider. While the provider cannot be used it says why: a setting to
// change when provider.Problem names one, else "wait".
func login(log *slog.Logger, sessions *tokens.Sessions, provider *oidc.Provider, views *views) gin.HandlerFunc {
	return func(c *gin.Context) {
		returnTo := tokens.SafeReturnPath(c.Query("return_to"))
		if returnTo == "" {
			returnTo = "/account"
		}
		authURL, err := sessions.BeginLogin(c.Writer, c.Request, returnTo)
		switch {
		case errors.Is(err, tokens.ErrProviderUnavailable) && provider.Problem() != "":
			views.failRetry(c, http.StatusServiceUnavailable,
				"The identity provider at "+views.issuer+" cannot be used: "+provider.Problem(), c.Request.URL.RequestURI())
		case errors.Is(err, tokens.ErrProviderUnavailable):
			views.failRetry(c, http.StatusServiceUnavailable,
				"The identity provider at "+views.issuer+" is starting or cannot be reached. Wait a few seconds and try again. "+
					"Running the demo? Stop this app and restart it with the built-in stand-in, `go run . -embedded-idp`, or start FusionAuth with `docker compose up`.", c.Request.URL.RequestURI())
		case err != nil:
			log.Error("starting a login", "err", err)
			views.fail(c, http.StatusInternalServerError, "We could not start the login. Please try again.")
		default:
			c.Redirect(http.StatusFound, authURL)
		}
	}
}

// providerErrors are the RFC 6749 codes a callback may carry, in words.
// The provider's error_description is never shown: anyone can put text in
// a callback URL.
var providerErrors = map[string]string{
	"access_denied":             "The login was cancelled or refused at the identity provider.",
	"login_required":            "The identity provider needs you to log in again.",
	"consent_required":          "The identity provider needs your consent first.",
	"invalid_request":           "The identity provider refused the login request.",
	"unauthorized_client":       "This app is not allowed to log you in that way.",
	"unsupported_response_type": "The identity provider refused the login request.",
	"invalid_scope":             "The identity provider refused the permissions this app asked for.",
	"server_error":              "The identity provider had a problem.",
	"temporarily_unavailable":   "The identity provider is busy.",
}

// callback finishes the login and sends the user where they were going.
//
// Anyone can call it with anything, so what it logs goes through quiet,
// sampled and bounded, but for a login that got as far as the tokens.
func callback(log *slog.Logger, quiet *quietLog, sessions *tokens.Sessions, views *views) gin.HandlerFunc {
	return func(c *gin.Context) {
		ctx := c.Request.Context()
		returnTo, err := sessions.FinishLogin(c.Request.Context(), c.Writer, c.Request)
		var pe *tokens.ProviderError
		switch {
		case err == nil:
			c.Redirect(http.StatusSeeOther, returnTo)
		case errors.As(err, &pe):
			msg, known := providerErrors[pe.Code]
			if !known {
				msg = "The identity provider could not log you in."
			}
			quiet.Info(ctx, "login refused by the provider", "error", pe.Code, "known", known, "err", err)
			views.failRetry(c, http.StatusBadRequest, msg+" You can try again.", "/login")
		case errors.Is(err, tokens.ErrSessionTooLarge):
			log.Warn("callback: tokens too large for cookies", "err", err)
			views.fail(c, http.StatusBadRequest, tooLargeMessage)
		case errors.Is(err, tokens.ErrBadCallback) && hasSession(sessions, c):
			// Back right after logging in replays the spent callback URL:
			// the user is logged in already, so send them on.
			quiet.Info(ctx, "callback replayed while logged in", "err", err)
			c.Redirect(http.StatusSeeOther, "/account")
		case errors.Is(err, tokens.ErrBadCallback):
			quiet.Info(ctx, "callback refused", "err", err)
			views.failRetry(c, http.StatusBadRequest,
				"This login link is no longer valid: it was used already, it expired, or it was started in another browser.", "/login")
		case errors.Is(err, tokens.ErrLoginsThrottled):
			quiet.Warn(ctx, "callback refused: logins throttled", "err", err)
			views.failRetry(c, http.StatusServiceUnavailable, "Too many logins failed on this server just now. Please log in again in a few seconds.", "/login")
		case errors.Is(err, tokens.ErrProviderUnavailable):
			quiet.Warn(ctx, "callback: provider unavailable", "err", err)
			views.failRetry(c, http.StatusServiceUnavailable, "The identity provider is unreachable right now. Please log in again in a moment.", "/login")
		default:
			log.Warn("callback: tokens refused", "err", err)
			views.failRetry(c, http.StatusBadRequest, "The identity provider's answer did not pass our checks, so you were not logged in.", "/login")
		}
	}
}

// hasSession reports whether the request carries a live session's userinfo
// cookie, without refreshing anything.
func hasSession(sessions *tokens.Sessions, c *gin.Context) bool {
	_, ok := sessions.User(c.Request)
	return ok
}

// frontChannelLogout is GET /logout, the application's logoutURL: the
// provider's logout page loads it in a hidden iframe when the user logs
// out there or in another application. It ends the session here and never
// sends the browser back to the provider. In a frame it answers without a
// redirect: a redirect's page would load in the frame and take the notice
// meant for the page the user lands on. Followed as a link, it goes home.
//
// Its framed answer may be shown by the provider's pages alone (a browser
// reports a refused frame as an error on every logout): it holds one line
// of text and nothing to click, and every other site is still refused.
func frontChannelLogout(sessions *tokens.Sessions, providerOrigin string) gin.HandlerFunc {
	framedPolicy := contentPolicy(providerOrigin, providerOrigin)
	return func(c *gin.Context) {
		_, hadSession := sessions.User(c.Request)
		sessions.EndSession(c.Request.Context(), c.Writer, c.Request)
		// After the button's POST there is no session left here, and the
		// POST's notice stays for the page the user lands on.
		if hadSession {
			sessions.Notify(c.Writer, tokens.NoticeLogoutProvider)
		}
		if framed(c.Request) {
			c.Header("Content-Security-Policy", framedPolicy)
			c.Writer.Header().Del("X-Frame-Options") // frame-ancestors says who may frame it; DENY would refuse the provider too
			c.String(http.StatusOK, "Logged out of ChangeBank.")
			return
		}
		c.Redirect(http.StatusSeeOther, "/")
	}
}

// framed reports whether the browser says it loads the request in a frame
// (Sec-Fetch-Dest, which Chromium, Firefox and Safari send). Pages here
// refuse to show in frames (frame-ancestors 'none'), so such a request
// must not take a notice no one will see.
func framed(r *http.Request) bool {
	switch r.Header.Get("Sec-Fetch-Dest") {
	case "iframe", "frame":
		return true
	}
	return false
}

// logout is POST /logout, after checkForm: it ends the session here and
// sends the browser on to the provider's end-session endpoint (home when
// there is none). Not with a redirect, as the front door's Logout does:
// this app's pages set form-action, which a browser holds every redirect
// of a form submission to, and a provider may send the browser on from its
// end-session endpoint to a logout page on another origin (Ory Hydra's
// login and consent app). A page that refreshes to the URL is a navigation
// of its own, so the policy stays as strict as it is.
func logout(sessions *tokens.Sessions, home string) gin.HandlerFunc {
	return func(c *gin.Context) {
		c.Header("Cache-Control", "no-store")
		sessions.EndSession(c.Request.Context(), c.Writer, c.Request)
		next := sessions.EndAtProvider(c.Writer, c.Request)
		if next == home {
			c.Redirect(http.StatusSeeOther, next)
			return
		}
		// Single quotes delimit the refresh's URL: an end-session URL has
		// none once its query is encoded, and %27 keeps it so.
		u := html.EscapeString(strings.ReplaceAll(next, "'", "%27"))
		c.Header("Content-Type", "text/html; charset=utf-8")
		c.Status(http.StatusOK)
		fmt.Fprintf(c.Writer, `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="0; url='%s'"><title>Logging out</title></head>
<body><p>You are logged out here. <a id="continue" href="%s">Continue to the identity provider</a> to end its session too.</p></body></html>
`, u, u)
	}
}

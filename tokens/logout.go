package tokens

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strconv"
	"time"

	"github.com/changebank/changebank/tokens/cookie"
)

// revokeTimeout bounds the revocation call at logout, which is best effort.
const revokeTimeout = 2 * time.Second

// EndSession ends the session in this browser. It expires every session
// cookie, records the logout time in cb_logged_out (so a response already
// in flight that sets fresh cookies cannot bring the session back: Load
// refuses sessions that began before it), and revokes the refresh token
// (best effort, bounded). EndAtProvider then sends the browser to the
// provider's logout. The Logout handler does both, after checking the
// form's CSRF token.
func (s *Sessions) EndSession(ctx context.Context, w http.ResponseWriter, r *http.Request) {
	var rc refreshCookie
	hadRefresh := s.cookies.Open(r, cookie.Refresh, &rc) == nil && rc.Token != ""
	now := s.now()
	s.expireAll(w, s.cookies.Session(r).Carried)
	s.cookies.Set(w, cookie.LoggedOut, strconv.FormatInt(now.Unix(), 10), now.Add(s.refreshTTL), now)

	if hadRefresh {
		s.revokeOnce(ctx, rc)
		// A refresh that crossed this logout (another tab's, whose answer
		// had not reached the browser) rotated the token: its result is in
		// the grace window, and the rotated token goes too. One still in
		// flight at the provider is not caught here; the logout marker
		// refuses the cookies it brings.
		if res := s.refresh.remembered(sha256.Sum256([]byte(rc.Token))); res != nil && res.refreshToken != rc.Token {
			s.revokeOnce(ctx, refreshCookie{Token: res.refreshToken, Subject: rc.Subject, Expires: rc.Expires})
		}
	}
}

// EndAtProvider returns the URL of the provider's end-session endpoint,
// or the app's home when the provider has none, and sets the
// NoticeLoggedOut notice for the page the browser lands on. That notice
// claims only what the app knows: its own cookies are gone. The provider's
// session ends only if the browser gets there (a provider that is down, or
// refuses the logout, leaves it alive), so the URL carries a one-time
// state, kept in the sealed notice cookie of this browser alone; the
// provider hands it back on the post_logout_redirect_uri, and
// ConfirmLogout then upgrades the notice. The ID token kept in cb_id_token
// (Path=/logout, so it rides on this request only) goes as id_token_hint,
// which some providers need to end their session without asking.
func (s *Sessions) EndAtProvider(w http.ResponseWriter, r *http.Request) string {
	var idt idTokenCookie
	if s.cookies.Open(r, cookie.IDToken, &idt) != nil {
		idt = idTokenCookie{}
	}
	state := rand.Text()
	s.notify(w, Notice{Code: NoticeLoggedOut, At: s.now().Unix(), State: state})
	return s.client.logoutURL(idt.Token, state)
}

// ConfirmLogout reports whether state is the one EndAtProvider sent this
// browser to the provider with, which the provider only hands back once
// its logout is done. If so, it replaces the notice with
// NoticeLoggedOutBoth, which has no state: a state works once.
func (s *Sessions) ConfirmLogout(w http.ResponseWriter, r *http.Request, state string) bool {
	n, ok := s.peekNotice(r)
	if !ok || n.Code != NoticeLoggedOut || n.State == "" || subtle.ConstantTimeCompare([]byte(n.State), []byte(state)) != 1 {
		return false
	}
	s.notify(w, Notice{Code: NoticeLoggedOutBoth, At: n.At})
	return true
}

// revokeOnce revokes rc's refresh token, best effort, unless this instance
// revoked it already or saw the provider refuse it, or the cookie is past
// its end: an old refresh cookie sent again and again (GET /logout needs no
// CSRF token) costs the provider one revocation, not one per request. The
// token is marked before the call, so of requests that race with it one
// calls. A revocation that failed is not tried again here: the user's own
// cookies are gone by then, and the token ends at the provider anyway.
// So the call is detached from the request (bounded by revokeTimeout
// alone): a browser that leaves meanwhile must not cut it short.
func (s *Sessions) revokeOnce(ctx context.Context, rc refreshCookie) {
	ctx = context.WithoutCancel(ctx)
	now := s.now()
	end := time.Unix(rc.Expires, 0)
	if !now.Before(end) || !s.deadTokens.add(sha256.Sum256([]byte(rc.Token)), end, now) {
		s.log.Debug("refresh token not revoked: revoked or refused before, or past its end", "sub", rc.Subject)
		return
	}
	if err := s.client.revoke(ctx, rc.Token); err != nil {
		s.log.Warn("refresh token not revoked", "sub", rc.Subject, "err", err)
	} else {
		s.log.Info("refresh token revoked", "sub", rc.Subject)
	}
}

package tokens

import (
	"context"
	"crypto/sha256"
	"net/http"
	"strconv"
	"time"
)

// revokeTimeout bounds the revocation call at logout, which is best effort.
const revokeTimeout = 2 * time.Second

// Logout ends the session in this browser and at the provider. It expires
// every session cookie, records the logout time in cb_logged_out (so a
// response already in flight that sets fresh cookies cannot bring the
// session back: Load refuses sessions that began before it), revokes the
// refresh token (best effort, bounded), and returns the URL of the
// provider's end-session endpoint to send the browser to, or the app's home
// when the provider has none.
func (m *Manager) Logout(ctx context.Context, w http.ResponseWriter, r *http.Request) string {
	var rc refreshCookie
	hadRefresh := m.cookies.open(r, RefreshCookie, &rc) == nil && rc.Token != ""
	now := m.now()
	m.expireAll(w)
	m.cookies.set(w, LogoutCookie, strconv.FormatInt(now.Unix(), 10), now.Add(m.refreshTTL), now)

	if hadRefresh {
		m.revokeOnce(ctx, rc)
	}
	return m.client.logoutURL()
}

// revokeOnce revokes rc's refresh token, best effort, unless this instance
// revoked it already or saw the provider refuse it, or the cookie is past
// its end: an old refresh cookie sent again and again (GET /logout needs no
// CSRF token) costs the provider one revocation, not one per request. The
// token is marked before the call, so of requests that race with it one
// calls. A revocation that failed is not tried again here: the user's own
// cookies are gone by then, and the token ends at the provider anyway.
func (m *Manager) revokeOnce(ctx context.Context, rc refreshCookie) {
	now := m.now()
	end := time.Unix(rc.Expires, 0)
	if !now.Before(end) || !m.deadTokens.add(sha256.Sum256([]byte(rc.Token)), end, now) {
		m.log.Debug("refresh token not revoked: revoked or refused before, or past its end", "sub", rc.Subject)
		return
	}
	if err := m.client.revoke(ctx, rc.Token); err != nil {
		m.log.Warn("refresh token not revoked", "sub", rc.Subject, "err", err)
	} else {
		m.log.Info("refresh token revoked", "sub", rc.Subject)
	}
}

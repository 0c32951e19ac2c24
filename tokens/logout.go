package tokens

import (
	"context"
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
// provider's end-session endpoint to send the browser to, with the ID token
// kept in cb_id_token as id_token_hint, or the app's home when the provider
// has none.
func (m *Manager) Logout(ctx context.Context, w http.ResponseWriter, r *http.Request) string {
	var rc refreshCookie
	hadRefresh := m.cookies.open(r, RefreshCookie, &rc) == nil && rc.Token != ""
	// cb_id_token (Path=/logout) rides on this request only: the hint the
	// provider's end-session endpoint may need.
	var idt idTokenCookie
	if m.cookies.open(r, IDTokenCookie, &idt) != nil {
		idt = idTokenCookie{}
	}
	now := m.now()
	m.expireAll(w)
	m.cookies.set(w, LogoutCookie, strconv.FormatInt(now.Unix(), 10), now.Add(m.refreshTTL), now)

	if hadRefresh {
		if err := m.client.revoke(ctx, rc.Token); err != nil {
			m.log.Warn("refresh token not revoked", "sub", rc.Subject, "err", err)
		} else {
			m.log.Info("refresh token revoked", "sub", rc.Subject)
		}
	}
	return m.client.logoutURL(idt.Token)
}

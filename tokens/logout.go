package tokens

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// RevokeTimeout bounds the revocation call at logout, which is best effort.
const RevokeTimeout = 2 * time.Second

// Logout ends the session in this browser and at the provider. It expires
// every session cookie, records the logout time in cb_logged_out (so a
// response already in flight that sets fresh cookies cannot bring the
// session back: Load refuses sessions that began before it), revokes the
// refresh token (best effort, bounded), and returns the URL of the
// provider's end-session endpoint to send the browser to, or the app's home
// when the provider has none.
func (m *Manager) Logout(ctx context.Context, w http.ResponseWriter, r *http.Request) string {
	var rc refreshCookie
	hadRefresh := m.open(r, RefreshCookie, &rc) == nil && rc.Token != ""
	now := m.opts.Now()
	m.expireAll(w)
	m.cookies.Set(w, LogoutCookie, strconv.FormatInt(now.Unix(), 10), now.Add(m.opts.RefreshTTL), now)

	meta, err := m.opts.Provider.Metadata()
	if hadRefresh && err == nil {
		if err := m.revoke(ctx, meta, rc.Token); err != nil {
			m.opts.Log.Warn("refresh token not revoked", "sub", rc.Subject, "err", err)
		} else {
			m.opts.Log.Info("refresh token revoked", "sub", rc.Subject)
		}
	}
	home := m.opts.AppURL + "/"
	if err != nil || meta.EndSessionEndpoint == "" {
		return home
	}
	u, err := url.Parse(meta.EndSessionEndpoint)
	if err != nil {
		return home
	}
	q := u.Query()
	q.Set("client_id", m.opts.ClientID)
	q.Set("post_logout_redirect_uri", home)
	u.RawQuery = q.Encode()
	return u.String()
}

// revoke revokes a refresh token: with FusionAuth's API (DELETE
// /api/jwt/refresh) when an API key is configured, else at an RFC 7009
// revocation endpoint when discovery advertises one. FusionAuth's OAuth
// logout does not revoke refresh tokens; without this a stolen refresh
// token would outlive the logout.
func (m *Manager) revoke(ctx context.Context, meta Metadata, token string) error {
	ctx, cancel := context.WithTimeout(ctx, RevokeTimeout)
	defer cancel()
	var req *http.Request
	var err error
	switch {
	case m.opts.APIKey != "":
		// The token goes in the body, not the query string, to stay out of access logs.
		body := url.Values{"token": {token}}.Encode()
		req, err = http.NewRequestWithContext(ctx, http.MethodDelete, m.opts.Provider.internal+"/api/jwt/refresh", strings.NewReader(body))
		if err == nil {
			req.Header.Set("Authorization", m.opts.APIKey)
		}
	case meta.RevocationEndpoint != "":
		body := url.Values{"token": {token}, "token_type_hint": {"refresh_token"}}.Encode()
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, meta.RevocationEndpoint, strings.NewReader(body))
		if err == nil {
			req.SetBasicAuth(url.QueryEscape(m.opts.ClientID), url.QueryEscape(m.opts.ClientSecret))
		}
	default:
		return fmt.Errorf("tokens: no way to revoke: set FUSIONAUTH_API_KEY")
	}
	if err != nil {
		return fmt.Errorf("tokens: revocation request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := m.opts.HTTPClient.Do(req)
	if err != nil {
		return fmt.Errorf("tokens: revocation: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("tokens: revocation: status %d", resp.StatusCode)
	}
	return nil
}

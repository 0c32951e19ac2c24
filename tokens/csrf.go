package tokens

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
)

// CSRFToken returns the anti-CSRF token for forms of this session. It is an
// HMAC, under a key derived from the newest app secret, of the user and the
// login's random id (sealed in cb_userinfo): stable across refreshes,
// different for every login, and nothing to store.
func (m *Manager) CSRFToken(u UserInfo) string {
	return m.csrf(m.opts.Sealer.secrets[0], u)
}

// CheckCSRF reports whether token is this session's CSRF token under any
// current secret.
func (m *Manager) CheckCSRF(u UserInfo, token string) bool {
	if token == "" || u.LoginID == "" {
		return false
	}
	for _, k := range m.opts.Sealer.secrets {
		if hmac.Equal([]byte(m.csrf(k, u)), []byte(token)) {
			return true
		}
	}
	return false
}

func (m *Manager) csrf(k secretKeys, u UserInfo) string {
	key, err := hkdf.Key(sha256.New, k.secret, nil, "changebank csrf v1", 32)
	if err != nil {
		return "" // cannot happen for a 32-byte output; an empty token never matches a form's
	}
	mac := hmac.New(sha256.New, key)
	fmt.Fprintf(mac, "%s\x00%s", u.Subject, u.LoginID)
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

package tokens

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"hash"
	"sync"

	"github.com/changebank/changebank/internal/bounded"
)

// csrfGuard makes and checks anti-CSRF tokens for forms. A token is an HMAC,
// under a key derived from an app secret, of the user and the login's
// random id (sealed in cb_userinfo): stable across refreshes, different for
// every login, and nothing to store.
type csrfGuard struct {
	macs []*sync.Pool // HMAC-SHA256 states keyed by one app secret each, newest first

	// made remembers the tokens Token made: every page of a session shows
	// the same one, and a map lookup costs a fraction of the MAC.
	made *bounded.Map[csrfInput, string]
}

// csrfInput is what a CSRF token is made from.
type csrfInput struct{ subject, loginID string }

// maxCSRFTokens bounds csrfGuard.made; past it arbitrary tokens are forgotten
// (and made again when asked for).
const maxCSRFTokens = 4096

// newCSRF returns a csrfGuard for the app secrets, newest first (New has
// checked them): tokens are made under the newest and accepted under any,
// so rotating a secret does not expire the forms on open pages.
func newCSRF(secrets ...[]byte) (*csrfGuard, error) {
	c := &csrfGuard{made: bounded.New[csrfInput, string](maxCSRFTokens, bounded.Evict)}
	for _, secret := range secrets {
		key, err := hkdf.Key(sha256.New, secret, nil, "changebank csrf v1", 32)
		if err != nil {
			return nil, fmt.Errorf("tokens: deriving the CSRF key: %w", err)
		}
		// Keyed HMAC states are reused: setting up the key is most of
		// the cost of a MAC this short, and every page makes one.
		c.macs = append(c.macs, &sync.Pool{New: func() any { return &csrfState{mac: hmac.New(sha256.New, key)} }})
	}
	return c, nil
}

// Token returns the anti-CSRF token for the forms of u's session.
func (c *csrfGuard) Token(u UserInfo) string {
	in := csrfInput{u.Subject, u.LoginID}
	if token, ok := c.made.Get(in); ok {
		return token
	}
	token := csrfMAC(c.macs[0], u)
	c.made.Put(in, token, nil)
	return token
}

// Check reports whether token is the CSRF token of u's session under any
// current secret.
func (c *csrfGuard) Check(u UserInfo, token string) bool {
	if token == "" || u.LoginID == "" {
		return false
	}
	for _, k := range c.macs {
		if hmac.Equal([]byte(csrfMAC(k, u)), []byte(token)) {
			return true
		}
	}
	return false
}

// csrfState is a keyed HMAC state with the buffers one MAC needs, reused
// together: writing strings and the sum through the hash.Hash interface
// allocated four times per page.
type csrfState struct {
	mac hash.Hash
	in  []byte
	sum [sha256.Size]byte
	out [43]byte // base64url of the sum, unpadded
}

func csrfMAC(pool *sync.Pool, u UserInfo) string {
	st := pool.Get().(*csrfState)
	defer pool.Put(st)
	st.mac.Reset()
	st.in = append(append(append(st.in[:0], u.Subject...), 0), u.LoginID...)
	st.mac.Write(st.in)
	base64.RawURLEncoding.Encode(st.out[:], st.mac.Sum(st.sum[:0]))
	return string(st.out[:])
}

// CSRF returns the anti-CSRF token of u's session, as Load puts it in
// Session.CSRF: for pages that did not load the session (User) but show a
// form.
func (s *Sessions) CSRF(u UserInfo) string { return s.csrf.Token(u) }

// CheckCSRF reports whether token is the anti-CSRF token of u's session
// under any of the current secrets.
func (s *Sessions) CheckCSRF(u UserInfo, token string) bool { return s.csrf.Check(u, token) }

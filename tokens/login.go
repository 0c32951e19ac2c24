package tokens

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/changebank/changebank/tokens/cookie"
)

// loginTTL is how long a login started here may take to come back.
const loginTTL = 10 * time.Minute

// maxLogins is how many login transactions one browser keeps at once (one
// per tab that started a login); starting another drops the oldest.
const maxLogins = 4

// loginTxn is the sealed content of a login transaction cookie.
type loginTxn struct {
	State    string `json:"state"`
	Nonce    string `json:"nonce"`
	Verifier string `json:"pkce"`
	ReturnTo string `json:"return_to"`
	Created  int64  `json:"iat"`
}

// loginCookie names the transaction cookie for a state. Each login has
// its own cookie, so logins started in two tabs both complete.
func loginCookie(state string) string {
	h := sha256.Sum256([]byte(state))
	return cookie.LoginPrefix + base64.RawURLEncoding.EncodeToString(h[:9])
}

// BeginLogin starts the authorization code flow: it stores a sealed
// transaction (state, nonce, PKCE verifier, returnTo) in its own cookie and
// returns the provider's authorization URL. returnTo is where FinishLogin
// sends the user: a path on this site (see SafeReturnPath), else "/".
//
// Until the provider has been discovered it returns an error wrapping
// ErrProviderUnavailable.
func (s *Sessions) BeginLogin(w http.ResponseWriter, r *http.Request, returnTo string) (string, error) {
	now := s.now()
	if returnTo = SafeReturnPath(returnTo); returnTo == "" {
		returnTo = "/"
	}
	txn := loginTxn{
		State:    rand.Text(),
		Nonce:    rand.Text(),
		Verifier: oauth2.GenerateVerifier(),
		ReturnTo: returnTo,
		Created:  now.Unix(),
	}
	authURL, err := s.client.authCodeURL(txn.State, txn.Verifier, txn.Nonce)
	if err != nil {
		return "", err
	}
	s.dropOldLogins(w, r)
	name := loginCookie(txn.State)
	// A browser drops a cookie whose line passes cookie.MaxLine, and the
	// callback would find no login: keep the whole return path when it
	// fits, else its path alone, else the home page.
	path, _, _ := strings.Cut(returnTo, "?")
	for _, txn.ReturnTo = range []string{returnTo, path, "/"} {
		sealed, err := s.cookies.Seal(name, txn)
		if err != nil {
			return "", fmt.Errorf("tokens: sealing the login transaction: %w", err)
		}
		cw, err := s.cookies.Prepare(name, sealed, now.Add(loginTTL), now)
		if err == nil && cw.Chunks() == 1 {
			s.cookies.Write(w, cw, 0)
			return authURL, nil
		}
	}
	return "", fmt.Errorf("tokens: the login transaction does not fit in a cookie")
}

// dropOldLogins expires the oldest transaction cookies so that, with the
// one about to be added, at most maxLogins remain.
func (s *Sessions) dropOldLogins(w http.ResponseWriter, r *http.Request) {
	type found struct {
		base    string
		created int64
	}
	var txns []found
	prefix := s.cookies.Name(cookie.LoginPrefix)
	for _, ck := range r.Cookies() {
		if !strings.HasPrefix(ck.Name, prefix) {
			continue
		}
		base := cookie.LoginPrefix + strings.TrimPrefix(ck.Name, prefix)
		var txn loginTxn
		if s.cookies.OpenValue(base, ck.Value, &txn) == nil {
			txns = append(txns, found{base, txn.Created})
		} else {
			txns = append(txns, found{base, 0}) // unreadable: first to go
		}
	}
	if len(txns) < maxLogins {
		return
	}
	sort.Slice(txns, func(i, j int) bool { return txns[i].created < txns[j].created })
	for _, t := range txns[:len(txns)-maxLogins+1] {
		s.cookies.Expire(w, t.base)
	}
}

// FinishLogin completes the flow at the callback: it checks state against
// the transaction cookie (and deletes that cookie), exchanges the code with
// the PKCE verifier, validates the ID token (with nonce) and the access
// token, and writes the session cookies. It returns where to send the user.
//
// Errors: *ProviderError for an error the provider sent (to the callback or
// from the token endpoint); ErrBadCallback for a callback that matches no
// live login here, or whose code the provider refused; ErrProviderUnavailable
// when the token endpoint or JWKS could not be reached; ErrNoSession when the
// tokens did not validate.
func (s *Sessions) FinishLogin(ctx context.Context, w http.ResponseWriter, r *http.Request) (string, error) {
	q := r.URL.Query()
	state := q.Get("state")
	if state == "" || len(state) > 256 {
		if code := q.Get("error"); code != "" {
			return "", callbackError(code)
		}
		return "", fmt.Errorf("%w: no state", ErrBadCallback)
	}
	name := loginCookie(state)
	var txn loginTxn
	err := s.cookies.Open(r, name, &txn)
	s.cookies.Expire(w, name) // one use only, whatever happens next
	now := s.now()
	switch {
	case err != nil:
		return "", fmt.Errorf("%w: no readable transaction cookie for this state", ErrBadCallback)
	case subtle.ConstantTimeCompare([]byte(txn.State), []byte(state)) != 1:
		return "", fmt.Errorf("%w: state differs", ErrBadCallback)
	case now.Sub(time.Unix(txn.Created, 0)) > loginTTL:
		return "", fmt.Errorf("%w: login started more than %s ago", ErrBadCallback, loginTTL)
	}
	if code := q.Get("error"); code != "" {
		return "", callbackError(code)
	}
	code := q.Get("code")
	if code == "" || len(code) > 2048 {
		return "", fmt.Errorf("%w: no code", ErrBadCallback)
	}

	// The transaction cookie's "one use" is only a Set-Cookie an attacker
	// can ignore: this instance exchanges each transaction's code once.
	if !s.spentLogins.add(sha256.Sum256([]byte(txn.State)), time.Unix(txn.Created, 0).Add(loginTTL), now) {
		s.observe.Refused("spent_login")
		return "", fmt.Errorf("%w: this login's code was exchanged already", ErrBadCallback)
	}
	// Anyone can start a transaction and forge its callback: refused
	// exchanges draw on a small budget, and while it is spent the provider
	// is not asked.
	if !s.exchanges.allow(now) {
		s.observe.Refused("exchange_budget")
		s.log.Warn("callback not exchanged: too many refused codes on this instance just now")
		return "", ErrLoginsThrottled
	}
	tok, err := s.client.exchange(ctx, code, txn.Verifier)
	if err != nil {
		if refusedByProvider(err) {
			s.exchanges.spend(s.now())
		}
		return "", err
	}
	res, err := s.validateTokens(ctx, tok, txn.Nonce, UserInfo{})
	if err != nil {
		return "", err
	}
	res.user.LoginID, res.user.LoginAt = rand.Text(), now.Unix()
	res.user.OpaqueAccess = res.opaque
	sess := &Session{
		AccessToken: res.access, Access: res.claims, RefreshToken: res.refreshToken, User: res.user,
		Expires: now.Add(s.refreshTTL), idToken: res.idToken,
		carried: s.cookies.Session(r).Carried, // a previous session's chunks, now stale
	}
	if err := s.write(w, sess, now); err != nil {
		s.log.Error("login tokens cannot be stored", "err", err)
		return "", fmt.Errorf("%w: %w", ErrNoSession, err)
	}
	s.cookies.Expire(w, cookie.LoggedOut)
	s.log.Info("login", "sub", sess.User.Subject)
	// Logging in again in this browser replaces the previous login's
	// cookies: revoke its refresh token, which nothing here could use or
	// revoke any more (logout revokes only the newest).
	var prev refreshCookie
	if s.cookies.Open(r, cookie.Refresh, &prev) == nil && prev.Token != "" && prev.Token != sess.RefreshToken {
		s.revokeOnce(ctx, prev)
	}
	return txn.ReturnTo, nil
}

// SafeReturnPath returns p when it is a path on this site that a redirect
// may safely go to, and "" otherwise: never another host ("//evil",
// "/\evil", "https://evil"), never control characters.
func SafeReturnPath(p string) string {
	if p == "" || len(p) > 1024 || p[0] != '/' || strings.HasPrefix(p, "//") || strings.ContainsAny(p, "\\") {
		return ""
	}
	for _, r := range p {
		if r < 0x20 || r == 0x7f {
			return ""
		}
	}
	u, err := url.Parse(p)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil {
		return ""
	}
	return p
}

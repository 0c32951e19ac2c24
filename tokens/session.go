package tokens

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/changebank/changebank/tokens/check"
	"github.com/changebank/changebank/tokens/cookie"
	"github.com/changebank/changebank/tokens/oidc"
)

// Claims are the claims the session reads from the provider's tokens (the
// access token's, in Session.Access): see oidc.Claims.
type Claims = oidc.Claims

// refreshMargin is how long before its exp an access token is refreshed,
// so it does not expire between this app's check and the user's next click.
const refreshMargin = 5 * time.Second

// A Session is what the cookies of one browser hold, validated.
type Session struct {
	AccessToken string  // the access token as issued: the JWT from cb_access_token, or the opaque token sealed there
	Access      *Claims // its validated claims
	// CSRF is the anti-CSRF token of the session's forms: a form that
	// changes anything sends it as the field csrf_token (Logout checks it,
	// and CheckCSRF does for any other form). It is stable across
	// refreshes and differs for every login.
	CSRF string
	// RefreshToken is from the sealed cb_refresh_token, which is opened only
	// to refresh (Load, Refresh). "" otherwise, or when the provider issued none.
	RefreshToken string
	User         UserInfo
	// Refreshed reports whether this request refreshed the tokens.
	Refreshed bool
	// Expires is when the refresh and userinfo cookies expire: the refresh token's end.
	Expires time.Time

	refreshSealed string         // cb_refresh_token as the request sent it
	carried       map[string]int // the chunks each chunked cookie came in (nil: none was)
	idToken       string         // the ID token a login or refresh just got, to seal in cb_id_token; "" to keep the cookie as it is
}

// UserInfo is the sealed content of cb_userinfo: the validated ID-token
// claims the pages show, and the session's bounds.
type UserInfo struct {
	Subject       string `json:"sub"`
	Name          string `json:"name,omitempty"` // never empty when the ID token has a name, given or family name, or email
	GivenName     string `json:"given_name,omitempty"`
	FamilyName    string `json:"family_name,omitempty"`
	Email         string `json:"email,omitempty"`
	EmailVerified bool   `json:"email_verified,omitempty"`
	// OpaqueAccess reports that the provider's access token is not a JWT:
	// cb_access_token holds it sealed with its expiry, and the provider
	// checks it only at each refresh (see opaque.go). (Beside the other
	// bool: the struct stays the size it was.)
	OpaqueAccess bool   `json:"opq,omitempty"`
	Birthdate    string `json:"birthdate,omitempty"`
	LoginID      string `json:"lid"`      // random per login: CSRF tokens are bound to it
	LoginAt      int64  `json:"login_at"` // when the user logged in: a logout after it ends the session
	Expires      int64  `json:"exp"`      // enforced here, not just by the browser
	// AccessHash is the SHA-256 of the access token the token endpoint
	// issued to this session: only that token passes in cb_access_token,
	// whatever its shape (see Verifier). Empty in sessions written before it.
	AccessHash []byte `json:"ath,omitempty"`
}

// refreshCookie is the sealed content of cb_refresh_token.
type refreshCookie struct {
	Token   string `json:"rt"`
	Subject string `json:"sub"`
	Expires int64  `json:"exp"`
}

// userInfoFrom keeps what the pages show from validated ID-token claims
// (or the userinfo endpoint's, when the ID token has none).
// Name is what every page and /api/me greet the user by: the name claim,
// else given and family name, else the email. FusionAuth sends name only
// when the user's fullName is stored, which it is not computed from first
// and last name.
func userInfoFrom(c *Claims) UserInfo {
	name := c.Name
	if name == "" {
		name = strings.TrimSpace(c.GivenName + " " + c.FamilyName)
	}
	if name == "" {
		name = c.Email
	}
	return UserInfo{
		Subject: c.Subject, Name: name, GivenName: c.GivenName, FamilyName: c.FamilyName,
		Email: c.Email, EmailVerified: bool(c.EmailVerified), Birthdate: c.Birthdate,
	}
}

// The session's life, on every request: Load (or Check, which acts on
// nothing) runs check; the cache in sessioncache.go spares the work a
// session's next requests would repeat.

// Load returns the request's session, refreshing its tokens when the access
// token is missing or about to expire (new cookies go on w). It returns
// ErrNoSession (cookies expired on w, and a notice set that says why) or
// ErrProviderUnavailable (cookies kept).
//
// The session of a browser whose cookies passed every check before comes
// from a cache, after every check whose answer can have changed is made
// again (see cachedSession); any other goes through check, which makes them
// all, and then Load acts on what it found.
func (s *Sessions) Load(ctx context.Context, w http.ResponseWriter, r *http.Request) (*Session, error) {
	sess, outcome, err := s.load(ctx, w, r)
	var why NoticeCode
	if outcome == "ended" {
		why = endReason(err)
	}
	s.observe.SessionLoaded(outcome, why)
	return sess, err
}

// load is Load, and says which of LoadOutcomes it came to.
func (s *Sessions) load(ctx context.Context, w http.ResponseWriter, r *http.Request) (*Session, string, error) {
	now := s.now()
	if sess, ok := s.cachedSession(ctx, s.cookies.SessionUnchecked(r), now); ok {
		return sess, "cached", nil
	}
	var l check.List
	v := s.cookies.Session(r)
	res := s.check(ctx, v, now, &l)
	sess, err := res.session, res.err
	switch {
	case err == nil && !res.refresh:
		s.rememberSession(v, sess, now)
		return sess, "verified", nil
	case err == nil:
		err = s.refreshInto(ctx, w, sess)
		switch {
		case err == nil:
			return sess, "refreshed", nil
		case errors.Is(err, ErrProviderUnavailable) && res.claims != nil && now.Before(res.claims.Expiry.Time()):
			// Refresh was early; the current token still works: serve with it.
			s.log.Warn("refresh failed, serving with the current access token", "err", err)
			sess.Access = res.claims
			return sess, "verified", nil
		case errors.Is(err, ErrNoSession):
			err = endedUnlessSaid(NoticeEndedRefused, err)
		}
	case errors.Is(err, oidc.ErrInvalidToken):
		s.log.Warn("session refused: invalid access token", "err", err)
	case endReason(err) == NoticeEndedMismatch:
		s.log.Warn("session refused: access token and userinfo name different users")
	}
	outcome := "unavailable"
	if errors.Is(err, ErrNoSession) {
		outcome = "none"
		if s.clear(w, r) {
			// A session ended here: the next page says why, even when the
			// provider's SSO session logs the user straight back in.
			s.Notify(w, endReason(err))
			outcome = "ended"
		}
	}
	return nil, outcome, err
}

// checked is what check found.
type checked struct {
	session *Session // the session the cookies hold; nil when err is set
	claims  *Claims  // the access token's claims when it passed, even expired
	refresh bool     // the access token is missing, expired or about to be: the refresh cookie opened
	err     error    // why the session ends (wrapping ErrNoSession), or ErrProviderUnavailable
}

// check makes every check of the session v holds, as of now, and records
// each one on l, in order. It acts on nothing (no cookie, no refresh): Load
// acts on what it finds, and Check reports it. It is the one path both take.
func (s *Sessions) check(ctx context.Context, v cookie.Values, now time.Time, l *check.List) checked {
	user, why := s.user(v, now, l)
	if why != "" {
		// Without it there is nothing to show, nor a login to bind to.
		return checked{err: ended(why, fmt.Errorf("%w: userinfo cookie missing, expired, unreadable or from before a logout", ErrNoSession))}
	}
	sess := &Session{AccessToken: v.Access, User: user, Expires: time.Unix(user.Expires, 0), refreshSealed: v.Refresh, carried: v.Carried}

	var claims *Claims
	if v.Access != "" {
		var err error
		if user.OpaqueAccess {
			claims, sess.AccessToken, err = s.openOpaque(v.Access, user, now, l)
		} else {
			claims, err = s.verifier.CheckAccess(ctx, v.Access, user.AccessHash, now, l)
		}
		switch {
		case errors.Is(err, ErrProviderUnavailable):
			return checked{err: err}
		case err != nil && !errors.Is(err, oidc.ErrExpired):
			return checked{err: fmt.Errorf("%w: %w", ErrNoSession, err)}
		case claims.Subject != user.Subject:
			return checked{err: l.Fail(check.Binding, ended(NoticeEndedMismatch, fmt.Errorf("%w: subject mismatch", ErrNoSession)))}
		}
		l.Pass(check.Binding)
		if err == nil && claims.Expiry.Time().Sub(now) > refreshMargin {
			sess.Access, sess.CSRF = claims, s.csrf.Token(user)
			return checked{session: sess, claims: claims}
		}
	} else {
		l.Fail(check.Shape, nil) // no access token: refresh, or end the session
	}
	// The refresh cookie is opened only now, to refresh.
	if why := s.openRefresh(sess, now); why != "" {
		l.Fail(check.Refresh, nil)
		return checked{err: ended(why, fmt.Errorf("%w: access token expired and no usable refresh token", ErrNoSession))}
	}
	l.Pass(check.Refresh)
	return checked{session: sess, claims: claims, refresh: true}
}

// A Verdict is what Check found on a request's cookies.
type Verdict struct {
	// Steps are the checks made, in the order made; a check never
	// reached is not among them (check.All lists every one).
	Steps []check.Step
	// Kid and Alg name the key and algorithm the access token's signature
	// was checked with, once the key check passed.
	Kid, Alg string
	At       time.Time // the time the checks were made against
	// Refresh reports that the cookies are sound but the access token is
	// missing, expired or about to be: Load would redeem the refresh token.
	Refresh bool
	// Err is why Load would end the session (wrapping ErrNoSession), or
	// ErrProviderUnavailable when the provider's keys could not be had and
	// nothing was judged; nil when Load would serve or refresh it.
	Err error
}

// Check makes every check Load makes on r's cookies, as of at (now when
// at is zero), and reports each one. It acts on nothing: no refresh, no
// cookie written, no token endpoint called (the provider's JWKS may be
// fetched, as Load would). Load and Check run the same checks on the same
// code path.
func (s *Sessions) Check(ctx context.Context, r *http.Request, at time.Time) Verdict {
	if at.IsZero() {
		at = s.now()
	}
	var l check.List
	res := s.check(ctx, s.cookies.Session(r), at, &l)
	return Verdict{Steps: slices.Clone(l.Steps()), Kid: l.Kid, Alg: l.Alg, At: at, Refresh: res.refresh, Err: res.err}
}

// Refresh redeems the session's refresh token now, whatever the access
// token's expiry, and writes the new cookies on w. Errors are as Load's:
// a session that ended has its cookies expired and a notice set.
func (s *Sessions) Refresh(ctx context.Context, w http.ResponseWriter, sess *Session) error {
	var err error
	if why := s.openRefresh(sess, s.now()); why != "" {
		err = ended(why, ErrNoSession)
	} else if err = s.refreshInto(ctx, w, sess); errors.Is(err, ErrNoSession) {
		err = endedUnlessSaid(NoticeEndedRefused, err)
	}
	if errors.Is(err, ErrNoSession) {
		s.expireAll(w, sess.carried)
		s.Notify(w, endReason(err))
	}
	return err
}

// refreshInto refreshes sess in place (once per refresh token, see
// refresher) and writes its cookies.
func (s *Sessions) refreshInto(ctx context.Context, w http.ResponseWriter, sess *Session) error {
	old, user := sess.RefreshToken, sess.User
	res, err := s.refresh.do(ctx, old, sess.Expires, func(ctx context.Context) (*refreshed, error) {
		return s.redeem(ctx, old, user)
	})
	if err != nil {
		return err
	}
	sess.AccessToken, sess.Access, sess.RefreshToken, sess.User, sess.Refreshed = res.access, res.claims, res.refreshToken, res.user, true
	sess.idToken = res.idToken
	sess.CSRF = s.csrf.Token(sess.User)
	if err := s.write(w, sess, s.now()); err != nil {
		s.log.Error("refreshed tokens cannot be stored", "err", err)
		if errors.Is(err, ErrSessionTooLarge) {
			return ended(NoticeEndedTooLarge, err)
		}
		return fmt.Errorf("%w: %w", ErrNoSession, err)
	}
	return nil
}

// User returns the sealed userinfo cookie's content when it is present,
// genuine, unexpired, and not from before this browser's last logout,
// without looking at the tokens or refreshing anything: for pages that
// only greet, and for checking a form's CSRF token.
func (s *Sessions) User(r *http.Request) (UserInfo, bool) {
	var l check.List
	user, why := s.user(s.cookies.Session(r), s.now(), &l)
	return user, why == ""
}

// user is User on the request's cookie values, with the reason a session
// that is not there ended, recording each check on l.
func (s *Sessions) user(v cookie.Values, now time.Time, l *check.List) (UserInfo, NoticeCode) {
	user, ok := s.openUser(v.UserInfo, now)
	if !ok {
		l.Fail(check.UserInfo, cookie.ErrUnsealable)
		return UserInfo{}, NoticeEndedTampered
	}
	l.Pass(check.UserInfo)
	if why := s.userChecks(user, v.LoggedOut, now, l); why != "" {
		return UserInfo{}, why
	}
	return user, ""
}

// userChecks checks an opened cb_userinfo against the clock and the
// browser's logout marker (loggedOut, the cookie's raw value).
func (s *Sessions) userChecks(user UserInfo, loggedOut string, now time.Time, l *check.List) NoticeCode {
	if now.Unix() >= user.Expires {
		l.Fail(check.SessionEnd, nil)
		return NoticeEndedExpired
	}
	l.Pass(check.SessionEnd)
	// A response that was in flight at logout may have set fresh cookies.
	// Without a marker there is nothing to parse (and a failed ParseInt
	// allocates its error on every request of a browser never logged out).
	if loggedOut != "" {
		if out, err := strconv.ParseInt(loggedOut, 10, 64); err == nil && user.LoginAt <= out {
			l.Fail(check.Logout, nil)
			return NoticeEndedStale
		}
	}
	l.Pass(check.Logout)
	return ""
}

// openUser opens a sealed cb_userinfo value, or finds it opened before.
// The cache is for this one cookie, so the value's hash is key enough; it
// only ever holds what opened under a current secret, and the caller
// checks the expiry and the logout marker on every request.
func (s *Sessions) openUser(sealed string, now time.Time) (UserInfo, bool) {
	if sealed == "" || len(sealed) > cookie.MaxSessionBytes {
		return UserInfo{}, false
	}
	sum := sha256.Sum256([]byte(sealed))
	if u, ok := s.users.Get(sum); ok {
		return u, true
	}
	var u UserInfo
	if s.cookies.OpenValue(cookie.UserInfo, sealed, &u) != nil {
		return UserInfo{}, false
	}
	s.users.Put(sum, u, func(old UserInfo) bool { return old.Expires < now.Unix() })
	return u, true
}

// openRefresh fills sess.RefreshToken from the request's sealed refresh
// cookie when it is still empty, or says why a session without a usable
// refresh cookie ends: expired (none, or past its end) or tampered
// (it does not open, or names another user than cb_userinfo).
func (s *Sessions) openRefresh(sess *Session, now time.Time) NoticeCode {
	if sess.RefreshToken != "" {
		return ""
	}
	if sess.refreshSealed == "" {
		return NoticeEndedExpired
	}
	var rc refreshCookie
	switch err := s.cookies.OpenValue(cookie.Refresh, sess.refreshSealed, &rc); {
	case err != nil || rc.Subject != sess.User.Subject:
		s.log.Warn("session refused: the refresh cookie does not open or names another user")
		return NoticeEndedTampered
	case now.Unix() >= rc.Expires:
		return NoticeEndedExpired
	}
	sess.RefreshToken = rc.Token
	return ""
}

// write sets the session's cookies on w, each cut into chunks when it is
// too large for one cookie, and expires the chunks the request carried
// beyond the new counts, and the refresh cookie when sess has no refresh
// token. It sets none of them, and returns an error wrapping
// ErrSessionTooLarge, when together they would pass cookie.MaxSessionBytes.
func (s *Sessions) write(w http.ResponseWriter, sess *Session, now time.Time) error {
	user := sess.User
	user.Expires = sess.Expires.Unix()
	sum := sha256.Sum256([]byte(sess.AccessToken))
	user.AccessHash = sum[:]
	sealedUser, err := s.cookies.Seal(cookie.UserInfo, user)
	if err != nil {
		return err
	}
	writes := make([]cookie.Prepared, 0, 3)
	add := func(base, value string, expires time.Time) error {
		cw, err := s.cookies.Prepare(base, value, expires, now)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrSessionTooLarge, err)
		}
		writes = append(writes, cw)
		return nil
	}
	access := sess.AccessToken
	if user.OpaqueAccess {
		if access, err = s.sealOpaque(sess); err != nil {
			return err
		}
	}
	if err := add(cookie.Access, access, sess.Access.Expiry.Time()); err != nil {
		return err
	}
	if err := add(cookie.UserInfo, sealedUser, sess.Expires); err != nil {
		return err
	}
	if sess.RefreshToken != "" {
		rc := refreshCookie{Token: sess.RefreshToken, Subject: user.Subject, Expires: sess.Expires.Unix()}
		sealed, err := s.cookies.Seal(cookie.Refresh, rc)
		if err != nil {
			return err
		}
		if err := add(cookie.Refresh, sealed, sess.Expires); err != nil {
			return err
		}
	}
	total, sizes := 0, make([]any, 0, 2*len(writes))
	for _, cw := range writes {
		total += cw.Size()
		sizes = append(sizes, cw.Base, cw.Size())
	}
	if total > cookie.MaxSessionBytes {
		return fmt.Errorf("%w: its cookies would be %d bytes (access token %d bytes; %v), more than the %d a session may take",
			ErrSessionTooLarge, total, len(sess.AccessToken), sizes, cookie.MaxSessionBytes)
	}
	for _, cw := range writes {
		s.cookies.Write(w, cw, sess.carried[cw.Base])
	}
	if sess.RefreshToken == "" {
		// A login without a refresh token replaces one the browser may
		// hold from the previous login, which must not refresh this one.
		s.cookies.ExpireChunked(w, cookie.Refresh, sess.carried[cookie.Refresh])
	}
	s.writeIDToken(w, sess, now)
	return nil
}

// writeIDToken keeps the session's latest ID token, sealed, in cb_id_token
// for logout's id_token_hint. It is a hint, not part of the session: one
// too large for a cookie is left out (logout then goes without the hint,
// which FusionAuth, Auth0 and Okta do not need) rather than failing the login.
func (s *Sessions) writeIDToken(w http.ResponseWriter, sess *Session, now time.Time) {
	if sess.idToken == "" {
		return
	}
	sealed, err := s.cookies.Seal(cookie.IDToken, idTokenCookie{Token: sess.idToken, Subject: sess.User.Subject})
	var cw cookie.Prepared
	if err == nil {
		cw, err = s.cookies.Prepare(cookie.IDToken, sealed, sess.Expires, now)
	}
	if err == nil && cw.Chunks() > 1 {
		// Not chunked: a hint is not worth more cookies.
		err = fmt.Errorf("tokens: %s would be %d bytes, more than one cookie holds (%d per Set-Cookie line)", cookie.IDToken, len(sealed), cookie.MaxLine)
	}
	if err != nil {
		s.log.Warn("ID token not kept: logout will go without id_token_hint", "sub", sess.User.Subject, "err", err)
		s.cookies.Expire(w, cookie.IDToken) // an older one would name a stale session
		return
	}
	s.cookies.Write(w, cw, 0)
}

// idTokenCookie is the sealed content of cb_id_token.
type idTokenCookie struct {
	Token   string `json:"idt"`
	Subject string `json:"sub"`
}

// sessionCookies are the cookies that hold a session.
var sessionCookies = []string{cookie.Access, cookie.Refresh, cookie.UserInfo}

// expireAll expires every session cookie, the chunks the request carried
// (carried as in Session), and the ID token kept for logout.
func (s *Sessions) expireAll(w http.ResponseWriter, carried map[string]int) {
	for _, base := range sessionCookies {
		s.cookies.ExpireChunked(w, base, carried[base])
	}
	s.cookies.Expire(w, cookie.IDToken)
}

// clear expires the session cookies the request carries, chunks included,
// and reports whether it carried any. cb_id_token, sent only to /logout,
// goes with them unseen: the session it names has ended.
func (s *Sessions) clear(w http.ResponseWriter, r *http.Request) bool {
	carried := s.cookies.Session(r).Carried
	any := false
	for _, base := range sessionCookies {
		if _, err := r.Cookie(s.cookies.Name(base)); err == nil {
			s.cookies.ExpireChunked(w, base, carried[base])
			any = true
		}
	}
	if any {
		s.cookies.Expire(w, cookie.IDToken)
	}
	return any
}

// ExpireAccess drops the access cookie and the chunks r carried of it, so
// that the next request refreshes. The session inspector's "expire now"
// button uses it.
func (s *Sessions) ExpireAccess(w http.ResponseWriter, r *http.Request) {
	s.cookies.ExpireChunked(w, cookie.Access, s.cookies.Chunks(r, cookie.Access))
}

package tokens

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// refreshMargin is how long before its exp an access token is refreshed,
// so it does not expire between this app's check and the user's next click.
const refreshMargin = 5 * time.Second

// A Session is what the cookies of one browser hold, validated.
type Session struct {
	AccessToken string  // the JWT as issued, from cb_access_token
	Access      *Claims // its validated claims
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
	Birthdate     string `json:"birthdate,omitempty"`
	LoginID       string `json:"lid"`      // random per login: CSRF tokens are bound to it
	LoginAt       int64  `json:"login_at"` // when the user logged in: a logout after it ends the session
	Expires       int64  `json:"exp"`      // enforced here, not just by the browser
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

// A Manager loads, refreshes, writes and ends cookie sessions. It keeps no
// session state: any instance holding the same secrets serves any request.
type Manager struct {
	cookies    *CookieStore
	client     *Client
	verifier   *Verifier
	refresh    *refresher
	refreshTTL time.Duration // the refresh token's life at the provider
	now        func() time.Time
	log        *slog.Logger
	// users remembers opened cb_userinfo values by the value's hash: the
	// same value arrives on every request of a session, and opening and
	// decoding it cost more than the rest of the cookie work together.
	users *boundedCache[UserInfo]
	// Per-instance memory that keeps attacker input from costing the
	// provider more than one call (see shield.go): the login transactions
	// exchanged, the refresh tokens refused or revoked, by hash.
	spentLogins *hashSet
	deadTokens  *hashSet
	exchanges   *exchangeBudget
	// sessions remembers whole sessions that passed every check, keyed on
	// their cookie values: see sessionCache.
	sessions *sessionCache
}

// NewManager returns a Manager that keeps sessions in cookies, gets tokens
// through client and checks them with verifier. refreshTTL is the refresh
// token's life at the provider: the session cookies live as long.
func NewManager(cookies *CookieStore, client *Client, verifier *Verifier, refreshTTL time.Duration, now func() time.Time, log *slog.Logger) *Manager {
	m := &Manager{
		cookies: cookies, client: client, verifier: verifier, refreshTTL: refreshTTL, now: now, log: log,
		refresh: newRefresher(now, RefreshGrace, client.http.Timeout), users: newBoundedCache[UserInfo](),
		spentLogins: newHashSet(), deadTokens: newHashSet(), exchanges: newExchangeBudget(now()),
		sessions: newSessionCache(),
	}
	m.refresh.dead = m.deadTokens
	return m
}

// Load returns the request's session, refreshing its tokens when the access
// token is missing or about to expire (new cookies go on w). It returns
// ErrNoSession (cookies expired on w) or ErrProviderUnavailable (cookies kept).
func (m *Manager) Load(ctx context.Context, w http.ResponseWriter, r *http.Request) (*Session, error) {
	s, err := m.load(ctx, w, r, nil)
	if errors.Is(err, ErrNoSession) && m.clear(w, r) {
		// A session ended here: the next page says why, even when the
		// provider's SSO session logs the user straight back in.
		m.Notify(w, EndReason(err))
	}
	return s, err
}

// load is Load without clearing cookies. With a recorder it records each
// check and stops where it would refresh, returning errWouldRefresh: a
// trace looks and never acts (w is not used then).
func (m *Manager) load(ctx context.Context, w http.ResponseWriter, r *http.Request, rec *recorder) (*Session, error) {
	now := rec.now(m.now)
	if rec == nil { // a trace always watches the whole load
		if s, ok := m.cachedSession(ctx, m.cookies.uncheckedSessionValues(r), now); ok {
			return s, nil
		}
	}
	v := m.cookies.sessionValues(r)
	user, why := m.user(v, now, rec)
	if why != "" {
		// Without it there is nothing to show, nor a login to bind to.
		return nil, ended(why, fmt.Errorf("%w: userinfo cookie missing, expired, unreadable or from before a logout", ErrNoSession))
	}
	access := v.access
	s := &Session{AccessToken: access, User: user, Expires: time.Unix(user.Expires, 0), refreshSealed: v.refresh, carried: v.carried}

	var claims *Claims
	if access != "" {
		var err error
		claims, err = m.verifier.accessToken(ctx, access, user.AccessHash, rec)
		switch {
		case errors.Is(err, ErrProviderUnavailable):
			return nil, err
		case err != nil && !errors.Is(err, errExpired):
			if rec == nil { // a trace (the attack lab) ends no session
				m.log.Warn("session refused: invalid access token", "err", err)
			}
			return nil, fmt.Errorf("%w: %w", ErrNoSession, err)
		case claims.Subject != user.Subject:
			if rec == nil {
				m.log.Warn("session refused: access token and userinfo name different users")
			}
			return nil, rec.fail(CheckBinding, ended(NoticeEndedMismatch, fmt.Errorf("%w: subject mismatch", ErrNoSession)))
		}
		rec.pass(CheckBinding)
		if err == nil && claims.Expiry.Time().Sub(now) > refreshMargin {
			s.Access = claims
			if rec == nil {
				m.rememberSession(v, s, now)
			}
			return s, nil
		}
	} else {
		rec.fail(CheckShape, nil) // no access token: refresh, or end the session
	}
	// The refresh cookie is opened only now, to refresh.
	if why := m.openRefresh(s, now); why != "" {
		rec.fail(CheckRefresh, nil)
		return nil, ended(why, fmt.Errorf("%w: access token expired and no usable refresh token", ErrNoSession))
	}
	rec.pass(CheckRefresh)
	if rec != nil {
		return s, errWouldRefresh
	}
	err := m.refreshInto(ctx, w, s)
	switch {
	case err == nil:
		return s, nil
	case errors.Is(err, ErrProviderUnavailable) && claims != nil && now.Before(claims.Expiry.Time()):
		// Refresh was early; the current token still works: serve with it.
		m.log.Warn("refresh failed, serving with the current access token", "err", err)
		s.Access = claims
		return s, nil
	case errors.Is(err, ErrNoSession):
		return nil, endedUnlessSaid(NoticeEndedRefused, err)
	default:
		return nil, err
	}
}

// Refresh redeems the session's refresh token now, whatever the access
// token's expiry, and writes the new cookies on w. The session inspector's
// "Refresh now" button uses it. Errors are as Load's.
func (m *Manager) Refresh(ctx context.Context, w http.ResponseWriter, s *Session) error {
	var err error
	if why := m.openRefresh(s, m.now()); why != "" {
		err = ended(why, ErrNoSession)
	} else if err = m.refreshInto(ctx, w, s); errors.Is(err, ErrNoSession) {
		err = endedUnlessSaid(NoticeEndedRefused, err)
	}
	if errors.Is(err, ErrNoSession) {
		m.expireAll(w, s.carried)
	}
	return err
}

// refreshInto refreshes s in place (once per refresh token, see refresher)
// and writes its cookies.
func (m *Manager) refreshInto(ctx context.Context, w http.ResponseWriter, s *Session) error {
	old, user := s.RefreshToken, s.User
	res, err := m.refresh.do(ctx, old, s.Expires, func(ctx context.Context) (*refreshed, error) {
		return m.redeem(ctx, old, user)
	})
	if err != nil {
		return err
	}
	s.AccessToken, s.Access, s.RefreshToken, s.User, s.Refreshed = res.access, res.claims, res.refreshToken, res.user, true
	s.idToken = res.idToken
	if err := m.write(w, s, m.now()); err != nil {
		m.log.Error("refreshed tokens cannot be stored", "err", err)
		if errors.Is(err, ErrSessionTooLarge) {
			return ended(NoticeEndedTooLarge, err)
		}
		return fmt.Errorf("%w: %w", ErrNoSession, err)
	}
	return nil
}

// User returns the sealed userinfo cookie's content when it is present,
// genuine, unexpired, and not from before this browser's last logout,
// without looking at the tokens. Logout uses it to check the CSRF token
// without refreshing anything.
func (m *Manager) User(r *http.Request) (UserInfo, bool) {
	user, why := m.user(m.cookies.sessionValues(r), m.now(), nil)
	return user, why == ""
}

// user is User on the request's cookie values, with the reason a session
// that is not there ended, recording each check on rec (which may be nil).
func (m *Manager) user(v sessionValues, now time.Time, rec *recorder) (UserInfo, NoticeCode) {
	user, ok := m.openUser(v.userInfo, now)
	if !ok {
		rec.fail(CheckUserInfo, errUnsealable)
		return UserInfo{}, NoticeEndedTampered
	}
	rec.pass(CheckUserInfo)
	if why := m.userChecks(user, v.loggedOut, now, rec); why != "" {
		return UserInfo{}, why
	}
	return user, ""
}

// userChecks checks an opened cb_userinfo against the clock and the
// browser's logout marker (loggedOut, the cookie's raw value).
func (m *Manager) userChecks(user UserInfo, loggedOut string, now time.Time, rec *recorder) NoticeCode {
	if now.Unix() >= user.Expires {
		rec.fail(CheckSessionEnd, nil)
		return NoticeEndedExpired
	}
	rec.pass(CheckSessionEnd)
	// A response that was in flight at logout may have set fresh cookies.
	// Without a marker there is nothing to parse (and a failed ParseInt
	// allocates its error on every request of a browser never logged out).
	if loggedOut != "" {
		if out, err := strconv.ParseInt(loggedOut, 10, 64); err == nil && user.LoginAt <= out {
			rec.fail(CheckLogout, nil)
			return NoticeEndedStale
		}
	}
	rec.pass(CheckLogout)
	return ""
}

// openUser opens a sealed cb_userinfo value, or finds it opened before.
// The cache is for this one cookie, so the value's hash is key enough; it
// only ever holds what opened under a current secret, and the caller
// checks the expiry and the logout marker on every request.
func (m *Manager) openUser(sealed string, now time.Time) (UserInfo, bool) {
	if sealed == "" || len(sealed) > maxSealedLen {
		return UserInfo{}, false
	}
	sum := sha256.Sum256([]byte(sealed))
	if u, ok := m.users.get(sum); ok {
		return u, true
	}
	var u UserInfo
	if m.cookies.openValue(UserInfoCookie, sealed, &u) != nil {
		return UserInfo{}, false
	}
	m.users.put(sum, u, u.Expires, now.Unix())
	return u, true
}

// openRefresh fills s.RefreshToken from the request's sealed refresh
// cookie when it is still empty, or says why a session without a usable
// refresh cookie ends: expired (none, or past its end) or tampered
// (it does not open, or names another user than cb_userinfo).
func (m *Manager) openRefresh(s *Session, now time.Time) NoticeCode {
	if s.RefreshToken != "" {
		return ""
	}
	if s.refreshSealed == "" {
		return NoticeEndedExpired
	}
	var rc refreshCookie
	switch err := m.cookies.openValue(RefreshCookie, s.refreshSealed, &rc); {
	case err != nil || rc.Subject != s.User.Subject:
		m.log.Warn("session refused: the refresh cookie does not open or names another user")
		return NoticeEndedTampered
	case now.Unix() >= rc.Expires:
		return NoticeEndedExpired
	}
	s.RefreshToken = rc.Token
	return ""
}

// write sets the session's cookies on w, each cut into chunks when it is
// too large for one cookie, and expires the chunks the request carried
// beyond the new counts, and the refresh cookie when s has no refresh token. It sets none of them, and returns an error
// wrapping ErrSessionTooLarge, when together they would pass
// MaxSessionBytes.
func (m *Manager) write(w http.ResponseWriter, s *Session, now time.Time) error {
	user := s.User
	user.Expires = s.Expires.Unix()
	sum := sha256.Sum256([]byte(s.AccessToken))
	user.AccessHash = sum[:]
	sealedUser, err := m.cookies.seal(UserInfoCookie, user)
	if err != nil {
		return err
	}
	writes := make([]cookieWrite, 0, 3)
	add := func(base, value string, expires time.Time) error {
		cw, err := m.cookies.prepare(base, value, expires, now)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrSessionTooLarge, err)
		}
		writes = append(writes, cw)
		return nil
	}
	if err := add(AccessCookie, s.AccessToken, s.Access.Expiry.Time()); err != nil {
		return err
	}
	if err := add(UserInfoCookie, sealedUser, s.Expires); err != nil {
		return err
	}
	if s.RefreshToken != "" {
		rc := refreshCookie{Token: s.RefreshToken, Subject: user.Subject, Expires: s.Expires.Unix()}
		sealed, err := m.cookies.seal(RefreshCookie, rc)
		if err != nil {
			return err
		}
		if err := add(RefreshCookie, sealed, s.Expires); err != nil {
			return err
		}
	}
	total, sizes := 0, make([]any, 0, 2*len(writes))
	for _, cw := range writes {
		total += cw.size()
		sizes = append(sizes, cw.base, cw.size())
	}
	if total > MaxSessionBytes {
		return fmt.Errorf("%w: its cookies would be %d bytes (access token %d bytes; %v), more than the %d a session may take",
			ErrSessionTooLarge, total, len(s.AccessToken), sizes, MaxSessionBytes)
	}
	for _, cw := range writes {
		m.cookies.write(w, cw, s.carried[cw.base])
	}
	if s.RefreshToken == "" {
		// A login without a refresh token replaces one the browser may
		// hold from the previous login, which must not refresh this one.
		m.cookies.expireChunked(w, RefreshCookie, s.carried[RefreshCookie])
	}
	m.writeIDToken(w, s, now)
	return nil
}

// writeIDToken keeps the session's latest ID token, sealed, in cb_id_token
// for logout's id_token_hint. It is a hint, not part of the session: one
// too large for a cookie is left out (logout then goes without the hint,
// which FusionAuth, Auth0 and Okta do not need) rather than failing the login.
func (m *Manager) writeIDToken(w http.ResponseWriter, s *Session, now time.Time) {
	if s.idToken == "" {
		return
	}
	sealed, err := m.cookies.seal(IDTokenCookie, idTokenCookie{Token: s.idToken, Subject: s.User.Subject})
	var cw cookieWrite
	if err == nil {
		cw, err = m.cookies.prepare(IDTokenCookie, sealed, s.Expires, now)
	}
	if err == nil && len(cw.lines) > 1 {
		// Not chunked: a hint is not worth more cookies.
		err = fmt.Errorf("tokens: %s would be %d bytes, more than one cookie holds (%d per Set-Cookie line)", IDTokenCookie, len(sealed), maxSetCookieLine)
	}
	if err != nil {
		m.log.Warn("ID token not kept: logout will go without id_token_hint", "sub", s.User.Subject, "err", err)
		m.cookies.expire(w, IDTokenCookie) // an older one would name a stale session
		return
	}
	m.cookies.write(w, cw, 0)
}

// idTokenCookie is the sealed content of cb_id_token.
type idTokenCookie struct {
	Token   string `json:"idt"`
	Subject string `json:"sub"`
}

// sessionCookies are the cookies that hold a session.
var sessionCookies = []string{AccessCookie, RefreshCookie, UserInfoCookie}

// expireAll expires every session cookie, the chunks the request carried
// (carried as in Session), and the ID token kept for logout.
func (m *Manager) expireAll(w http.ResponseWriter, carried map[string]int) {
	for _, base := range sessionCookies {
		m.cookies.expireChunked(w, base, carried[base])
	}
	m.cookies.expire(w, IDTokenCookie)
}

// clear expires the session cookies the request carries, chunks included,
// and reports whether it carried any. cb_id_token, sent only to /logout,
// goes with them unseen: the session it names has ended.
func (m *Manager) clear(w http.ResponseWriter, r *http.Request) bool {
	carried := m.cookies.sessionValues(r).carried
	any := false
	for _, base := range sessionCookies {
		if _, err := r.Cookie(m.cookies.Name(base)); err == nil {
			m.cookies.expireChunked(w, base, carried[base])
			any = true
		}
	}
	if any {
		m.cookies.expire(w, IDTokenCookie)
	}
	return any
}

// ExpireAccess drops the access cookie and the chunks r carried of it, so
// that the next request refreshes. The session inspector's "expire now"
// button uses it.
func (m *Manager) ExpireAccess(w http.ResponseWriter, r *http.Request) {
	m.cookies.expireChunked(w, AccessCookie, m.cookies.Chunks(r, AccessCookie))
}

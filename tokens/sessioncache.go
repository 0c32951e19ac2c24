package tokens

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/changebank/changebank/internal/bounded"
	"github.com/changebank/changebank/tokens/check"
	"github.com/changebank/changebank/tokens/cookie"
	"github.com/changebank/changebank/tokens/oidc"
)

// maxCachedSessions bounds the session cache. An entry holds the two
// cookie values it is keyed on (some 2 KB for a session of the usual size,
// up to MaxSessionBytes for a chunked one) and the claims: under 10 MB for
// usual sessions (7 MB in TestSessionCacheStaysBounded), however many
// distinct sessions arrive; a flood of them only evicts.
const maxCachedSessions = 4096

// sessionKey is the whole value of each cookie that what an entry holds
// depends on, as the request sent it. Two requests share an entry only when
// they carry the very same bytes in both: a cache keyed on any less (a
// hash, a prefix, the subject) could answer for cookies it never checked.
// The logout marker is not in it: it is checked against every request's
// own (cachedSession), and a browser may set it to anything, so as part of
// the key it would let one session fill the cache with copies of itself.
type sessionKey struct {
	access, userInfo string
}

// validSession is what a full load established for a sessionKey: the
// opened userinfo cookie, its CSRF token, and the verified access token
// (with its binding to user.AccessHash: a function of the key alone). It is
// never modified once stored: the Sessions built from it share its claims.
type validSession struct {
	user  UserInfo
	csrf  string
	token oidc.Verified
	ends  int64 // Unix time: the earlier of the session's end and the token's exp
	// opaque is what opening an opaque access token's cookie established
	// (user.OpaqueAccess): the token and the claims the session stands on.
	// Its seal, binding and subject depend on the key's bytes alone; its
	// expiry is checked again on every use.
	opaque *openedOpaque
}

// openedOpaque is an opaque access token's cookie, opened and checked.
type openedOpaque struct {
	token  string
	claims *Claims
}

// sessionCache remembers the sessions that passed every check, so that the
// next request of the same browser skips what those checks computed
// (opening cb_userinfo, hashing both values for the caches behind them),
// but no check: see Sessions.cachedSession. A Go map keyed on the values
// themselves costs one pass of the runtime's hash over them where SHA-256
// took one per cache. Memory so holds, for each cached session, its access
// token and its sealed userinfo cookie, as it does while serving a request;
// never the refresh cookie. When full, the sessions that have ended go
// first, then arbitrary ones (see bounded.Evict).
type sessionCache struct {
	m *bounded.Map[sessionKey, *validSession]
}

func newSessionCache() *sessionCache {
	return &sessionCache{m: bounded.New[sessionKey, *validSession](maxCachedSessions, bounded.Evict)}
}

func keyOf(v cookie.Values) sessionKey {
	return sessionKey{access: v.Access, userInfo: v.UserInfo}
}

func (c *sessionCache) get(v cookie.Values) (*validSession, bool) {
	return c.m.Get(keyOf(v))
}

// put remembers e for v's values, copied: the request's strings point into
// its whole Cookie header, which the cache must not keep alive.
func (c *sessionCache) put(v cookie.Values, e *validSession, now time.Time) {
	k := sessionKey{access: strings.Clone(v.Access), userInfo: strings.Clone(v.UserInfo)}
	c.m.Put(k, e, func(old *validSession) bool { return old.ends <= now.Unix() })
}

func (c *sessionCache) drop(v cookie.Values) { c.m.Delete(keyOf(v)) }

func (c *sessionCache) len() int { return c.m.Len() }

// cachedSession returns the session of values a full load accepted before,
// after making again every check whose answer can have changed since: the
// session's end and the logout marker (userChecks), the access token's
// times, kind rules and key, which must still be in the JWKS (recheck), the
// binding of the token's subject to cb_userinfo's, and the margin before the
// token's expiry that makes a full load refresh. When any of them fails it
// returns false, and the full load, which records why, decides.
//
// A check of the full load that depends on the two values of the key alone
// (a signature, a binding between the cookies) holds for the key as it did
// when cached. A check that depends on anything else (the clock, the key
// set, a memory of refused tokens) must be made here too.
//
// v comes from an unchecked read (cookie.Store.SessionUnchecked): the
// values of the key were checked when cached; the logout marker, checked
// against the clock here, and the refresh cookie, which the session carries
// along unopened, are checked here, so that a hit sees what a checked read
// would.
//
// The checks run on the functions check runs them with, recording on a
// list of their own that nobody reads: a hit either serves or falls back
// to check, which records for itself.
func (s *Sessions) cachedSession(ctx context.Context, v cookie.Values, now time.Time) (*Session, bool) {
	e, ok := s.sessions.get(v)
	if !ok || !cookie.ValidValue(v.Refresh) || !cookie.ValidValue(v.LoggedOut) {
		return nil, false
	}
	var l check.List
	if why := s.userChecks(e.user, v.LoggedOut, now, &l); why != "" {
		s.sessions.drop(v)
		return nil, false
	}
	if o := e.opaque; o != nil {
		if o.claims.Expiry.Time().Sub(now) <= refreshMargin {
			s.sessions.drop(v)
			return nil, false
		}
		return &Session{AccessToken: o.token, Access: o.claims, CSRF: e.csrf, User: e.user, Expires: time.Unix(e.user.Expires, 0),
			refreshSealed: v.Refresh, carried: v.Carried}, true
	}
	claims, err := s.verifier.Recheck(ctx, &e.token, now, &l)
	if errors.Is(err, oidc.ErrStaleKey) {
		// The full load verifies the token again, with no second lookup
		// of the gone key through the verifier's own cache.
		s.verifier.Forget(v.Access)
	}
	if err != nil || claims.Subject != e.user.Subject || claims.Expiry.Time().Sub(now) <= refreshMargin {
		s.sessions.drop(v)
		return nil, false
	}
	return &Session{AccessToken: v.Access, Access: claims, CSRF: e.csrf, User: e.user, Expires: time.Unix(e.user.Expires, 0),
		refreshSealed: v.Refresh, carried: v.Carried}, true
}

// rememberSession caches what a full load of v accepted without refreshing.
func (s *Sessions) rememberSession(v cookie.Values, sess *Session, now time.Time) {
	if sess.User.OpaqueAccess {
		ends := min(sess.User.Expires, int64(sess.Access.Expiry))
		s.sessions.put(v, &validSession{user: sess.User, csrf: sess.CSRF, ends: ends,
			opaque: &openedOpaque{token: sess.AccessToken, claims: sess.Access}}, now)
		return
	}
	if t, ok := s.verifier.Remembered(v.Access, sess.User.AccessHash); ok {
		ends := min(sess.User.Expires, int64(sess.Access.Expiry))
		s.sessions.put(v, &validSession{user: sess.User, csrf: sess.CSRF, token: t, ends: ends}, now)
	}
}

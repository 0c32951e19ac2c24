package tokens

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"time"
)

// NoticeCookie carries a one-shot notice to the next page: what happened on
// a request that answered with a redirect (a refresh, a session that ended,
// a logout). It holds a code from a fixed set and a time, sealed, so nobody
// can put text of their own on a page through it; no secret is in it.
const NoticeCookie = "cb_notice"

// noticeTTL bounds how long a notice waits: long enough for a login round
// trip through the provider.
const noticeTTL = 10 * time.Minute

// A NoticeCode says what happened. The set is fixed: TakeNotice drops any
// other code.
type NoticeCode string

// The notices.
const (
	NoticeRefreshed      NoticeCode = "refreshed"       // the previous request redeemed the refresh token
	NoticeAccessDropped  NoticeCode = "access-dropped"  // the previous request expired the access cookie
	NoticeEndedTampered  NoticeCode = "ended-tampered"  // a session cookie was changed, forged, missing or from another cookie
	NoticeEndedMismatch  NoticeCode = "ended-mismatch"  // the cookies named different users
	NoticeEndedExpired   NoticeCode = "ended-expired"   // the session reached its end
	NoticeEndedRefused   NoticeCode = "ended-refused"   // the provider refused the refresh token
	NoticeEndedStale     NoticeCode = "ended-stale"     // cookies from before this browser's logout came back
	NoticeEndedTooLarge  NoticeCode = "ended-too-large" // the refreshed tokens were too large to keep in cookies
	NoticeLoggedOut      NoticeCode = "logged-out"      // the user pressed Log out: this app's cookies are gone
	NoticeLoggedOutBoth  NoticeCode = "logged-out-both" // and the browser came back from the provider's logout
	NoticeLogoutProvider NoticeCode = "logout-provider" // the provider called GET /logout
)

var noticeCodes = []NoticeCode{NoticeRefreshed, NoticeAccessDropped, NoticeEndedTampered, NoticeEndedMismatch,
	NoticeEndedExpired, NoticeEndedRefused, NoticeEndedStale, NoticeEndedTooLarge, NoticeLoggedOut, NoticeLoggedOutBoth,
	NoticeLogoutProvider}

// A Notice is what the notice cookie said.
type Notice struct {
	Code NoticeCode `json:"c"`
	At   int64      `json:"at"` // when it was set, Unix seconds
	// State is the one-time state sent to the provider's end-session
	// endpoint with a NoticeLoggedOut: the provider hands it back only to
	// the browser it sent through its logout (see ConfirmLogout).
	State string `json:"st,omitempty"`
}

// Time returns when the notice was set.
func (n Notice) Time() time.Time { return time.Unix(n.At, 0) }

// Notify sets the one-shot notice cookie for the next page.
func (m *Manager) Notify(w http.ResponseWriter, code NoticeCode) {
	m.notify(w, Notice{Code: code, At: m.now().Unix()})
}

func (m *Manager) notify(w http.ResponseWriter, n Notice) {
	sealed, err := m.cookies.seal(NoticeCookie, n)
	if err != nil {
		m.log.Error("notice not set", "code", n.Code, "err", err)
		return
	}
	m.cookies.set(w, NoticeCookie, sealed, n.Time().Add(noticeTTL), m.now())
}

// TakeNotice returns the request's notice and expires its cookie on w, so
// that a reload does not show it again. A notice that is unreadable, too
// old or not in the fixed set is dropped.
func (m *Manager) TakeNotice(w http.ResponseWriter, r *http.Request) (Notice, bool) {
	if m.cookies.Get(r, NoticeCookie) == "" {
		return Notice{}, false
	}
	m.cookies.expire(w, NoticeCookie)
	return m.peekNotice(r)
}

// peekNotice opens the request's notice without taking it.
func (m *Manager) peekNotice(r *http.Request) (Notice, bool) {
	var n Notice
	if err := m.cookies.open(r, NoticeCookie, &n); err != nil || !slices.Contains(noticeCodes, n.Code) ||
		m.now().Sub(n.Time()) > noticeTTL {
		return Notice{}, false
	}
	return n, true
}

// endError is an ErrNoSession that knows which notice explains it.
type endError struct {
	why NoticeCode
	err error
}

func (e *endError) Error() string { return e.err.Error() }
func (e *endError) Unwrap() error { return e.err }

// ended marks err, which wraps ErrNoSession, with the reason a user is told.
func ended(why NoticeCode, err error) error { return &endError{why: why, err: err} }

// endedUnlessSaid is ended(why, err), unless err already says why.
func endedUnlessSaid(why NoticeCode, err error) error {
	if e := (*endError)(nil); errors.As(err, &e) {
		return err
	}
	return ended(why, err)
}

// EndReason returns the notice that explains why err ended a session:
// a cookie that failed its check unless the error says otherwise.
func EndReason(err error) NoticeCode {
	if e := (*endError)(nil); errors.As(err, &e) {
		return e.why
	}
	return NoticeEndedTampered
}

// Fingerprint names a secret without revealing it: the first 8 bytes of
// its SHA-256, in hex.
func Fingerprint(secret string) string {
	if secret == "" {
		return "(none)"
	}
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:8])
}

// Reveal returns the content of the sealed cookie base exactly as this
// request carried it, as indented JSON, for the session inspector. The
// refresh token in cb_refresh_token is replaced by its fingerprint.
func (c *CookieStore) Reveal(r *http.Request, base string) (string, error) {
	var v map[string]any
	if err := c.open(r, base, &v); err != nil {
		return "", err
	}
	if rt, ok := v["rt"].(string); ok && base == RefreshCookie {
		v["rt"] = "fingerprint " + Fingerprint(rt)
	}
	out, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return "", err
	}
	return string(out), nil
}

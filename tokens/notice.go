package tokens

import (
	"errors"
	"net/http"
	"slices"
	"time"

	"github.com/changebank/changebank/tokens/cookie"
)

// noticeTTL bounds how long a notice waits: long enough for a login round
// trip through the provider.
const noticeTTL = 10 * time.Minute

// A NoticeCode says what happened on a request that answered with a
// redirect (a refresh, a session that ended, a logout), for the next page
// to tell: Load and Refresh set the endings, EndAtProvider and
// ConfirmLogout the logouts, the app the others (Notify). It travels in a
// sealed one-shot cookie (cookie.Notice). The set is fixed: TakeNotice
// drops any other code.
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
func (s *Sessions) Notify(w http.ResponseWriter, code NoticeCode) {
	s.notify(w, Notice{Code: code, At: s.now().Unix()})
}

func (s *Sessions) notify(w http.ResponseWriter, n Notice) {
	sealed, err := s.cookies.Seal(cookie.Notice, n)
	if err != nil {
		s.log.Error("notice not set", "code", n.Code, "err", err)
		return
	}
	s.cookies.Set(w, cookie.Notice, sealed, n.Time().Add(noticeTTL), s.now())
}

// TakeNotice returns the request's notice and expires its cookie on w, so
// that a reload does not show it again. A notice that is unreadable, too
// old or not in the fixed set is dropped.
func (s *Sessions) TakeNotice(w http.ResponseWriter, r *http.Request) (Notice, bool) {
	if s.cookies.Get(r, cookie.Notice) == "" {
		return Notice{}, false
	}
	s.cookies.Expire(w, cookie.Notice)
	return s.peekNotice(r)
}

// peekNotice opens the request's notice without taking it.
func (s *Sessions) peekNotice(r *http.Request) (Notice, bool) {
	var n Notice
	if err := s.cookies.Open(r, cookie.Notice, &n); err != nil || !slices.Contains(noticeCodes, n.Code) ||
		s.now().Sub(n.Time()) > noticeTTL {
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

// endReason returns the notice that explains why err ended a session:
// a cookie that failed its check unless the error says otherwise.
func endReason(err error) NoticeCode {
	if e := (*endError)(nil); errors.As(err, &e) {
		return e.why
	}
	return NoticeEndedTampered
}

package routes

import (
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/changebank/changebank/tokens"
)

// noticeView is the notice a page shows once: what happened on the request
// before it, in words. The words are ours, chosen by a code from a fixed
// set; nothing in the cookie becomes text on the page.
type noticeView struct {
	Code  tokens.NoticeCode
	Text  string
	Ended bool // a session ended: the page also explains the two sessions
	SSO   bool // and the provider's SSO session logged the user straight back in
}

const noticeKey = "changebank.notice"

// endings says why a session ended, for each ending notice.
var endings = map[tokens.NoticeCode]string{
	tokens.NoticeEndedTampered: "a session cookie failed its check: it had been changed, forged, cut short, moved from another cookie, or was missing",
	tokens.NoticeEndedMismatch: "the access token and the profile cookie named different users",
	tokens.NoticeEndedExpired:  "it reached its end: the refresh token's lifetime was over, or no refresh token was left",
	tokens.NoticeEndedRefused:  "the identity provider refused to refresh it: the refresh token was revoked, expired or already used",
	tokens.NoticeEndedStale:    "cookies from before your last logout came back (a response still on its way at logout), and those are refused",
}

// notice takes the request's notice, once per request: the inspector
// takes it before listing this response's Set-Cookie lines, and the page
// it renders shows the same notice.
func (v *views) notice(c *gin.Context) *noticeView {
	if n, ok := c.Get(noticeKey); ok {
		return n.(*noticeView)
	}
	var nv *noticeView
	if n, ok := v.take(c); ok {
		nv = describeNotice(c, n)
	}
	c.Set(noticeKey, nv)
	return nv
}

// describeNotice words a notice for the page about to be shown, from what
// this request knows: whether it refreshed, and who is logged in since when.
func describeNotice(c *gin.Context, n tokens.Notice) *noticeView {
	var s *tokens.Session
	if v, ok := c.Get(sessionKey); ok {
		s = v.(*tokens.Session)
	}
	nv := &noticeView{Code: n.Code}
	switch n.Code {
	case tokens.NoticeRefreshed:
		nv.Text = "Your previous request (Refresh now) redeemed the refresh token and its response set new cookies; this page shows what your browser sent back."
		if s != nil && s.Refreshed {
			nv.Text += " This request refreshed again."
		} else {
			nv.Text += " This request did not need to refresh."
		}
	case tokens.NoticeAccessDropped:
		nv.Text = "Your previous request deleted the access cookie."
		if s != nil && s.Refreshed {
			nv.Text += " So this request arrived without an access token, and the app got a new one from the refresh token before answering: see the Set-Cookie lines below."
		}
	case tokens.NoticeLoggedOut:
		nv.Text = "You are logged out of ChangeBank and of FusionAuth. ChangeBank deleted its cookies and FusionAuth ended its single sign-on session, so the next login asks for your password."
	case tokens.NoticeLogoutProvider:
		nv.Text = "You were logged out: FusionAuth ended its single sign-on session (you logged out there, or in another app) and called ChangeBank's logout address, which deleted this app's cookies."
	default:
		why, ok := endings[n.Code]
		if !ok {
			return nil
		}
		nv.Ended = true
		var b strings.Builder
		b.WriteString("Your previous ChangeBank session ended because " + why + ".")
		switch {
		case s == nil:
			b.WriteString(" Log in to start a new one.")
		case authedBefore(s, n.Time()):
			nv.SSO = true
			b.WriteString(" The identity provider still had its own single sign-on session, so it logged you straight back in without asking for your password: this is a new ChangeBank session.")
		default:
			b.WriteString(" You have logged in again: this is a new session.")
		}
		nv.Text = b.String()
	}
	return nv
}

// authedBefore reports whether the session's login at the provider
// (auth_time) happened before t: the provider reused its SSO session.
func authedBefore(s *tokens.Session, t time.Time) bool {
	if s.Access == nil || s.Access.AuthTime == 0 {
		return false
	}
	return s.Access.AuthTime.Time().Before(t)
}

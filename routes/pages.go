package routes

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/changebank/changebank/routes/inspect"
	"github.com/changebank/changebank/tokens"
	"github.com/changebank/changebank/tokens/cookie"
)

// account greets the user.
func account(views *views) gin.HandlerFunc {
	return func(c *gin.Context) {
		s := sessionOf(c)
		views.render(c, http.StatusOK, "account", page{Title: "Your account", User: &s.User, CSRF: s.CSRF})
	}
}

// Limits the inspector measures the Cookie header against.
const (
	browserCookieLimit = cookie.MaxLine         // bytes a browser keeps per cookie, attributes included (RFC 6265 section 6.1); the app cuts larger values into chunks
	sessionLimit       = cookie.MaxSessionBytes // the app's hard limit on a session's cookies
	nginxHeaderBuffer  = 8192                   // nginx's default large_client_header_buffers size: a longer header line is refused
)

// sentCookie is one cookie the browser sent with this request.
type sentCookie struct {
	Name     string
	Size     int // bytes of name=value
	Owner    string
	Purpose  string
	Contents string // decoded on the server; never the raw value
	Missing  bool   // a session cookie the browser did not send
	Chunks   int    // for a session cookie cut into chunks: how many, this one the first
	Whole    int    // and the bytes of name=value of all of them together
	Session  bool   // one of the session's cookies or chunks
}

// setCookieLine is one Set-Cookie header of this response, value hidden.
type setCookieLine struct {
	Name    string
	Value   string // its size and fingerprint, never the value
	Deletes bool
	Attrs   []string // as written on the wire
}

type inspectorView struct {
	Sent          []sentCookie
	Unlisted      int // cookies sent but not listed (see maxListedCookies)
	Listed        int // the most listed: maxListedCookies
	UnlistedBytes int
	HeaderBytes   int // the Cookie header's value as received, separators included
	Largest       sentCookie
	HeaderLimit   int
	CookieLimit   int
	SessionBytes  int // name=value of the session's cookies and chunks
	SessionLimit  int
	SetCookies    []setCookieLine
	Secure        bool
	Refreshed     bool
	ExpiresAt     int64
	ExpiresIn     int64
	IssuedAt      time.Time
	AuthTime      time.Time
	AuthType      string
	AttackerPage  string
}

// inspector is GET /session: what the browser sent, decoded server-side,
// and what this response sets.
func inspector(ck *cookie.Store, clock func() time.Time, views *views, attacker string) gin.HandlerFunc {
	return func(c *gin.Context) {
		s := sessionOf(c)
		now := clock()
		views.notice(c) // its cookie's deletion is one of this response's Set-Cookie lines
		v := inspectorView{
			Secure: ck.Secure(), Refreshed: s.Refreshed, HeaderLimit: nginxHeaderBuffer, CookieLimit: browserCookieLimit, SessionLimit: sessionLimit,
			ExpiresAt: int64(s.Access.Expiry), ExpiresIn: max(0, int64(s.Access.Expiry.Time().Sub(now).Seconds())),
			IssuedAt: s.Access.IssuedAt.Time(), AuthTime: s.Access.AuthTime.Time(), AuthType: s.Access.AuthType,
			SetCookies: setCookieLines(c.Writer.Header().Values("Set-Cookie")),
		}
		sent := sentCookies(ck, c.Request)
		v.Sent, v.Unlisted, v.UnlistedBytes, v.Largest, v.SessionBytes = sent.Sent, sent.Unlisted, sent.UnlistedBytes, sent.Largest, sent.SessionBytes
		v.Listed = maxListedCookies
		if attacker != "" {
			v.AttackerPage = attacker + "/"
		}
		for i, h := range c.Request.Header.Values("Cookie") {
			if i > 0 {
				v.HeaderBytes += len("; ") // how a server joins several Cookie fields (HTTP/2)
			}
			v.HeaderBytes += len(h)
		}
		views.render(c, http.StatusOK, "session", page{Title: "Session inspector", User: &s.User, CSRF: s.CSRF, Data: v})
	}
}

// maxListedCookies bounds the inspector's list. A browser holds a few
// dozen cookies for one host; a request carrying thousands (a script can
// send them) gets the first ones listed and the others counted, so that no
// Cookie header makes the page cost much more than a normal one.
const maxListedCookies = 30

// sentList is what the inspector shows of the request's cookies.
type sentList struct {
	Sent          []sentCookie // the first maxListedCookies, in the order sent, then the session's missing ones
	Unlisted      int          // cookies sent beyond those listed
	UnlistedBytes int          // and their name=value bytes
	Largest       sentCookie
	SessionBytes  int // name=value of the session's cookies and chunks, listed or not
}

// sentCookies lists the request's cookies, in the order sent, with what
// each is; the session's own cookies are listed even when missing. It
// reads the Cookie header once, and each session cookie's chunks and
// contents once, however often its name comes.
func sentCookies(ck *cookie.Store, r *http.Request) sentList {
	var l sentList
	sessionNames := map[string]string{} // name on the wire -> base
	for _, base := range []string{cookie.Access, cookie.Refresh, cookie.UserInfo} {
		sessionNames[ck.Name(base)] = base
	}
	seen := map[string]bool{}   // names listed
	sent := map[string]bool{}   // session cookies' bases sent, listed or not
	chunked := map[string]int{} // base -> bytes of all its chunks
	heads := map[string][]int{} // base -> indexes in l.Sent of its listed heads
	loginPrefix := ck.Name(cookie.LoginPrefix)
	for name, value := range cookie.All(r) {
		size := len(name) + 1 + len(value)
		base, isSession := sessionNames[name]
		chunkBase, i, isChunk := ck.ChunkOf(name)
		if isChunk {
			chunked[chunkBase] += size
		}
		if isSession || isChunk {
			l.SessionBytes += size
		}
		if isSession {
			sent[base] = true
		}
		if size > l.Largest.Size {
			l.Largest = sentCookie{Name: name, Size: size}
		}
		if len(l.Sent) >= maxListedCookies {
			l.Unlisted++
			l.UnlistedBytes += size
			continue
		}
		sc := sentCookie{Name: name, Size: size, Owner: "ChangeBank", Session: isSession || isChunk}
		switch {
		case seen[name]:
			// The app, as net/http, reads the first cookie of a name.
			sc.Owner = "a repeat, ignored"
			sc.Purpose = "Sent again under a name already listed above: the app reads only the first cookie of a name, so this one is ignored."
		case isChunk:
			sc.Purpose = fmt.Sprintf("Chunk %d of %s: its value goes on here, cut because one cookie holds at most %d bytes. The app puts the chunks back together in order and checks the whole value before using it; a chunk missing or from another value fails that check.", i, ck.Name(chunkBase), browserCookieLimit)
		case isSession:
			if n := ck.Chunks(r, base); n > 1 {
				sc.Chunks = n
				heads[base] = append(heads[base], len(l.Sent))
			}
			switch base {
			case cookie.Access:
				sc.Purpose = "The access token, a JWT signed by the identity provider, as issued: signed, not sealed, so anyone holding it can read it. Its signature is verified with the provider's key the first time this server sees it; on every request its expiry is checked, and that key must still be the provider's. Bound to this session: cb_userinfo holds its SHA-256."
				sc.Contents = decodeJWT(ck.Get(r, cookie.Access))
			case cookie.Refresh:
				sc.Purpose = "The refresh token, sealed (AES-256-GCM under a key for this cookie alone), with the user it belongs to and its end. It gets new access tokens silently."
				sc.Contents = reveal(ck, r, cookie.Refresh)
			case cookie.UserInfo:
				sc.Purpose = "Your profile from the validated ID token, sealed, with this login's id and time and the session's end (exp). Pages read your name from here without calling the provider."
				sc.Contents = reveal(ck, r, cookie.UserInfo)
			}
		case name == ck.Name(cookie.LoggedOut):
			sc.Purpose = "When this browser last logged out. A session that began before it is refused, so a response still on its way at logout cannot bring the session back."
			if sec, err := strconv.ParseInt(value, 10, 64); err == nil {
				sc.Contents = time.Unix(sec, 0).UTC().Format("2006-01-02 15:04:05 UTC")
			}
		case name == ck.Name(cookie.Notice):
			sc.Purpose = "A one-shot notice from the previous request (a code from a fixed list, sealed, no secret). This response deletes it, so a reload does not repeat it."
		case strings.HasPrefix(name, loginPrefix):
			sc.Purpose = "A login transaction (state, nonce, PKCE verifier, return path), sealed, one per login started; deleted when that login completes, or after 10 minutes."
		case name == "fusionauth.sso":
			sc.Owner = "FusionAuth"
			sc.Purpose = "FusionAuth's single sign-on session: the second session, FusionAuth's own. It reaches ChangeBank because browsers do not keep cookies apart by port on one host; the app never reads it, but it counts against the header size."
		case strings.HasPrefix(name, "fusionauth.") || name == "access_token" || name == "refresh_token" || strings.HasPrefix(name, "app."):
			sc.Owner = "FusionAuth"
			sc.Purpose = "One of FusionAuth's own cookies. It reaches ChangeBank because browsers do not keep cookies apart by port on one host; the app never reads it, but it counts against the header size."
		default:
			sc.Owner = "another app"
			sc.Purpose = "Not ChangeBank's: set by something else on this host. It still rides along with every request here."
		}
		seen[name] = true
		l.Sent = append(l.Sent, sc)
	}
	for base, at := range heads {
		for _, j := range at {
			l.Sent[j].Whole = l.Sent[j].Size + chunked[base]
		}
	}
	for _, base := range []string{cookie.Access, cookie.Refresh, cookie.UserInfo} {
		if name := ck.Name(base); !sent[base] {
			l.Sent = append(l.Sent, sentCookie{Name: name, Owner: "ChangeBank", Missing: true,
				Purpose: "Not sent with this request. If this response sets it again, it is in the Set-Cookie lines below."})
		}
	}
	return l
}

// reveal is a sealed session cookie's content as the inspector shows it.
func reveal(ck *cookie.Store, r *http.Request, base string) string {
	text, err := inspect.Reveal(ck, r, base)
	if err != nil {
		return "(cannot be opened: changed, cut short, or sealed for another cookie or under a retired secret)"
	}
	return text
}

// setCookieLines shows each Set-Cookie header attribute by attribute, the
// value replaced by its size and fingerprint.
func setCookieLines(headers []string) []setCookieLine {
	var out []setCookieLine
	for _, h := range headers {
		parts := strings.Split(h, ";")
		name, value, _ := strings.Cut(strings.TrimSpace(parts[0]), "=")
		line := setCookieLine{Name: name}
		if value == "" {
			line.Value = "empty"
		} else {
			line.Value = fmt.Sprintf("%d bytes, fingerprint %s", len(value), inspect.Fingerprint(value))
		}
		for _, a := range parts[1:] {
			a = strings.TrimSpace(a)
			line.Attrs = append(line.Attrs, a)
			if k, val, _ := strings.Cut(a, "="); strings.EqualFold(k, "Max-Age") && (val == "0" || strings.HasPrefix(val, "-")) {
				line.Deletes = true
			}
		}
		out = append(out, line)
	}
	return out
}

// decodeJWT pretty-prints a JWT's header and claims (not its signature).
func decodeJWT(raw string) string {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return "(not a JWT)"
	}
	var out strings.Builder
	for i, label := range []string{"header", "claims"} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		var pretty bytes.Buffer
		if err != nil || json.Indent(&pretty, b, "", "  ") != nil {
			return "(undecodable)"
		}
		out.WriteString(label + ": " + pretty.String() + "\n")
	}
	return out.String()
}

// expireAccess drops the access cookie: the next request refreshes silently.
func expireAccess(sessions *tokens.Sessions) gin.HandlerFunc {
	return func(c *gin.Context) {
		sessions.ExpireAccess(c.Writer, c.Request)
		sessions.Notify(c.Writer, tokens.NoticeAccessDropped)
		c.Redirect(http.StatusSeeOther, "/session")
	}
}

// refreshNow redeems the refresh token at once.
func refreshNow(log *slog.Logger, sessions *tokens.Sessions, views *views) gin.HandlerFunc {
	return func(c *gin.Context) {
		err := sessions.Refresh(c.Request.Context(), c.Writer, sessionOf(c))
		switch {
		case err == nil:
			sessions.Notify(c.Writer, tokens.NoticeRefreshed)
			c.Redirect(http.StatusSeeOther, "/session")
		case errors.Is(err, tokens.ErrProviderUnavailable):
			log.Warn("refresh now: provider unavailable", "err", err)
			views.failRetry(c, http.StatusServiceUnavailable, "The identity provider is unreachable right now. You are still logged in: try again in a moment.", "/session")
		default:
			log.Info("refresh now: session ended", "err", err) // Refresh has set the notice that says why
			c.Redirect(http.StatusSeeOther, "/login?return_to=/session")
		}
	}
}

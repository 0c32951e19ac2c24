package tokens

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// The cookies' base names, as FusionAuth's quickstarts name them. The cb_
// prefix keeps them apart from FusionAuth's own cookies (access_token,
// refresh_token, fusionauth.*), which on localhost reach this app too:
// cookies are not isolated by port.
const (
	AccessCookie   = "cb_access_token" // the access token (a signed JWT) as issued
	RefreshCookie  = "cb_refresh_token"
	UserInfoCookie = "cb_userinfo"
	LogoutCookie   = "cb_logged_out" // when this browser last logged out
	// IDTokenCookie holds the latest ID token, sealed, for logout's
	// id_token_hint. Its Path is /logout, so it rides on logout requests
	// only and costs the others nothing.
	IDTokenCookie = "cb_id_token"
	loginPrefix   = "cb_login_" // + an id derived from the state: one per login transaction
)

// A CookieStore reads and writes this app's cookies, sealing those that hold
// secrets with its Sealer. Every cookie is HttpOnly
// (no script can read a token, so XSS cannot steal one), SameSite=Lax (sent
// on top-level navigations such as the provider's redirect back to
// /callback, not on cross-site POSTs), Path=/ and without Domain (host-only).
// Over https they are also Secure and carry the __Host- prefix, which makes
// the browser refuse any version of them set without Secure, with a Domain,
// or for another path. The one cookie with another path, cb_id_token
// (Path=/logout), carries __Secure- instead: __Host- requires Path=/.
type CookieStore struct {
	secure bool
	sealer *Sealer
}

// NewCookieStore returns the cookie store for an app served at appURL,
// sealing with sealer.
func NewCookieStore(appURL string, sealer *Sealer) *CookieStore {
	return &CookieStore{secure: strings.HasPrefix(appURL, "https://"), sealer: sealer}
}

// Secure reports whether cookies carry the Secure attribute and the __Host- prefix.
func (c *CookieStore) Secure() bool { return c.secure }

// cookiePaths are the cookies whose Path is not /.
var cookiePaths = map[string]string{IDTokenCookie: "/logout"}

// pathOf returns the Path a cookie is set with.
func pathOf(base string) string {
	if p, ok := cookiePaths[base]; ok {
		return p
	}
	return "/"
}

// Name returns the name a cookie has on the wire.
func (c *CookieStore) Name(base string) string {
	switch {
	case !c.secure:
		return base
	case pathOf(base) != "/":
		return "__Secure-" + base
	default:
		return "__Host-" + base
	}
}

// Get returns the named cookie's value, reassembled from its chunks when
// it has some (see chunks.go), or "" when the request has none.
func (c *CookieStore) Get(r *http.Request, base string) string {
	if !headerMentions(r, c.Name(base)) {
		// Most requests carry no notice: one fast scan says so, where
		// parsing the whole header would take several times as long.
		return ""
	}
	var v string
	readCookies(r, []string{c.Name(base)}, []*string{&v}, true)
	return c.assemble(r, base, v)
}

// headerMentions reports whether name appears anywhere in the request's
// Cookie header: when it does not, the request has no such cookie.
func headerMentions(r *http.Request, name string) bool {
	for _, line := range r.Header["Cookie"] {
		if strings.Contains(line, name) {
			return true
		}
	}
	return false
}

// sessionValues are the values of the session cookies a request carries,
// reassembled from their chunks.
type sessionValues struct {
	access, refresh, userInfo, loggedOut string
	// carried is how many chunks each chunked cookie came in; nil when
	// none was chunked, as in almost every session.
	carried map[string]int
}

// sessionValues reads the session cookies in one pass over the Cookie
// header, where one r.Cookie call per cookie would parse it once each.
// Only a chunked cookie costs a second pass.
func (c *CookieStore) sessionValues(r *http.Request) sessionValues {
	return c.readSession(r, true)
}

// uncheckedSessionValues is sessionValues without checking the bytes of the
// values, which on a 2 KB header costs more than the rest of a session
// cache hit. Only the session cache's lookup uses it: a value found there is
// the very value a checked read gave when it was cached, so it holds no byte
// a cookie value cannot (and a read that takes the first cookie of a name,
// checked or not, finds the same cookie). Anything else reads them checked.
func (c *CookieStore) uncheckedSessionValues(r *http.Request) sessionValues {
	return c.readSession(r, false)
}

func (c *CookieStore) readSession(r *http.Request, check bool) sessionValues {
	var v sessionValues
	readCookies(r,
		[]string{c.Name(AccessCookie), c.Name(RefreshCookie), c.Name(UserInfoCookie), c.Name(LogoutCookie)},
		[]*string{&v.access, &v.refresh, &v.userInfo, &v.loggedOut}, check)
	if chunkCount(v.access)|chunkCount(v.refresh)|chunkCount(v.userInfo) == 0 {
		return v
	}
	v.carried = map[string]int{}
	v.access = c.assembleCounting(r, v.carried, AccessCookie, v.access)
	v.refresh = c.assembleCounting(r, v.carried, RefreshCookie, v.refresh)
	v.userInfo = c.assembleCounting(r, v.carried, UserInfoCookie, v.userInfo)
	return v
}

// assembleCounting is assemble, noting in carried the chunks a head announced.
// (Not a loop over pointers to v's fields: those would move v to the heap
// on every request, chunked or not.)
func (c *CookieStore) assembleCounting(r *http.Request, carried map[string]int, base, head string) string {
	if n := chunkCount(head); n > 0 {
		carried[base] = n
		return c.assemble(r, base, head)
	}
	return head
}

// readCookies sets *into[i] to the value of the cookie names[i], reading the
// Cookie header once and allocating nothing. Like r.Cookie, it takes the
// first cookie of a name and drops a pair of surrounding quotes; with check,
// also like r.Cookie, it ignores a value with bytes no cookie value holds.
func readCookies(r *http.Request, names []string, into []*string, check bool) {
	found := uint(0) // bit i: names[i] found
	for _, line := range r.Header["Cookie"] {
		for line != "" {
			var part string
			part, line, _ = strings.Cut(line, ";")
			name, value, ok := strings.Cut(trimASCII(part), "=")
			if !ok {
				continue
			}
			name = trimASCII(name)
			for i, n := range names {
				if found&(1<<i) != 0 || name != n {
					continue
				}
				if !check {
					*into[i], found = unquote(value), found|1<<i
				} else if value, ok = cookieValue(value); ok {
					*into[i], found = value, found|1<<i
				}
			}
		}
	}
}

// cookieOctet tells the bytes a cookie value may hold: printable ASCII but
// the double quote, semicolon and backslash. A table, because the access
// token alone is a kilobyte checked on every request.
var cookieOctet = func() (t [256]bool) {
	for b := 0x20; b < 0x7f; b++ {
		t[b] = b != '"' && b != ';' && b != '\\'
	}
	return t
}()

// trimASCII trims the ASCII white space net/http trims from cookie parts.
// By hand: strings.Trim builds its set of bytes on every call, which on a
// session's Cookie header cost more than the rest of reading it.
func trimASCII(s string) string {
	for len(s) > 0 && isCookieSpace(s[0]) {
		s = s[1:]
	}
	for len(s) > 0 && isCookieSpace(s[len(s)-1]) {
		s = s[:len(s)-1]
	}
	return s
}

func isCookieSpace(b byte) bool { return b == ' ' || b == '\t' || b == '\r' || b == '\n' }

// cookieValue checks a raw cookie value as net/http's reader does (RFC
// 6265's cookie-octet, plus space and comma), dropping surrounding quotes.
func cookieValue(raw string) (string, bool) {
	raw = unquote(raw)
	if !validCookieBytes(raw) {
		return "", false
	}
	return raw, true
}

// unquote drops a pair of surrounding double quotes.
func unquote(raw string) string {
	if len(raw) > 1 && raw[0] == '"' && raw[len(raw)-1] == '"' {
		return raw[1 : len(raw)-1]
	}
	return raw
}

// validCookieBytes reports whether every byte of v may be in a cookie value.
func validCookieBytes(v string) bool {
	for i := 0; i < len(v); i++ {
		if !cookieOctet[v[i]] {
			return false
		}
	}
	return true
}

// set adds a Set-Cookie header that stores value until expires.
func (c *CookieStore) set(w http.ResponseWriter, base, value string, expires time.Time, now time.Time) {
	maxAge := int(expires.Sub(now).Seconds())
	if maxAge <= 0 {
		c.expire(w, base)
		return
	}
	ck := c.cookie(base, value, maxAge)
	ck.Expires = now.Add(time.Duration(maxAge) * time.Second)
	http.SetCookie(w, ck)
}

// expire adds a Set-Cookie header that deletes the cookie. The attributes
// match those it was set with: a browser only replaces a cookie whose name,
// path and domain match, and refuses a __Host- cookie without Secure.
func (c *CookieStore) expire(w http.ResponseWriter, base string) {
	ck := c.cookie(base, "", -1)
	ck.Expires = time.Unix(0, 0)
	http.SetCookie(w, ck)
}

func (c *CookieStore) cookie(base, value string, maxAge int) *http.Cookie {
	return &http.Cookie{
		Name:     c.Name(base),
		Value:    value,
		Path:     pathOf(base),
		MaxAge:   maxAge,
		HttpOnly: true,
		Secure:   c.secure,
		SameSite: http.SameSiteLaxMode,
	}
}

// open reads the sealed cookie base and decodes its JSON content into v.
func (c *CookieStore) open(r *http.Request, base string, v any) error {
	raw := c.Get(r, base)
	if raw == "" {
		return http.ErrNoCookie
	}
	return c.openValue(base, raw, v)
}

// openValue opens a sealed value of cookie base into v.
func (c *CookieStore) openValue(base, raw string, v any) error {
	plain, err := c.sealer.Open(base, raw)
	if err != nil {
		return err
	}
	return json.Unmarshal(plain, v)
}

// seal encodes v as JSON and seals it for cookie base. The JSON is never
// put in a page, so & < > stay one byte each, not json.Marshal's six: a
// return path full of & would otherwise outgrow its cookie.
func (c *CookieStore) seal(base string, v any) (string, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return "", fmt.Errorf("tokens: encoding %s: %w", base, err)
	}
	return c.sealer.Seal(base, bytes.TrimSuffix(buf.Bytes(), []byte("\n")))
}

// Package cookie keeps values in browser cookies the way a session needs
// them: sealed (AEAD under a key derived from the app secret and the
// cookie's own name, with secret rotation), cut into chunks when a value
// outgrows what a browser keeps of one cookie, and always HttpOnly,
// SameSite=Lax, Path=/ and host-only, with Secure and the __Host- prefix
// over https. It also names the cookies of a session.
//
// Package tokens builds its sessions on it; an application needs it only
// to look at the cookies themselves (the session inspector does).
//
//   - seal.go: the Sealer: compact JWE (dir, A256GCM) under per-cookie keys, and its strict reader.
//   - cookie.go: the Store: names, attributes, reading the Cookie header, sealed JSON values.
//   - chunks.go: values cut into numbered chunks, and the size limits.
package cookie

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
	Access    = "cb_access_token"  // the access token as issued
	Refresh   = "cb_refresh_token" // sealed: the refresh token, its user and its end
	UserInfo  = "cb_userinfo"      // sealed: the user's profile and the session's bounds
	LoggedOut = "cb_logged_out"    // when this browser last logged out
	// IDToken holds the latest ID token, sealed, for logout's
	// id_token_hint. Its Path is /logout, so it rides on logout requests
	// only and costs the others nothing.
	IDToken = "cb_id_token"
	// Notice carries a one-shot notice to the next page: a code from a
	// fixed set and a time, sealed, so nobody can put text of their own on
	// a page through it; no secret is in it.
	Notice      = "cb_notice"
	LoginPrefix = "cb_login_" // + an id derived from the state: one per login transaction
)

// A Store reads and writes this app's cookies, sealing those that hold
// secrets with its Sealer. Every cookie is HttpOnly
// (no script can read a token, so XSS cannot steal one), SameSite=Lax (sent
// on top-level navigations such as the provider's redirect back to
// /callback, not on cross-site POSTs), Path=/ and without Domain (host-only).
// Over https they are also Secure and carry the __Host- prefix, which makes
// the browser refuse any version of them set without Secure, with a Domain,
// or for another path. The one cookie with another path, cb_id_token
// (Path=/logout), carries __Secure- instead: __Host- requires Path=/.
type Store struct {
	secure bool
	sealer *Sealer
}

// NewStore returns the cookie store for an app served at appURL,
// sealing with sealer.
func NewStore(appURL string, sealer *Sealer) *Store {
	return &Store{secure: strings.HasPrefix(appURL, "https://"), sealer: sealer}
}

// Secure reports whether cookies carry the Secure attribute and the __Host- prefix.
func (c *Store) Secure() bool { return c.secure }

// cookiePaths are the cookies whose Path is not /.
var cookiePaths = map[string]string{IDToken: "/logout"}

// pathOf returns the Path a cookie is set with.
func pathOf(base string) string {
	if p, ok := cookiePaths[base]; ok {
		return p
	}
	return "/"
}

// Name returns the name cookie base has on the wire.
func (c *Store) Name(base string) string {
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
func (c *Store) Get(r *http.Request, base string) string {
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

// Values are the values of the session cookies a request carries,
// reassembled from their chunks.
type Values struct {
	Access, Refresh, UserInfo, LoggedOut string
	// Carried is how many chunks each chunked cookie came in; nil when
	// none was chunked, as in almost every session.
	Carried map[string]int
}

// Session reads the session cookies in one pass over the Cookie header,
// where one r.Cookie call per cookie would parse it once each. Only a
// chunked cookie costs a second pass.
func (c *Store) Session(r *http.Request) Values {
	return c.readSession(r, true)
}

// SessionUnchecked is Session without checking the bytes of the values,
// which on a 2 KB header costs more than the rest of a session cache hit.
// Only a cache lookup may use it (package tokens' session cache does): a value found there is
// the very value a checked read gave when it was cached, so it holds no byte
// a cookie value cannot (and a read that takes the first cookie of a name,
// checked or not, finds the same cookie). Anything else reads them checked.
func (c *Store) SessionUnchecked(r *http.Request) Values {
	return c.readSession(r, false)
}

func (c *Store) readSession(r *http.Request, check bool) Values {
	var v Values
	readCookies(r,
		[]string{c.Name(Access), c.Name(Refresh), c.Name(UserInfo), c.Name(LoggedOut)},
		[]*string{&v.Access, &v.Refresh, &v.UserInfo, &v.LoggedOut}, check)
	if chunkCount(v.Access)|chunkCount(v.Refresh)|chunkCount(v.UserInfo) == 0 {
		return v
	}
	v.Carried = map[string]int{}
	v.Access = c.assembleCounting(r, v.Carried, Access, v.Access)
	v.Refresh = c.assembleCounting(r, v.Carried, Refresh, v.Refresh)
	v.UserInfo = c.assembleCounting(r, v.Carried, UserInfo, v.UserInfo)
	return v
}

// assembleCounting is assemble, noting in carried the chunks a head announced.
// (Not a loop over pointers to v's fields: those would move v to the heap
// on every request, chunked or not.)
func (c *Store) assembleCounting(r *http.Request, carried map[string]int, base, head string) string {
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
	if !ValidValue(raw) {
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

// ValidValue reports whether every byte of v may be in a cookie value.
func ValidValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if !cookieOctet[v[i]] {
			return false
		}
	}
	return true
}

// Set adds a Set-Cookie header that stores value until expires.
func (c *Store) Set(w http.ResponseWriter, base, value string, expires time.Time, now time.Time) {
	maxAge := int(expires.Sub(now).Seconds())
	if maxAge <= 0 {
		c.Expire(w, base)
		return
	}
	ck := c.cookie(base, value, maxAge)
	ck.Expires = now.Add(time.Duration(maxAge) * time.Second)
	http.SetCookie(w, ck)
}

// Expire adds a Set-Cookie header that deletes the cookie. The attributes
// match those it was set with: a browser only replaces a cookie whose name,
// path and domain match, and refuses a __Host- cookie without Secure.
func (c *Store) Expire(w http.ResponseWriter, base string) {
	ck := c.cookie(base, "", -1)
	ck.Expires = time.Unix(0, 0)
	http.SetCookie(w, ck)
}

func (c *Store) cookie(base, value string, maxAge int) *http.Cookie {
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

// Open reads the sealed cookie base and decodes its JSON content into v:
// http.ErrNoCookie when r has none, ErrUnsealable when it does not open.
func (c *Store) Open(r *http.Request, base string, v any) error {
	raw := c.Get(r, base)
	if raw == "" {
		return http.ErrNoCookie
	}
	return c.OpenValue(base, raw, v)
}

// OpenValue opens a sealed value of cookie base into v.
func (c *Store) OpenValue(base, raw string, v any) error {
	plain, err := c.sealer.Open(base, raw)
	if err != nil {
		return err
	}
	return json.Unmarshal(plain, v)
}

// Seal encodes v as JSON and seals it for cookie base. The JSON is never
// put in a page, so & < > stay one byte each, not json.Marshal's six: a
// return path full of & would otherwise outgrow its cookie.
func (c *Store) Seal(base string, v any) (string, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return "", fmt.Errorf("cookie: encoding %s: %w", base, err)
	}
	return c.sealer.Seal(base, bytes.TrimSuffix(buf.Bytes(), []byte("\n")))
}

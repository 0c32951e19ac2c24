package cookie

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Chunked cookies. A browser keeps at most 4,096 bytes per cookie and drops
// a larger one without a word, so a value whose Set-Cookie line would be
// longer is cut into numbered chunks, each its own cookie:
//
//	cb_access_token    = "3~" + part 0   (the head: the chunk count, then the first part)
//	cb_access_token.1  = part 1
//	cb_access_token.2  = part 2
//
// (with the __Host- prefix over https, and every attribute of the base
// cookie on each chunk). A value that fits in one cookie is stored as is,
// under its name, exactly as before chunking existed: the head's "n~" can
// never start a JWT or a sealed value (base64url and dots only), so one
// byte tells the two apart and a normal session pays nothing more.
//
// The reassembled value is checked like any other (the access token's
// signature, the AEAD of a sealed one), so a missing, extra, reordered or
// mixed chunk yields a value that fails its check: a broken session,
// never a partial one.

// MaxLine bounds each Set-Cookie line a Store writes, name, value and
// attributes together: RFC 6265 section 6.1 asks browsers to keep at least
// 4,096 bytes per cookie, measured that way, and that is what they keep. A
// longer value is cut into chunks.
const MaxLine = 4096

// maxChunks bounds the chunks of one cookie: one digit in the head.
// MaxSessionBytes is reached well before.
const maxChunks = 9

// chunkSep ends a head's count: never in a JWT or a sealed value.
const chunkSep = '~'

// MaxSessionBytes is the hard limit on a session's cookies as the browser
// sends them back (name=value of every session cookie and chunk). Every
// cookie rides on every request: Go's http.Server here allows 64 KB of
// request headers (main.go), the compose balancer as much (deploy/nginx.conf),
// and nginx's default is 8 KB per header line; 24 KB leaves room for the
// login transactions, FusionAuth's own cookies on localhost and the other
// headers. Package tokens refuses a larger session (ErrSessionTooLarge).
const MaxSessionBytes = 24 << 10

// chunkName is the name of chunk i (i ≥ 1) of cookie base. Chunk 0 is the
// head, under base itself.
func chunkName(base string, i int) string {
	return base + "." + strconv.Itoa(i)
}

// chunkCount returns the count a chunked head announces, or 0 when raw is
// not a head (a whole value).
func chunkCount(raw string) int {
	if len(raw) < 2 || raw[1] != chunkSep || raw[0] < '2' || raw[0] > '0'+maxChunks {
		return 0
	}
	return int(raw[0] - '0')
}

// assemble returns the whole value of cookie base whose head the request
// carried, reading the other chunks from r. A value that is not a head is
// returned as is. When a chunk is missing or unreadable, it returns the
// head itself, which no check accepts: the session is broken, as if the
// cookie had been tampered with.
func (c *Store) assemble(r *http.Request, base, head string) string {
	n := chunkCount(head)
	if n == 0 {
		return head
	}
	names := make([]string, n-1)
	parts := make([]string, n-1)
	into := make([]*string, n-1)
	for i := range names {
		names[i], into[i] = c.Name(chunkName(base, i+1)), &parts[i]
	}
	readCookies(r, names, into, true)
	size := len(head) - 2
	for _, p := range parts {
		if p == "" {
			return head
		}
		size += len(p)
	}
	var b strings.Builder
	b.Grow(size)
	b.WriteString(head[2:])
	for _, p := range parts {
		b.WriteString(p)
	}
	return b.String()
}

// A Prepared is one cookie value about to be written, cut into the
// Set-Cookie lines that hold it.
type Prepared struct {
	Base  string         // the cookie's base name
	lines []*http.Cookie // the head first, then chunks 1..n-1
}

// Chunks returns how many cookies hold the value: 1 when it fits in one,
// 0 when there is nothing to keep (Write then expires the cookie).
func (cw Prepared) Chunks() int { return len(cw.lines) }

// Size is what the browser will send back for it: name=value of each chunk.
func (cw Prepared) Size() int {
	n := 0
	for i, ck := range cw.lines {
		if i > 0 {
			n += len("; ")
		}
		n += len(ck.Name) + 1 + len(ck.Value)
	}
	return n
}

// Prepare cuts value into the cookies that store it until expires, each
// Set-Cookie line within MaxLine. It fails when more than
// maxChunks would be needed.
func (c *Store) Prepare(base, value string, expires, now time.Time) (Prepared, error) {
	maxAge := int(expires.Sub(now).Seconds())
	cw := Prepared{Base: base}
	if maxAge <= 0 {
		return cw, nil // nothing to keep: write expires it
	}
	whole := c.cookie(base, value, maxAge)
	whole.Expires = now.Add(time.Duration(maxAge) * time.Second)
	if len(whole.String()) <= MaxLine {
		cw.lines = []*http.Cookie{whole}
		return cw, nil
	}
	rest := value
	for i := 0; rest != ""; i++ {
		if i == maxChunks {
			return Prepared{}, fmt.Errorf("cookie: %s of %d bytes needs more than %d cookies of %d bytes", base, len(value), maxChunks, MaxLine)
		}
		name := base
		if i > 0 {
			name = chunkName(base, i)
		}
		ck := c.cookie(name, "", maxAge)
		ck.Expires = whole.Expires
		room := MaxLine - len(ck.String())
		if i == 0 {
			room -= 2 // "n~", filled in below
		}
		part := rest[:min(room, len(rest))]
		rest = rest[len(part):]
		ck.Value = part
		cw.lines = append(cw.lines, ck)
	}
	cw.lines[0].Value = strconv.Itoa(len(cw.lines)) + string(chunkSep) + cw.lines[0].Value
	return cw, nil
}

// Write adds the Set-Cookie lines of cw, and expires the chunks beyond its
// count that the request carried (carried is the count it had: 0 or 1 for
// an unchunked cookie), so no stale chunk lingers after a value shrinks.
func (c *Store) Write(w http.ResponseWriter, cw Prepared, carried int) {
	if len(cw.lines) == 0 {
		c.ExpireChunked(w, cw.Base, carried)
		return
	}
	for _, ck := range cw.lines {
		http.SetCookie(w, ck)
	}
	for i := max(len(cw.lines), 1); i < carried; i++ {
		c.Expire(w, chunkName(cw.Base, i))
	}
}

// ExpireChunked expires cookie base and the chunks 1..carried-1 the
// request carried.
func (c *Store) ExpireChunked(w http.ResponseWriter, base string, carried int) {
	c.Expire(w, base)
	for i := 1; i < carried; i++ {
		c.Expire(w, chunkName(base, i))
	}
}

// Chunks returns how many cookies the value of cookie base came in on r:
// 0 when r has none, 1 when it is whole, n for a head announcing n chunks.
func (c *Store) Chunks(r *http.Request, base string) int {
	var head string
	readCookies(r, []string{c.Name(base)}, []*string{&head}, true)
	if head == "" {
		return 0
	}
	return max(chunkCount(head), 1)
}

// ChunkOf reports whether name, as on the wire, is chunk i (i ≥ 1) of the
// cookie base.
func (c *Store) ChunkOf(name string) (base string, i int, ok bool) {
	rest, digits, found := strings.Cut(name, ".")
	if !found || len(digits) != 1 || digits[0] < '1' || digits[0] >= '0'+maxChunks {
		return "", 0, false
	}
	prefix := c.Name("")
	if !strings.HasPrefix(rest, prefix) {
		return "", 0, false
	}
	return strings.TrimPrefix(rest, prefix), int(digits[0] - '0'), true
}

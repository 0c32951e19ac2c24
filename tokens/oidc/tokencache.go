package oidc

import (
	"crypto/sha256"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/changebank/changebank/internal/bounded"
)

// maxCachedEntries bounds each of the caches below. A session's entries
// stay in them for its life; a flood of distinct values (each one genuine,
// or it is never cached) only evicts, it cannot grow memory.
const maxCachedEntries = 10000

// Verified is what verifying an access token established, remembered while
// the token lives: its claims, its typ, the key (and algorithm) the
// signature was checked with, and its binding to a session. A Verifier
// serves it again only while the key set still holds that very key, and
// checks the time claims and the kind rules again on every use (Recheck): a
// JWKS refresh that drops or replaces the key turns its tokens back into
// misses, which a full verification then refuses.
type Verified struct {
	claims Claims
	typ    string
	kid    string                 // "" when the token had none (see keyFor)
	alg    jwa.SignatureAlgorithm // what the key checked, to find it again when the token has no kid
	key    jwk.Key
	bind   binding
}

// boundedCache maps the SHA-256 of a value (memory never holds a usable
// token or cookie value) to what checking it established, until exp (Unix
// seconds). It holds at most maxCachedEntries; when full, the expired go
// first, then arbitrary ones (see bounded.Evict).
type boundedCache[V any] struct {
	m *bounded.Map[[sha256.Size]byte, cached[V]]
}

type cached[V any] struct {
	v   V
	exp int64
}

func newBoundedCache[V any]() *boundedCache[V] {
	return &boundedCache[V]{m: bounded.New[[sha256.Size]byte, cached[V]](maxCachedEntries, bounded.Evict)}
}

func (c *boundedCache[V]) get(sum [sha256.Size]byte) (V, bool) {
	e, ok := c.m.Get(sum)
	return e.v, ok
}

// put remembers v until exp.
func (c *boundedCache[V]) put(sum [sha256.Size]byte, v V, exp, nowUnix int64) {
	c.m.Put(sum, cached[V]{v: v, exp: exp}, func(old cached[V]) bool { return old.exp < nowUnix })
}

func (c *boundedCache[V]) drop(sum [sha256.Size]byte) { c.m.Delete(sum) }

func (c *boundedCache[V]) len() int { return c.m.Len() }

// CacheLen returns how many verified tokens the cache holds, and its bound.
func (v *Verifier) CacheLen() (entries, bound int) { return v.cache.m.Len(), v.cache.m.Cap() }

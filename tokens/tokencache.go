package tokens

import (
	"crypto/sha256"
	"sync"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
)

// maxCachedEntries bounds each of the caches below. A session's entries
// stay in them for its life; a flood of distinct values (each one genuine,
// or it is never cached) only evicts, it cannot grow memory.
const maxCachedEntries = 10000

// verifiedToken is what the verified-token cache remembers of an access
// token whose signature and claims passed every check: its claims, its
// typ, and the key the signature was checked with. Verifier.AccessToken
// serves a hit only while the key set still holds that very key, and checks
// the time claims and the kind rules again on every hit: a JWKS refresh that
// drops or replaces the key turns its tokens back into misses, which a full
// verification then refuses.
type verifiedToken struct {
	claims Claims
	typ    string
	kid    string
	alg    jwa.SignatureAlgorithm // what the key checked, to find it again when the token has no kid
	key    jwk.Key
}

// boundedCache maps the SHA-256 of a value (memory never holds a usable
// token or cookie value) to what checking it established, until exp (Unix
// seconds). It holds at most maxCachedEntries.
type boundedCache[V any] struct {
	mu      sync.RWMutex
	entries map[[sha256.Size]byte]cached[V]
}

type cached[V any] struct {
	v   V
	exp int64
}

func newBoundedCache[V any]() *boundedCache[V] {
	return &boundedCache[V]{entries: make(map[[sha256.Size]byte]cached[V])}
}

func (c *boundedCache[V]) get(sum [sha256.Size]byte) (V, bool) {
	c.mu.RLock()
	e, ok := c.entries[sum]
	c.mu.RUnlock()
	return e.v, ok
}

// put remembers v until exp. When the cache is full it first drops the
// expired entries and, if that frees too little, a quarter of the others
// (Go's map order is random, so which ones cannot be steered).
func (c *boundedCache[V]) put(sum [sha256.Size]byte, v V, exp, nowUnix int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= maxCachedEntries {
		for k, old := range c.entries {
			if old.exp < nowUnix {
				delete(c.entries, k)
			}
		}
		for k := range c.entries {
			if len(c.entries) < maxCachedEntries*3/4 {
				break
			}
			delete(c.entries, k)
		}
	}
	c.entries[sum] = cached[V]{v: v, exp: exp}
}

func (c *boundedCache[V]) drop(sum [sha256.Size]byte) {
	c.mu.Lock()
	delete(c.entries, sum)
	c.mu.Unlock()
}

func (c *boundedCache[V]) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.entries)
}

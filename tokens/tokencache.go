package tokens

import (
	"crypto/sha256"
	"sync"

	"github.com/lestrrat-go/jwx/v3/jwk"
)

// maxVerifiedTokens bounds the verified-token cache. A session's token
// stays in it for its life; a flood of distinct tokens (each one genuine,
// or it is never cached) only evicts, it cannot grow memory.
const maxVerifiedTokens = 10000

// verifiedCache remembers the access tokens whose signature and claims have
// passed every check, keyed by their SHA-256 (memory never holds a usable
// token), so that a token seen before costs a hash and a map lookup rather
// than an RSA verification. A hit still has its time claims and kind rules
// checked again, and counts only while the provider's key set still holds
// the very key the signature was checked with: a JWKS refresh that drops or
// replaces that key turns every token it signed back into a miss, which a
// full verification then refuses.
type verifiedCache struct {
	mu      sync.RWMutex
	entries map[[sha256.Size]byte]verifiedToken
}

type verifiedToken struct {
	claims Claims
	typ    string
	kid    string
	key    jwk.Key // the key the signature was verified with
}

func newVerifiedCache() *verifiedCache {
	return &verifiedCache{entries: make(map[[sha256.Size]byte]verifiedToken)}
}

func (c *verifiedCache) get(sum [sha256.Size]byte) (verifiedToken, bool) {
	c.mu.RLock()
	e, ok := c.entries[sum]
	c.mu.RUnlock()
	return e, ok
}

// put remembers a verified token. When the cache is full it first drops the
// expired entries and, if that frees too little, a quarter of the others
// (Go's map order is random, so which ones cannot be steered).
func (c *verifiedCache) put(sum [sha256.Size]byte, e verifiedToken, nowUnix int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= maxVerifiedTokens {
		for k, old := range c.entries {
			if int64(old.claims.Expiry) < nowUnix {
				delete(c.entries, k)
			}
		}
		for k := range c.entries {
			if len(c.entries) < maxVerifiedTokens*3/4 {
				break
			}
			delete(c.entries, k)
		}
	}
	c.entries[sum] = e
}

func (c *verifiedCache) drop(sum [sha256.Size]byte) {
	c.mu.Lock()
	delete(c.entries, sum)
	c.mu.Unlock()
}

func (c *verifiedCache) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.entries)
}

package tokens

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/changebank/changebank/internal/bounded"
)

// This file keeps attacker input from costing the provider more than one
// call: a login transaction is exchanged at most once per instance, a
// refresh token the provider refused (or that was revoked here) is never
// sent again, and refused code exchanges draw on a small budget. All of it
// is per-instance memory, bounded; nothing is shared between instances.

// maxSpentEntries bounds each hashSet below.
const maxSpentEntries = 10000

// hashSet remembers SHA-256 hashes of values (never the values: memory
// holds no usable token) until an expiry, at most maxSpentEntries of them.
// When full, the expired go first, then arbitrary ones (see bounded.Evict):
// what is forgotten can cost the provider one more call, which the callers
// bound otherwise (the exchange budget).
type hashSet struct {
	entries *bounded.Map[[sha256.Size]byte, int64] // hash -> Unix expiry
}

func newHashSet() *hashSet {
	return &hashSet{entries: bounded.New[[sha256.Size]byte, int64](maxSpentEntries, bounded.Evict)}
}

// add records sum until exp and reports whether it was new (false: it is
// already there and unexpired). Check and record are one step, so of
// requests that race with one value exactly one gets true.
func (s *hashSet) add(sum [sha256.Size]byte, exp time.Time, now time.Time) bool {
	return s.entries.Add(sum, exp.Unix(), func(e int64) bool { return now.Unix() >= e })
}

// has reports whether sum is recorded and unexpired.
func (s *hashSet) has(sum [sha256.Size]byte, now time.Time) bool {
	e, ok := s.entries.Get(sum)
	return ok && now.Unix() < e
}

// errDeadToken is a refresh token this instance saw refused or revoked.
var errDeadToken = fmt.Errorf("%w: the provider refused this refresh token before, or it was revoked here", ErrNoSession)

// Refused code exchanges: a burst of exchangeBurst, then one more per
// exchangeRefill. A callback needs no provider visit to forge (GET /login
// hands out a transaction, and any code will do), so without a bound a
// flood of fresh transactions would be a flood of token calls.
const (
	exchangeBurst  = 10
	exchangeRefill = time.Second
)

// ErrLoginsThrottled is FinishLogin's answer while the budget of refused
// code exchanges is spent: the provider was not asked, the user may log in
// again in a moment. It wraps ErrProviderUnavailable.
var ErrLoginsThrottled = fmt.Errorf("%w: too many refused logins on this instance just now", ErrProviderUnavailable)

// exchangeBudget is a token bucket of refused code exchanges. A successful
// exchange costs nothing: only codes the provider refused draw on it.
type exchangeBudget struct {
	mu     sync.Mutex
	tokens float64
	at     time.Time
}

func newExchangeBudget(now time.Time) *exchangeBudget {
	return &exchangeBudget{tokens: exchangeBurst, at: now}
}

// refill brings the bucket up to now. The caller holds b.mu.
func (b *exchangeBudget) refill(now time.Time) {
	if now.After(b.at) {
		b.tokens = min(exchangeBurst, b.tokens+float64(now.Sub(b.at))/float64(exchangeRefill))
	}
	b.at = now
}

// allow reports whether an exchange may be tried now: some budget is left.
func (b *exchangeBudget) allow(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.refill(now)
	return b.tokens >= 1
}

// spend records a refused exchange.
func (b *exchangeBudget) spend(now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.refill(now)
	b.tokens = max(b.tokens-1, -exchangeBurst) // a burst of refusals in flight waits a little longer, not forever
}

// refusedByProvider reports whether err is the token endpoint refusing a
// grant for good (invalid_grant and the like), not a transient failure.
func refusedByProvider(err error) bool {
	var te *tokenEndpointError
	return errors.As(err, &te) && !errors.Is(te.kind, ErrProviderUnavailable)
}

// compactJWS checks that raw is a JWS in the compact serialization with
// canonical unpadded base64url parts, before any parser sees it. RFC 7519
// requires the compact form of a JWT; the JSON serialization (RFC 7515
// section 7.2) and base64url with padding or with non-zero unused bits in a
// part's last character would each let one genuine token be written many
// ways, every one a full signature check and a cache entry of its own.
func compactJWS(raw string) error {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return errors.New("not a compact JWS (three base64url parts)")
	}
	for i, p := range parts {
		if p == "" && i < 2 {
			return fmt.Errorf("part %d of 3 is empty", i+1)
		}
		// An empty signature is written one way only; alg none is refused
		// by the algorithm check, which names it.
		if p != "" && !canonicalBase64URL(p) {
			return fmt.Errorf("part %d of 3 is not canonical unpadded base64url", i+1)
		}
	}
	return nil
}

// canonicalBase64URL reports whether s is unpadded base64url that decoding
// and encoding again gives back byte for byte.
func canonicalBase64URL(s string) bool {
	if len(s)%4 == 1 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if b64Value(s[i]) < 0 {
			return false
		}
	}
	// The last character of a part whose length is not a multiple of 4
	// carries 2 or 4 bits that belong to no byte: they must be zero.
	last := b64Value(s[len(s)-1])
	switch len(s) % 4 {
	case 2:
		return last&0x0f == 0
	case 3:
		return last&0x03 == 0
	}
	return true
}

func b64Value(c byte) int {
	switch {
	case c >= 'A' && c <= 'Z':
		return int(c - 'A')
	case c >= 'a' && c <= 'z':
		return int(c-'a') + 26
	case c >= '0' && c <= '9':
		return int(c-'0') + 52
	case c == '-':
		return 62
	case c == '_':
		return 63
	}
	return -1
}

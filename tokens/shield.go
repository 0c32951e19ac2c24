package tokens

import (
	"crypto/sha256"
	"errors"
	"fmt"
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

package tokens

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/lestrrat-go/httprc/v3"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"golang.org/x/sync/singleflight"
)

// errKeysUnavailable (errors.go) means the provider's JWKS could not be had: a
// token cannot be judged either way, so the caller answers "try again", not "log in".

// errUnknownKey means the JWKS, even refetched, has no key with the token's kid.
var errUnknownKey = errors.New("tokens: no key with that kid in the provider's JWKS")

// A KeySet finds the provider's public key for a token's kid.
type KeySet interface {
	LookupKey(ctx context.Context, kid string) (jwk.Key, error)
}

// RemoteKeySet is the provider's JWKS, kept by jwx's cache (refreshed in
// the background) and refetched at once, by one goroutine and at most once
// per RefetchInterval, when a token names a kid the cached set lacks: that
// is how a key rotation at the provider is picked up without a restart, and
// why a flood of tokens with made-up kids cannot flood the provider.
type RemoteKeySet struct {
	cache *jwk.Cache
	set   *httprc.ResourceBase[jwk.Set] // read without a round trip to the cache's goroutine
	url   string
	now   func() time.Time

	group       singleflight.Group
	mu          sync.Mutex
	lastRefetch time.Time
}

// RefetchInterval is the least time between two refetches for unknown kids.
const RefetchInterval = 10 * time.Second

// NewRemoteKeySet fetches the JWKS at url and keeps it cached until ctx ends.
// It fails when the first fetch fails or finds no key; the caller retries.
func NewRemoteKeySet(ctx context.Context, url string, client *http.Client, now func() time.Time) (*RemoteKeySet, error) {
	cache, err := jwk.NewCache(ctx, httprc.NewClient())
	if err != nil {
		return nil, fmt.Errorf("tokens: starting the JWKS cache: %w", err)
	}
	fetchCtx, cancel := context.WithTimeout(ctx, client.Timeout+time.Second)
	defer cancel()
	err = cache.Register(fetchCtx, url,
		jwk.WithHTTPClient(client),
		jwk.WithMinInterval(time.Minute),
		jwk.WithMaxInterval(time.Hour))
	var res *httprc.ResourceBase[jwk.Set]
	if err == nil {
		if res, err = cache.LookupResource(fetchCtx, url); err == nil && res.Resource().Len() == 0 {
			err = errors.New("the key set is empty")
		}
	}
	if err != nil {
		_ = cache.Shutdown(context.Background())
		return nil, fmt.Errorf("tokens: fetching the JWKS: %w", err)
	}
	return &RemoteKeySet{cache: cache, set: res, url: url, now: now}, nil
}

// LookupKey returns the key with the given kid.
func (ks *RemoteKeySet) LookupKey(ctx context.Context, kid string) (jwk.Key, error) {
	if key, ok := ks.set.Resource().LookupKeyID(kid); ok {
		return key, nil
	}
	// Unknown kid: one refetch for everybody waiting on it.
	_, err, _ := ks.group.Do("refetch", func() (any, error) {
		ks.mu.Lock()
		recent := ks.now().Sub(ks.lastRefetch) < RefetchInterval
		if !recent {
			ks.lastRefetch = ks.now()
		}
		ks.mu.Unlock()
		if recent {
			return nil, nil
		}
		// Detached from the caller: one cancelled request must not fail the others.
		fetchCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_, err := ks.cache.Refresh(fetchCtx, ks.url)
		return nil, err
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errKeysUnavailable, err)
	}
	if key, ok := ks.set.Resource().LookupKeyID(kid); ok {
		return key, nil
	}
	return nil, errUnknownKey
}

// Close stops the cache's background refresh.
func (ks *RemoteKeySet) Close() error {
	return ks.cache.Shutdown(context.Background())
}

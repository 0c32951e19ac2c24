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
)

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
//
// A kid is judged unknown (the token invalid) only by a refetch that the
// caller waited for and that succeeded: a fetch made after the token
// arrived, so a key the provider published before signing it is in it.
// When no refetch is allowed yet, or the last one failed, the answer is
// errKeysUnavailable ("try again"), never "invalid": otherwise one token
// with a made-up kid, sent just before a rotation, would rate-limit the
// refetch that brings the new key and log out everyone signed with it.
type RemoteKeySet struct {
	cache *jwk.Cache
	set   *httprc.ResourceBase[jwk.Set] // read without a round trip to the cache's goroutine
	url   string
	now   func() time.Time

	mu          sync.Mutex
	lastRefetch time.Time
	inflight    *refetch // the refetch under way, if any
}

// refetch is one JWKS fetch that several lookups may wait for.
type refetch struct {
	done chan struct{} // closed when err is set
	err  error
}

// RefetchInterval is the least time between two refetches for unknown kids:
// a token signed with a newly rotated key waits at most this long.
const RefetchInterval = 10 * time.Second

// refetchTimeout bounds one JWKS refetch.
const refetchTimeout = 5 * time.Second

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

// LookupKey returns the key with the given kid. For a kid the cached set
// lacks it waits (as long as ctx allows) for a refetch shared by every
// caller, and returns errKeysUnavailable when no refetch may start yet or
// the refetch failed; an error wrapping errUnknownKey only when a
// successful refetch, begun after the call, lacks the kid.
func (ks *RemoteKeySet) LookupKey(ctx context.Context, kid string) (jwk.Key, error) {
	if key, ok := ks.set.Resource().LookupKeyID(kid); ok {
		return key, nil
	}
	f := ks.startRefetch()
	if f == nil {
		return nil, fmt.Errorf("%w: kid not in the cached set, next refetch allowed within %s", errKeysUnavailable, RefetchInterval)
	}
	select {
	case <-f.done:
	case <-ctx.Done():
		// This request gave up; the refetch goes on for the others.
		return nil, fmt.Errorf("%w: %w", errKeysUnavailable, ctx.Err())
	}
	if f.err != nil {
		return nil, fmt.Errorf("%w: %w", errKeysUnavailable, f.err)
	}
	if key, ok := ks.set.Resource().LookupKeyID(kid); ok {
		return key, nil
	}
	return nil, errUnknownKey
}

// startRefetch returns the refetch under way, or starts one when the last
// began at least RefetchInterval ago, or returns nil.
func (ks *RemoteKeySet) startRefetch() *refetch {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	if ks.inflight != nil {
		return ks.inflight
	}
	now := ks.now()
	if !ks.lastRefetch.IsZero() && now.Sub(ks.lastRefetch) < RefetchInterval {
		return nil
	}
	ks.lastRefetch = now
	f := &refetch{done: make(chan struct{})}
	ks.inflight = f
	go func() {
		// Detached from every caller: one cancelled request must not fail the others.
		ctx, cancel := context.WithTimeout(context.Background(), refetchTimeout)
		defer cancel()
		_, err := ks.cache.Refresh(ctx, ks.url)
		ks.mu.Lock()
		f.err, ks.inflight = err, nil
		ks.mu.Unlock()
		close(f.done)
	}()
	return f
}

// Close stops the cache's background refresh.
func (ks *RemoteKeySet) Close() error {
	return ks.cache.Shutdown(context.Background())
}

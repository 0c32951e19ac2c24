package oidc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/lestrrat-go/httprc/v3"
	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/changebank/changebank/internal/bounded"
)

// A KeySet finds the provider's public key for a token's kid.
type KeySet interface {
	LookupKey(ctx context.Context, kid string) (jwk.Key, error)
	// Keys returns every key of the set, for a token that names no kid.
	Keys(ctx context.Context) ([]jwk.Key, error)
}

// remoteKeySet is the provider's JWKS, kept by jwx's cache (refreshed in
// the background) and refetched at once, by one goroutine and at most once
// per RefetchInterval, when a token names a kid the cached set lacks: that
// is how a key rotation at the provider is picked up without a restart, and
// why a flood of tokens with made-up kids cannot flood the provider.
//
// A kid is judged unknown (the token invalid) only by a refetch that the
// caller waited for and that succeeded: a fetch made after the token
// arrived, so a key the provider published before signing it is in it.
// When no refetch is allowed yet, or the last one failed, the answer is
// ErrKeysUnavailable ("try again"), never "invalid": otherwise one token
// with a made-up kid, sent just before a rotation, would rate-limit the
// refetch that brings the new key and log out everyone signed with it.
//
// Members the app cannot check a signature with (a type or curve it does not
// know, such as secp256k1 or the post-quantum AKP, an encryption key, a key
// that does not parse) are left out of the set with one log line each, and
// never fail it: RFC 7517, section 5. A set left with no signing key at all
// fails, with errNoSigningKey.
type remoteKeySet struct {
	ctrl httprc.Controller
	set  *httprc.ResourceBase[jwk.Set] // read without a round trip to the cache's goroutine
	url  string
	now  func() time.Time

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

// errNoSigningKey means the provider's key set holds no key this app can
// check a signature with: the provider is not ready until it does.
var errNoSigningKey = errors.New("oidc: the provider's key set (jwks_uri) holds no key this app can check signatures with (RSA, EC P-256/P-384/P-521 or Ed25519, for signing)")

// maxJWKSBytes bounds the key set read.
const maxJWKSBytes = 1 << 20

// newRemoteKeySet fetches the JWKS at url and keeps it cached until ctx ends.
// It fails when the first fetch fails or finds no signing key (the error
// then wraps errNoSigningKey); the caller retries. Each member left out is
// logged on log, once.
func newRemoteKeySet(ctx context.Context, url string, client *http.Client, now func() time.Time, log *slog.Logger) (*remoteKeySet, error) {
	ctrl, err := httprc.NewClient().Start(ctx)
	if err != nil {
		return nil, fmt.Errorf("oidc: starting the JWKS cache: %w", err)
	}
	fail := func(err error) (*remoteKeySet, error) {
		_ = ctrl.ShutdownContext(context.Background())
		return nil, fmt.Errorf("oidc: fetching the JWKS: %w", err)
	}
	t := &keySetReader{log: log, logged: bounded.New[skippedKey, struct{}](maxLoggedSkips, bounded.Refuse), tried: make(chan struct{})}
	res, err := httprc.NewResource[jwk.Set](url, t,
		httprc.WithHTTPClient(client),
		httprc.WithMinInterval(time.Minute),
		httprc.WithMaxInterval(time.Hour))
	if err != nil {
		return fail(err)
	}
	fetchCtx, cancel := context.WithTimeout(ctx, client.Timeout+time.Second)
	defer cancel()
	if err := ctrl.Add(fetchCtx, res, httprc.WithWaitReady(false)); err != nil {
		return fail(err)
	}
	// A set that arrived but holds no usable key is known at once; httprc
	// would only say "not ready" once fetchCtx ends.
	select {
	case <-t.tried:
	case <-fetchCtx.Done():
	}
	if err := t.lastErr(); err != nil {
		return fail(err)
	}
	if err := res.Ready(fetchCtx); err != nil {
		return fail(err)
	}
	return &remoteKeySet{ctrl: ctrl, set: res, url: url, now: now}, nil
}

// keySetReader turns a JWKS response into the set of keys this app can
// check signatures with, leaving out (and logging once) every other member.
type keySetReader struct {
	log *slog.Logger

	tried    chan struct{} // closed once a response has been read
	triedOne sync.Once

	logged *bounded.Map[skippedKey, struct{}] // the members logged already, at most maxLoggedSkips (then no more are remembered)

	mu   sync.Mutex
	last error // the last response's reason for failing, if it failed
}

// skippedKey is one member left out of a key set, as logged.
type skippedKey struct{ kid, kty, crv, why string }

// maxLoggedSkips bounds the memory of members already logged: a key set
// is fetched again every few minutes, and each member is logged once.
const maxLoggedSkips = 256

func (t *keySetReader) lastErr() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.last
}

// Transform implements httprc.Transformer.
func (t *keySetReader) Transform(_ context.Context, res *http.Response) (jwk.Set, error) {
	set, err := t.read(res)
	t.mu.Lock()
	t.last = err
	t.mu.Unlock()
	t.triedOne.Do(func() { close(t.tried) })
	return set, err
}

func (t *keySetReader) read(res *http.Response) (jwk.Set, error) {
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("oidc: the JWKS answered status %d", res.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(res.Body, maxJWKSBytes+1))
	if err != nil {
		return nil, fmt.Errorf("oidc: reading the JWKS: %w", err)
	}
	if len(body) > maxJWKSBytes {
		return nil, fmt.Errorf("oidc: the JWKS is larger than %d bytes", maxJWKSBytes)
	}
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, fmt.Errorf("oidc: the JWKS is not a JSON key set: %w", err)
	}
	set := jwk.NewSet()
	for _, raw := range doc.Keys {
		key, skip := signingKey(raw)
		if skip.why != "" {
			t.logSkip(skip)
			continue
		}
		if err := set.AddKey(key); err != nil {
			t.logSkip(skippedKey{kid: skip.kid, kty: skip.kty, crv: skip.crv, why: "a duplicate of another member"})
		}
	}
	if set.Len() == 0 {
		return nil, fmt.Errorf("%w: %d member(s), none usable (each is logged above)", errNoSigningKey, len(doc.Keys))
	}
	return set, nil
}

func (t *keySetReader) logSkip(s skippedKey) {
	_, seen := t.logged.Get(s)
	if !seen {
		t.logged.Put(s, struct{}{}, nil)
	}
	if !seen && t.log != nil {
		t.log.Warn("JWKS member skipped: this app cannot check signatures with it", "kid", s.kid, "kty", s.kty, "crv", s.crv, "why", s.why)
	}
}

// signingKey parses one member of a key set and keeps it only when this
// app can check a token's signature with it. Otherwise it says why not,
// naming the member by kid, kty and crv (public values, never key material).
func signingKey(raw json.RawMessage) (jwk.Key, skippedKey) {
	var hdr struct {
		Kid string `json:"kid"`
		Kty string `json:"kty"`
		Crv string `json:"crv"`
		Use string `json:"use"`
		Alg string `json:"alg"`
	}
	if err := json.Unmarshal(raw, &hdr); err != nil {
		return nil, skippedKey{why: "not a JSON object"}
	}
	s := skippedKey{kid: clip(hdr.Kid), kty: clip(hdr.Kty), crv: clip(hdr.Crv)}
	switch {
	case hdr.Kty != "RSA" && hdr.Kty != "EC" && hdr.Kty != "OKP":
		// oct keys are shared secrets, never the provider's public keys;
		// AKP (post-quantum) and anything newer are not known here.
		s.why = "key type not supported: RSA, EC and OKP are"
	case hdr.Kty == "EC" && !slices.Contains([]string{"P-256", "P-384", "P-521"}, hdr.Crv):
		s.why = "curve not supported: P-256, P-384 and P-521 are"
	case hdr.Kty == "OKP" && hdr.Crv != "Ed25519":
		s.why = "curve not supported: Ed25519 is"
	case hdr.Use != "" && hdr.Use != "sig":
		s.why = fmt.Sprintf("use %q: not a signing key", clip(hdr.Use))
	case hdr.Alg != "" && !asymmetric[hdr.Alg]:
		s.why = fmt.Sprintf("alg %q: not an asymmetric signature algorithm this app checks", clip(hdr.Alg))
	}
	if s.why != "" {
		return nil, s
	}
	key, err := jwk.ParseKey(raw)
	if err != nil {
		s.why = "does not parse: " + err.Error()
		return nil, s
	}
	if err := key.Validate(); err != nil {
		s.why = "invalid: " + err.Error()
		return nil, s
	}
	if len(algsForKey(key)) == 0 {
		s.why = "no signature algorithm fits it"
		return nil, s
	}
	if alg, ok := key.Algorithm(); ok {
		if _, ok := jwa.LookupSignatureAlgorithm(alg.String()); !ok {
			s.why = fmt.Sprintf("alg %q is not a signature algorithm", alg)
			return nil, s
		}
	}
	return key, s
}

// clip bounds a value from a key set before it goes into the log.
func clip(v string) string {
	const most = 64
	if len(v) > most {
		return v[:most] + "..."
	}
	return v
}

// Keys returns every key of the cached set.
func (ks *remoteKeySet) Keys(context.Context) ([]jwk.Key, error) {
	set := ks.set.Resource()
	keys := make([]jwk.Key, 0, set.Len())
	for i := range set.Len() {
		if k, ok := set.Key(i); ok {
			keys = append(keys, k)
		}
	}
	return keys, nil
}

// LookupKey returns the key with the given kid. For a kid the cached set
// lacks it waits (as long as ctx allows) for a refetch shared by every
// caller, and returns ErrKeysUnavailable when no refetch may start yet or
// the refetch failed; an error wrapping errUnknownKey only when a
// successful refetch, begun after the call, lacks the kid.
func (ks *remoteKeySet) LookupKey(ctx context.Context, kid string) (jwk.Key, error) {
	if key, ok := ks.set.Resource().LookupKeyID(kid); ok {
		return key, nil
	}
	f := ks.startRefetch()
	if f == nil {
		return nil, fmt.Errorf("%w: kid not in the cached set, next refetch allowed within %s", ErrKeysUnavailable, RefetchInterval)
	}
	select {
	case <-f.done:
	case <-ctx.Done():
		// This request gave up; the refetch goes on for the others.
		return nil, fmt.Errorf("%w: %w", ErrKeysUnavailable, ctx.Err())
	}
	if f.err != nil {
		return nil, fmt.Errorf("%w: %w", ErrKeysUnavailable, f.err)
	}
	if key, ok := ks.set.Resource().LookupKeyID(kid); ok {
		return key, nil
	}
	return nil, errUnknownKey
}

// startRefetch returns the refetch under way, or starts one when the last
// began at least RefetchInterval ago, or returns nil.
func (ks *remoteKeySet) startRefetch() *refetch {
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
		err := ks.ctrl.Refresh(ctx, ks.url)
		ks.mu.Lock()
		f.err, ks.inflight = err, nil
		ks.mu.Unlock()
		close(f.done)
	}()
	return f
}

// Close stops the cache's background refresh.
func (ks *remoteKeySet) Close() error {
	return ks.ctrl.ShutdownContext(context.Background())
}

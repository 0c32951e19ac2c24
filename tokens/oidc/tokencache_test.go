package oidc

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
)

// The verified-token cache must never let a token through that a full
// verification would refuse at that moment.

func TestCachedTokenExpiresOnTime(t *testing.T) {
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	signer := newTestSigner(t, "k1")
	v := NewVerifier(staticKeys{"k1": signer.Pub}, Profile{Issuer: testIssuer, ClientID: testClient}, clock)
	token := signer.Sign(t, goodClaims(now), nil) // exp in 2 minutes
	ctx := context.Background()
	for range 3 {
		if _, err := v.AccessToken(ctx, token); err != nil {
			t.Fatal(err)
		}
	}
	if v.cache.len() != 1 {
		t.Fatalf("cache holds %d tokens after three checks of one, want 1", v.cache.len())
	}
	mu.Lock()
	now = now.Add(2*time.Minute + Leeway + time.Second)
	mu.Unlock()
	c, err := v.AccessToken(ctx, token)
	if !errors.Is(err, ErrExpired) || c == nil || c.Subject != "user-1" {
		t.Fatalf("cached token past its exp: claims %v, err %v; want its claims and ErrExpired, as without the cache", c, err)
	}
}

func TestCachedTokenObeysKindRules(t *testing.T) {
	now := time.Now()
	signer := newTestSigner(t, "k1")
	v := NewVerifier(staticKeys{"k1": signer.Pub}, Profile{Issuer: testIssuer, ClientID: testClient}, func() time.Time { return now })
	ctx := context.Background()
	untyped := signer.Sign(t, goodClaims(now), nil)
	if _, err := v.AccessToken(ctx, untyped); err != nil {
		t.Fatal(err)
	}
	// The provider turns out to type its access tokens: the untyped one,
	// cached before that was learned, is refused like any other.
	if _, err := v.TokenEndpointAccess(ctx, signer.Sign(t, goodClaims(now), map[string]any{"typ": "at+jwt"})); err != nil {
		t.Fatal(err)
	}
	if _, err := v.AccessToken(ctx, untyped); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("cached untyped token after at+jwt was learned: %v, want refused", err)
	}
	// An ID token is never cached as an access token.
	id := signer.Sign(t, with(goodClaims(now), "nonce", "n"), nil)
	for range 2 {
		if _, err := v.AccessToken(ctx, id); !errors.Is(err, ErrInvalidToken) {
			t.Fatalf("ID token as access token: %v", err)
		}
	}
}

func TestKeyRemovedFromJWKSInvalidatesCachedTokens(t *testing.T) {
	old, next := newTestSigner(t, "k1"), newTestSigner(t, "k2")
	var served atomic.Pointer[jwk.Set]
	serve := func(signers ...*testSigner) {
		set := jwk.NewSet()
		for _, s := range signers {
			_ = set.AddKey(s.Pub)
		}
		served.Store(&set)
	}
	serve(old)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(*served.Load())
	}))
	defer srv.Close()
	clock := &manualClock{At: time.Now()}
	now := clock.Now()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ks, err := newRemoteKeySet(ctx, srv.URL, &http.Client{Timeout: time.Second}, clock.Now, discard)
	if err != nil {
		t.Fatal(err)
	}
	defer ks.Close()
	v := NewVerifier(ks, Profile{Issuer: testIssuer, ClientID: testClient}, clock.Now)
	token := old.Sign(t, goodClaims(now), nil)
	for range 2 {
		if _, err := v.AccessToken(ctx, token); err != nil {
			t.Fatal(err)
		}
	}
	// The provider rotates to k2 and drops k1; a k2 token makes this
	// instance refetch the JWKS.
	serve(next)
	if _, err := v.AccessToken(ctx, next.Sign(t, goodClaims(now), nil)); err != nil {
		t.Fatalf("token signed with the new key: %v", err)
	}
	// At once, the cached token no longer works: its key is not in the set.
	// Until a refetch made after this kid went missing confirms it, the
	// answer is "try again" (a key rotation must not log anyone out); after
	// that, the token is refused.
	if _, err := v.AccessToken(ctx, token); !errors.Is(err, ErrProviderUnavailable) && !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("cached token whose key left the JWKS: %v, want not served", err)
	}
	clock.Advance(RefetchInterval)
	if _, err := v.AccessToken(ctx, token); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("cached token whose key left the JWKS, after the next refetch: %v, want refused", err)
	}
}

func TestKeyReplacedUnderTheSameKidInvalidatesCachedTokens(t *testing.T) {
	now := time.Now()
	signer := newTestSigner(t, "k1")
	keys := staticKeys{"k1": signer.Pub}
	v := NewVerifier(keys, Profile{Issuer: testIssuer, ClientID: testClient}, func() time.Time { return now })
	token := signer.Sign(t, goodClaims(now), nil)
	if _, err := v.AccessToken(context.Background(), token); err != nil {
		t.Fatal(err)
	}
	keys["k1"] = newTestSigner(t, "k1").Pub
	if _, err := v.AccessToken(context.Background(), token); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("cached token after its kid named another key: %v, want refused", err)
	}
}

func TestVerifiedCacheStaysBounded(t *testing.T) {
	t.Run("100,000 distinct entries", func(t *testing.T) {
		c := newBoundedCache[Verified]()
		exp := time.Now().Add(time.Hour).Unix()
		for i := range 100_000 {
			var sum [sha256.Size]byte
			binary.BigEndian.PutUint64(sum[:], uint64(i))
			c.put(sum, Verified{}, exp, time.Now().Unix())
			if n := c.len(); n > maxCachedEntries {
				t.Fatalf("after %d tokens the cache holds %d, bound %d", i+1, n, maxCachedEntries)
			}
		}
	})
	t.Run("distinct genuine tokens through the verifier", func(t *testing.T) {
		pub, priv, _ := ed25519.GenerateKey(rand.Reader)
		key, _ := jwk.Import(pub)
		_ = key.Set(jwk.KeyIDKey, "ed")
		_ = key.Set(jwk.AlgorithmKey, "EdDSA")
		now := time.Now()
		v := NewVerifier(staticKeys{"ed": key}, Profile{Issuer: testIssuer, ClientID: testClient}, func() time.Time { return now })
		hdr := jws.NewHeaders()
		_ = hdr.Set("kid", "ed")
		var first string
		for i := range maxCachedEntries + maxCachedEntries/2 {
			payload, _ := json.Marshal(with(goodClaims(now), "jti", strconv.Itoa(i)))
			tok, err := jws.Sign(payload, jws.WithKey(jwa.EdDSA(), priv, jws.WithProtectedHeaders(hdr)))
			if err != nil {
				t.Fatal(err)
			}
			if first == "" {
				first = string(tok)
			}
			if _, err := v.AccessToken(context.Background(), string(tok)); err != nil {
				t.Fatal(err)
			}
		}
		if n := v.cache.len(); n > maxCachedEntries {
			t.Fatalf("cache holds %d tokens, bound %d", n, maxCachedEntries)
		}
		// An evicted token is simply verified again.
		if _, err := v.AccessToken(context.Background(), first); err != nil {
			t.Fatalf("first token after the flood: %v", err)
		}
	})
}

// BenchmarkVerifyAccessTokenUncached is the full check a token gets the
// first time it is seen: BenchmarkVerifyAccessToken measures the cache hit.
func BenchmarkVerifyAccessTokenUncached(b *testing.B) {
	now := time.Now()
	signer := newTestSigner(b, "k1")
	token := signer.Sign(b, goodClaims(now), nil)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		v := NewVerifier(staticKeys{"k1": signer.Pub}, Profile{Issuer: testIssuer, ClientID: testClient}, func() time.Time { return now })
		if _, err := v.AccessToken(ctx, token); err != nil {
			b.Fatal(err)
		}
	}
}

package oidc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/changebank/changebank/internal/oidctest"
)

// rotatingJWKS is a provider's JWKS endpoint that tests can rotate, break
// and hold, counting fetches.
type rotatingJWKS struct {
	mu      sync.Mutex
	signers []*testSigner
	failing bool
	hold    chan struct{} // when set, each fetch waits for it to close
	fetches atomic.Int32
}

func (j *rotatingJWKS) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	j.fetches.Add(1)
	j.mu.Lock()
	signers, failing, hold := j.signers, j.failing, j.hold
	j.mu.Unlock()
	if hold != nil {
		<-hold
	}
	if failing {
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
		return
	}
	set := jwk.NewSet()
	for _, s := range signers {
		_ = set.AddKey(s.Pub)
	}
	_ = json.NewEncoder(w).Encode(set)
}

func (j *rotatingJWKS) set(f func(*rotatingJWKS)) {
	j.mu.Lock()
	defer j.mu.Unlock()
	f(j)
}

// keysFixture is a verifier over a RemoteKeySet on a fake clock.
type keysFixture struct {
	jwks *rotatingJWKS
	keys *remoteKeySet
	v    *Verifier
	manualClock
}

func newKeysFixture(t *testing.T, first *testSigner) *keysFixture {
	t.Helper()
	f := &keysFixture{jwks: &rotatingJWKS{signers: []*testSigner{first}}, manualClock: manualClock{At: time.Now()}}
	srv := httptest.NewServer(f.jwks)
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ks, err := newRemoteKeySet(ctx, srv.URL, &http.Client{Timeout: 2 * time.Second}, f.Now, discard)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ks.Close() })
	f.keys = ks
	f.v = NewVerifier(ks, Profile{Issuer: testIssuer, ClientID: testClient}, f.Now)
	return f
}

// manualClock is a clock that moves only when a test advances it.
type manualClock = oidctest.ManualClock

func TestUnknownKidBeforeARotationLogsNobodyOut(t *testing.T) {
	old := newTestSigner(t, "k1")
	f := newKeysFixture(t, old)
	ctx := context.Background()
	start := f.jwks.fetches.Load()

	// Anyone can send a token with a made-up kid: it costs one refetch,
	// which lacks the kid, so that token is invalid.
	forged := newTestSigner(t, "made-up").Sign(t, goodClaims(f.Now()), nil)
	if _, err := f.v.AccessToken(ctx, forged); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("made-up kid: %v, want invalid", err)
	}

	// The provider rotates its key within the refetch interval.
	rotated := newTestSigner(t, "k2")
	f.jwks.set(func(j *rotatingJWKS) { j.signers = append(j.signers, rotated) })
	f.Advance(RefetchInterval / 2)
	genuine := rotated.Sign(t, goodClaims(f.Now()), nil)
	_, err := f.v.AccessToken(ctx, genuine)
	if !errors.Is(err, ErrKeysUnavailable) || errors.Is(err, ErrInvalidToken) {
		t.Fatalf("a genuine token under the new key, refetch not yet allowed: %v, want keys unavailable (try again), not invalid (logout)", err)
	}

	// Once the interval has passed, the next request brings the key.
	f.Advance(RefetchInterval / 2)
	if c, err := f.v.AccessToken(ctx, genuine); err != nil || c.Subject != "user-1" {
		t.Fatalf("after the interval: %+v, %v", c, err)
	}
	if n := f.jwks.fetches.Load() - start; n != 2 {
		t.Fatalf("%d JWKS fetches, want 2 (one per interval)", n)
	}
	// Tokens under the old key still verify, without a fetch.
	if _, err := f.v.AccessToken(ctx, old.Sign(t, goodClaims(f.Now()), nil)); err != nil || f.jwks.fetches.Load()-start != 2 {
		t.Fatalf("old key: %v, %d fetches", err, f.jwks.fetches.Load()-start)
	}
}

func TestAFloodOfMadeUpKidsCostsOneFetchPerInterval(t *testing.T) {
	f := newKeysFixture(t, newTestSigner(t, "k1"))
	start := f.jwks.fetches.Load()
	for round := 1; round <= 3; round++ {
		var wg sync.WaitGroup
		for i := range 100 {
			wg.Go(func() {
				_, err := f.keys.LookupKey(context.Background(), fmt.Sprintf("made-up-%d-%d", round, i))
				if err == nil {
					t.Error("a made-up kid found a key")
				}
			})
		}
		wg.Wait()
		if n := f.jwks.fetches.Load() - start; n != int32(round) {
			t.Fatalf("round %d: %d JWKS fetches in all, want %d (one per %s)", round, n, round, RefetchInterval)
		}
		f.Advance(RefetchInterval)
	}
}

func TestFailedJWKSFetchIsTryAgainNotInvalid(t *testing.T) {
	f := newKeysFixture(t, newTestSigner(t, "k1"))
	ctx := context.Background()
	rotated := newTestSigner(t, "k2")
	f.jwks.set(func(j *rotatingJWKS) { j.signers = append(j.signers, rotated); j.failing = true })
	genuine := rotated.Sign(t, goodClaims(f.Now()), nil)
	for _, when := range []string{"the fetch fails", "within the interval after it"} {
		_, err := f.v.AccessToken(ctx, genuine)
		if !errors.Is(err, ErrKeysUnavailable) || errors.Is(err, ErrInvalidToken) {
			t.Fatalf("%s: %v, want keys unavailable", when, err)
		}
		f.Advance(time.Second)
	}
	f.jwks.set(func(j *rotatingJWKS) { j.failing = false })
	f.Advance(RefetchInterval)
	if _, err := f.v.AccessToken(ctx, genuine); err != nil {
		t.Fatalf("once the JWKS answers again: %v", err)
	}
}

func TestKeyRefetchWaitersHonourTheirOwnContext(t *testing.T) {
	f := newKeysFixture(t, newTestSigner(t, "k1"))
	rotated := newTestSigner(t, "k2")
	release := make(chan struct{})
	f.jwks.set(func(j *rotatingJWKS) { j.signers = append(j.signers, rotated); j.hold = release })

	patient := make(chan error, 1)
	go func() {
		_, err := f.keys.LookupKey(context.Background(), "k2")
		patient <- err
	}()
	for f.jwks.fetches.Load() < 2 { // the initial fetch and the refetch under way
		time.Sleep(time.Millisecond)
	}
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { close(release) }) })
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	impatient := make(chan error, 1)
	go func() {
		_, err := f.keys.LookupKey(gone, "k2")
		impatient <- err
	}()
	select {
	case err := <-impatient:
		if !errors.Is(err, ErrKeysUnavailable) || !errors.Is(err, context.Canceled) {
			t.Fatalf("a cancelled request waiting on the refetch: %v", err)
		}
	case <-time.After(5 * time.Second): // a hang, not a speed check
		t.Fatal("a cancelled request kept waiting for the shared refetch")
	}
	once.Do(func() { close(release) })
	if err := <-patient; err != nil {
		t.Fatalf("the request that kept waiting: %v", err)
	}
}

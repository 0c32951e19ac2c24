package tokens

import (
	"context"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/changebank/changebank/internal/oidctest"
	"github.com/changebank/changebank/tokens/cookie"
	"github.com/changebank/changebank/tokens/oidc"
)

// The test's provider, client and secrets, and the helpers shared with the
// other session packages' tests (oidctest).
const (
	testIssuer = oidctest.Issuer
	testClient = oidctest.Client
)

var (
	secretA = []byte("test-secret-a-0123456789abcdef-0123456789")
	secretB = []byte("test-secret-b-0123456789abcdef-0123456789")
	discard = slog.New(slog.DiscardHandler)
)

type (
	staticKeys  = oidctest.StaticKeys
	testSigner  = oidctest.Signer
	manualClock = oidctest.ManualClock
)

var (
	newTestSigner = oidctest.NewSigner
	goodClaims    = oidctest.Claims
	with          = oidctest.With
)

// testConfig is a Config for a test against issuer: the test client at
// http://app.test, secretA, an hour of refresh token, no logs.
func testConfig(issuer string) Config {
	return Config{Issuer: issuer, ClientID: testClient, ClientSecret: "s3cret", AppURL: "http://app.test",
		Secrets: []string{string(secretA)}, RefreshTokenTTL: time.Hour, Logger: discard}
}

// testSessions builds Sessions for cfg around the provider p, trusting the
// keys of ks: a provider never started (every token call then fails as
// unavailable) when p is nil, p's own keys when ks is nil.
func testSessions(t testing.TB, cfg Config, p *oidc.Provider, ks oidc.KeySet) *Sessions {
	t.Helper()
	cfg, err := cfg.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if p == nil {
		p = oidc.NewProvider(cfg.profile(), cfg.HTTPClient, cfg.Clock, cfg.Logger)
	}
	if ks == nil {
		ks = p
	}
	s, err := newSessions(cfg, p, ks)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// startProvider discovers the provider profile describes, through hc, and
// waits until it is ready.
func startProvider(t testing.TB, profile oidc.Profile, hc *http.Client, clock func() time.Time) *oidc.Provider {
	t.Helper()
	p := oidc.NewProvider(profile, hc, clock, discard)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go p.Start(ctx)
	wait, done := context.WithTimeout(ctx, 10*time.Second)
	defer done()
	if err := p.WaitReady(wait); err != nil {
		t.Fatal(err)
	}
	return p
}

// sealedCookie seals v for the cookie base as the app would.
func sealedCookie(t testing.TB, c *cookie.Store, base string, v any) *http.Cookie {
	t.Helper()
	sealed, err := c.Seal(base, v)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Cookie{Name: c.Name(base), Value: sealed}
}

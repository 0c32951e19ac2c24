package oidc

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/changebank/changebank/internal/oidctest"
)

// The test's provider and client, and its helpers, from oidctest.
const (
	testIssuer = oidctest.Issuer
	testClient = oidctest.Client
)

type (
	staticKeys = oidctest.StaticKeys
	testSigner = oidctest.Signer
)

var (
	discard       = slog.New(slog.DiscardHandler)
	newTestSigner = oidctest.NewSigner
	goodClaims    = oidctest.Claims
	with          = oidctest.With
)

// unsigned builds a token by hand: header and claims as given, signature as given.
func unsigned(header, claims map[string]any, sig string) string {
	h, _ := json.Marshal(header)
	c, _ := json.Marshal(claims)
	return base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(c) + "." + sig
}

func TestVerifierAcceptsGenuineTokens(t *testing.T) {
	now := time.Now()
	signer := newTestSigner(t, "k1")
	v := NewVerifier(staticKeys{"k1": signer.Pub}, Profile{Issuer: testIssuer, ClientID: testClient}, func() time.Time { return now })
	c, err := v.AccessToken(context.Background(), signer.Sign(t, goodClaims(now), nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.Subject != "user-1" || c.Expiry.Time().Unix() != now.Add(2*time.Minute).Unix() {
		t.Fatalf("claims = %+v", c)
	}
	// aud as an array, as some providers send it.
	if _, err := v.AccessToken(context.Background(), signer.Sign(t, with(goodClaims(now), "aud", []string{"other", testClient}), nil)); err != nil {
		t.Fatalf("aud array: %v", err)
	}
	// Within the Leeway after exp: still genuine and unexpired.
	if _, err := v.AccessToken(context.Background(), signer.Sign(t, with(goodClaims(now), "exp", now.Add(-Leeway/2).Unix()), nil)); err != nil {
		t.Fatalf("exp within Leeway: %v", err)
	}
}

func TestVerifierRefusesForgeries(t *testing.T) {
	now := time.Now()
	signer := newTestSigner(t, "k1")
	attacker := newTestSigner(t, "k1") // same kid, different key
	v := NewVerifier(staticKeys{"k1": signer.Pub}, Profile{Issuer: testIssuer, ClientID: testClient}, func() time.Time { return now })
	good := goodClaims(now)

	// HMAC with the public key's bytes as the secret: the classic algorithm confusion.
	pubDER, _ := x509.MarshalPKIXPublicKey(&signer.Priv.PublicKey)
	hsHeader := map[string]any{"alg": "HS256", "typ": "JWT", "kid": "k1"}
	hsInput := strings.Join(strings.Split(unsigned(hsHeader, good, ""), ".")[:2], ".")
	mac := hmac.New(sha256.New, pubDER)
	mac.Write([]byte(hsInput))
	hsToken := hsInput + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))

	// A header that points at the attacker's key in every way jwx knows.
	attackerJWK, _ := jwk.Import(&attacker.Priv.PublicKey)

	cases := []struct {
		name  string
		token string
		want  error
	}{
		{"alg none", unsigned(map[string]any{"alg": "none", "typ": "JWT", "kid": "k1"}, good, ""), ErrInvalidToken},
		{"HS256 with the public key as secret", hsToken, ErrInvalidToken},
		{"signed by another key with the same kid", attacker.Sign(t, good, nil), ErrInvalidToken},
		{"embedded jwk header", attacker.Sign(t, good, map[string]any{"jwk": attackerJWK}), ErrInvalidToken},
		{"jku header", attacker.Sign(t, good, map[string]any{"jku": "http://evil.test/jwks.json"}), ErrInvalidToken},
		{"unknown kid", newTestSigner(t, "k2").Sign(t, good, nil), ErrInvalidToken},
		{"no kid", unsigned(map[string]any{"alg": "RS256"}, good, "c2ln"), ErrInvalidToken},
		{"wrong issuer", signer.Sign(t, with(good, "iss", "http://evil.test"), nil), ErrInvalidToken},
		{"wrong audience", signer.Sign(t, with(good, "aud", "another-client"), nil), ErrInvalidToken},
		{"no subject", signer.Sign(t, with(good, "sub", nil), nil), ErrInvalidToken},
		{"no exp", signer.Sign(t, with(good, "exp", nil), nil), ErrInvalidToken},
		{"not yet valid", signer.Sign(t, with(good, "nbf", now.Add(5*time.Minute).Unix()), nil), ErrInvalidToken},
		{"issued in the future", signer.Sign(t, with(good, "iat", now.Add(5*time.Minute).Unix()), nil), ErrInvalidToken},
		{"expired", signer.Sign(t, with(good, "exp", now.Add(-Leeway-time.Second).Unix()), nil), ErrExpired},
		{"an ID token", signer.Sign(t, with(good, "at_hash", "abc", "nonce", "n"), nil), ErrInvalidToken},
		{"garbage", "not.a.token", ErrInvalidToken},
		{"two parts", "abc.def", ErrInvalidToken},
		{"oversize", signer.Sign(t, with(good, "pad", strings.Repeat("x", MaxTokenLen)), nil), ErrInvalidToken},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := v.AccessToken(context.Background(), tc.token)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestVerifierChecksNonce(t *testing.T) {
	now := time.Now()
	signer := newTestSigner(t, "k1")
	v := NewVerifier(staticKeys{"k1": signer.Pub}, Profile{Issuer: testIssuer, ClientID: testClient}, func() time.Time { return now })
	id := signer.Sign(t, with(goodClaims(now), "nonce", "n-123", "email", "r@example.com"), nil)
	if c, err := v.IDToken(context.Background(), id, "n-123"); err != nil || c.Email != "r@example.com" {
		t.Fatalf("IDToken = %+v, %v", c, err)
	}
	if _, err := v.IDToken(context.Background(), id, "n-other"); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("a replayed ID token with another login's nonce was accepted: %v", err)
	}
}

// failingKeys is a KeySet whose provider cannot be reached.
type failingKeys struct{}

func (failingKeys) LookupKey(context.Context, string) (jwk.Key, error) {
	return nil, ErrKeysUnavailable
}

func (failingKeys) Keys(context.Context) ([]jwk.Key, error) {
	return nil, ErrKeysUnavailable
}

func TestVerifierSaysWhenKeysAreUnavailable(t *testing.T) {
	now := time.Now()
	signer := newTestSigner(t, "k1")
	v := NewVerifier(failingKeys{}, Profile{Issuer: testIssuer, ClientID: testClient}, func() time.Time { return now })
	_, err := v.AccessToken(context.Background(), signer.Sign(t, goodClaims(now), nil))
	if !errors.Is(err, ErrKeysUnavailable) || errors.Is(err, ErrInvalidToken) {
		t.Fatalf("err = %v: an unreachable JWKS must not be taken for a bad token", err)
	}
}

func BenchmarkVerifyAccessToken(b *testing.B) {
	now := time.Now()
	signer := newTestSigner(b, "k1")
	v := NewVerifier(staticKeys{"k1": signer.Pub}, Profile{Issuer: testIssuer, ClientID: testClient}, func() time.Time { return now })
	token := signer.Sign(b, goodClaims(now), nil)
	ctx := context.Background()
	for b.Loop() {
		if _, err := v.AccessToken(ctx, token); err != nil {
			b.Fatal(err)
		}
	}
}

// TestAtJWTRuleIsLearnedOnlyFromTheTokenEndpoint: the rule "this provider
// types its access tokens at+jwt" refuses every untyped Bearer token once
// learned, so nothing a client sends may teach it: neither a Bearer token,
// nor a token-endpoint answer that failed a check. Before, one
// provider-signed at+jwt token for another audience, even expired, locked
// every ordinary Bearer token out until restart.
func TestAtJWTRuleIsLearnedOnlyFromTheTokenEndpoint(t *testing.T) {
	now := time.Now()
	signer := newTestSigner(t, "k1")
	v := NewVerifier(staticKeys{"k1": signer.Pub}, Profile{Issuer: testIssuer, ClientID: testClient}, func() time.Time { return now })
	ctx := context.Background()
	typed := map[string]any{"typ": "at+jwt"}
	plain := signer.Sign(t, goodClaims(now), nil)
	teachNothing := map[string]func() error{
		"a Bearer at+jwt token for another audience": func() error {
			_, err := v.AccessToken(ctx, signer.Sign(t, with(goodClaims(now), "aud", "another-api"), typed))
			return err
		},
		"an expired Bearer at+jwt token": func() error {
			_, err := v.AccessToken(ctx, signer.Sign(t, with(goodClaims(now), "exp", now.Add(-time.Hour).Unix()), typed))
			return err
		},
		"a genuine Bearer at+jwt token": func() error {
			_, err := v.AccessToken(ctx, signer.Sign(t, goodClaims(now), typed))
			return err
		},
		"a token-endpoint at+jwt token for another audience": func() error {
			_, err := v.TokenEndpointAccess(ctx, signer.Sign(t, with(goodClaims(now), "aud", "another-api"), typed))
			return err
		},
		"a token-endpoint at+jwt token from another issuer": func() error {
			_, err := v.TokenEndpointAccess(ctx, signer.Sign(t, with(goodClaims(now), "iss", "https://other.test"), typed))
			return err
		},
		"an expired token-endpoint at+jwt token": func() error {
			_, err := v.TokenEndpointAccess(ctx, signer.Sign(t, with(goodClaims(now), "exp", now.Add(-time.Hour).Unix()), typed))
			return err
		},
	}
	for name, send := range teachNothing {
		if err := send(); (err == nil) != (name == "a genuine Bearer at+jwt token") {
			t.Fatalf("%s: %v", name, err)
		}
		if _, err := v.AccessToken(ctx, plain); err != nil {
			t.Fatalf("after %s, an ordinary Bearer token is refused: %v", name, err)
		}
	}
	// The token endpoint's own at+jwt token, passing every check, teaches it.
	if _, err := v.TokenEndpointAccess(ctx, signer.Sign(t, with(goodClaims(now), "jti", "issued"), typed)); err != nil {
		t.Fatal(err)
	}
	if _, err := v.AccessToken(ctx, signer.Sign(t, with(goodClaims(now), "jti", "other"), nil)); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("after the token endpoint issued at+jwt, an untyped Bearer token: %v, want refused", err)
	}
}

func TestWhichAccessTokensAreJWTs(t *testing.T) {
	now := time.Now()
	signer := newTestSigner(t, "k1")
	for token, want := range map[string]bool{
		signer.Sign(t, goodClaims(now), nil):                 true,
		"ya29.a0AfB_byC1234567890abcdef":                     false, // Google
		"ory_at_4Nq0mWzF1o.8cJ5t0RwQk":                       false, // Hydra: two parts
		"authelia_at_abc.def":                                false,
		"aGVsbG8.d29ybGQ.c2ln":                               false, // three parts, but no JSON header with alg
		"eyJhbGciOiJkaXIiLCJlbmMiOiJBMjU2R0NNIn0..iv.ct.tag": false, // a JWE (Auth0 without audience)
		"":                       false,
		"2YotnFZFEjr1zCsicMWpAA": false, // RFC 6749's example
	} {
		if got := IsJWT(token); got != want {
			t.Errorf("IsJWT(%.30q) = %v", token, got)
		}
	}
}

func BenchmarkIsJWT(b *testing.B) {
	token := newTestSigner(b, "k1").Sign(b, goodClaims(time.Now()), nil)
	for b.Loop() {
		if !IsJWT(token) {
			b.Fatal("not a JWT")
		}
	}
}

package oidc

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"

	"github.com/changebank/changebank/internal/oidctest"
)

func TestAccessTokensTypedAtJWTAreRequiredOnceSeen(t *testing.T) {
	now := time.Now()
	signer := newTestSigner(t, "k1")
	v := NewVerifier(staticKeys{"k1": signer.Pub}, Profile{Issuer: testIssuer, ClientID: testClient}, func() time.Time { return now })
	ctx := context.Background()
	plain := signer.Sign(t, goodClaims(now), nil) // typ JWT
	if _, err := v.AccessToken(ctx, plain); err != nil {
		t.Fatalf("before any at+jwt token, typ JWT is an access token: %v", err)
	}
	// A forged at+jwt token teaches nothing: only the provider's signature counts.
	forged := newTestSigner(t, "k1").Sign(t, goodClaims(now), map[string]any{"typ": "at+jwt"})
	if _, err := v.AccessToken(ctx, forged); err == nil {
		t.Fatal("a forged token was accepted")
	}
	if _, err := v.AccessToken(ctx, plain); err != nil {
		t.Fatalf("a forged at+jwt token made the verifier require at+jwt: %v", err)
	}
	for _, typ := range []string{"at+jwt", "application/at+jwt", "AT+JWT"} {
		if _, err := v.AccessToken(ctx, signer.Sign(t, goodClaims(now), map[string]any{"typ": typ})); err != nil {
			t.Fatalf("typ %s: %v", typ, err)
		}
	}
	// Sent as Bearer tokens, genuine at+jwt tokens teach nothing either:
	// only the token endpoint's answer to this app does.
	if _, err := v.AccessToken(ctx, plain); err != nil {
		t.Fatalf("Bearer at+jwt tokens made the verifier require at+jwt: %v", err)
	}
	if _, err := v.TokenEndpointAccess(ctx, signer.Sign(t, goodClaims(now), map[string]any{"typ": "at+jwt"})); err != nil {
		t.Fatal(err)
	}
	cases := map[string]string{
		"typ JWT":    plain,
		"typ absent": unsignedTyp(t, signer, goodClaims(now)),
	}
	for name, token := range cases {
		t.Run(name, func(t *testing.T) {
			if c, err := v.AccessToken(ctx, token); !errors.Is(err, ErrInvalidToken) || c != nil {
				t.Fatalf("after an at+jwt token, a %s token was taken as an access token: %v", name, err)
			}
		})
	}
	// An at+jwt token is never an ID token.
	if _, err := v.IDToken(ctx, signer.Sign(t, goodClaims(now), map[string]any{"typ": "at+jwt"}), ""); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("an at+jwt token was taken as an ID token: %v", err)
	}
}

// unsignedTyp signs claims with a header that has no typ at all.
func unsignedTyp(t *testing.T, s *testSigner, claims map[string]any) string {
	t.Helper()
	payload, _ := json.Marshal(claims)
	hdr := jws.NewHeaders()
	_ = hdr.Set("kid", s.Kid)
	out, err := jws.Sign(payload, jws.WithKey(jwa.RS256(), s.Priv, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func TestVerifierRefusesOddHeaders(t *testing.T) {
	now := time.Now()
	signer := newTestSigner(t, "k1")
	v := NewVerifier(staticKeys{"k1": signer.Pub}, Profile{Issuer: testIssuer, ClientID: testClient}, func() time.Time { return now })
	cases := map[string]map[string]any{
		// RFC 7515 4.1.11: an extension this app does not understand.
		"unknown crit extension": {"crit": []string{"exp-ext"}, "exp-ext": 1},
		"typ dpop+jwt":           {"typ": "dpop+jwt"},
		"typ JOSE":               {"typ": "JOSE"},
	}
	for name, hdr := range cases {
		t.Run(name, func(t *testing.T) {
			if c, err := v.AccessToken(context.Background(), signer.Sign(t, goodClaims(now), hdr)); !errors.Is(err, ErrInvalidToken) || c != nil {
				t.Fatalf("a correctly signed token with %s was accepted: %v", name, err)
			}
		})
	}
}

func TestFailedValidationReturnsNoClaims(t *testing.T) {
	now := time.Now()
	signer := newTestSigner(t, "k1")
	v := NewVerifier(staticKeys{"k1": signer.Pub}, Profile{Issuer: testIssuer, ClientID: testClient}, func() time.Time { return now })
	good := goodClaims(now)
	cases := map[string]map[string]any{
		"wrong issuer":   with(good, "iss", "http://evil.test"),
		"wrong audience": with(good, "aud", "another"),
		"not yet valid":  with(good, "nbf", now.Add(time.Hour).Unix()),
		"expired and from another issuer": with(good, "iss", "http://evil.test",
			"exp", now.Add(-time.Hour).Unix()),
	}
	for name, claims := range cases {
		t.Run(name, func(t *testing.T) {
			token := signer.Sign(t, claims, nil)
			if c, err := v.AccessToken(context.Background(), token); err == nil || c != nil {
				t.Fatalf("AccessToken = %+v, %v: want no claims", c, err)
			}
			if c, err := v.IDToken(context.Background(), token, ""); err == nil || c != nil {
				t.Fatalf("idToken = %+v, %v: want no claims", c, err)
			}
		})
	}
	// The one exception: genuine but expired, so that the caller can refresh.
	c, err := v.AccessToken(context.Background(), signer.Sign(t, with(good, "exp", now.Add(-time.Hour).Unix()), nil))
	if !errors.Is(err, ErrExpired) || c == nil || c.Subject != "user-1" {
		t.Fatalf("expired: %+v, %v", c, err)
	}
}

// keyWithoutAlg returns the public JWK of priv with a kid and no alg.
func keyWithoutAlg(t *testing.T, kid string, pub any) jwk.Key {
	t.Helper()
	k, err := jwk.Import(pub)
	if err != nil {
		t.Fatal(err)
	}
	_ = k.Set(jwk.KeyIDKey, kid)
	return k
}

func signWith(t *testing.T, alg jwa.SignatureAlgorithm, priv any, kid string, claims map[string]any) string {
	t.Helper()
	payload, _ := json.Marshal(claims)
	hdr := jws.NewHeaders()
	_ = hdr.Set("kid", kid)
	_ = hdr.Set("typ", "JWT")
	out, err := jws.Sign(payload, jws.WithKey(alg, priv, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// TestKeysWithoutAlgAreUsedWithWhatTheirTypeAllows: a key that names no
// alg checks what its type and curve allow, whatever discovery lists for ID
// tokens (Hydra signs access tokens with ES256 and lists RS256), and never
// HMAC or none.
func TestKeysWithoutAlgAreUsedWithWhatTheirTypeAllows(t *testing.T) {
	now := time.Now()
	rsaSigner := newTestSigner(t, "rsa")
	ec256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rsaKey := keyWithoutAlg(t, "rsa", &rsaSigner.Priv.PublicKey)
	ecKey := keyWithoutAlg(t, "ec", &ec256.PublicKey)

	// HS256 under the RSA key's public bytes, and alg none, built by hand.
	hsHeader := map[string]any{"alg": "HS256", "typ": "JWT", "kid": "rsa"}

	for _, tc := range []struct {
		name  string
		algs  []string // the provider's discovery list
		token func(claims map[string]any) string
		ok    bool
	}{
		{"RS256, discovery lists nothing", nil, func(c map[string]any) string { return signWith(t, jwa.RS256(), rsaSigner.Priv, "rsa", c) }, true},
		{"PS384 listed", []string{"RS256", "PS384"}, func(c map[string]any) string { return signWith(t, jwa.PS384(), rsaSigner.Priv, "rsa", c) }, true},
		{"ES256 on P-256, listed", []string{"RS256", "ES256"}, func(c map[string]any) string { return signWith(t, jwa.ES256(), ec256, "ec", c) }, true},
		{"ES256, discovery lists nothing (RS256 only)", nil, func(c map[string]any) string { return signWith(t, jwa.ES256(), ec256, "ec", c) }, true},
		{"ES256, discovery lists RS256 for ID tokens", []string{"RS256"}, func(c map[string]any) string { return signWith(t, jwa.ES256(), ec256, "ec", c) }, true},
		{"RS512 not listed", []string{"RS256"}, func(c map[string]any) string { return signWith(t, jwa.RS512(), rsaSigner.Priv, "rsa", c) }, true},
		{"ES384 on a P-256 key", []string{"ES256", "ES384"}, func(c map[string]any) string { return forgeAlg(t, "ES384", "ec", c) }, false},
		{"ES256 on an RSA key", []string{"RS256", "ES256"}, func(c map[string]any) string { return forgeAlg(t, "ES256", "rsa", c) }, false},
		{"HS256 listed", []string{"RS256", "HS256"}, func(c map[string]any) string { return unsigned(hsHeader, c, "c2ln") }, false},
		{"alg none listed", []string{"RS256", "none"}, func(c map[string]any) string {
			return unsigned(map[string]any{"alg": "none", "typ": "JWT", "kid": "rsa"}, c, "")
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := oidctest.NewProvider(t, tc.algs, rsaKey, ecKey)
			p := startProvider(t, Profile{Issuer: f.URL})
			if err := p.WaitReady(t.Context()); err != nil {
				t.Fatal(err)
			}
			v := NewVerifier(p, Profile{Issuer: f.URL, ClientID: testClient}, time.Now)
			c, err := v.AccessToken(context.Background(), tc.token(f.ClaimsFor(now)))
			if tc.ok && (err != nil || c.Subject != "user-1") {
				t.Fatalf("refused: %v", err)
			}
			if !tc.ok && !errors.Is(err, ErrInvalidToken) {
				t.Fatalf("accepted: %+v, %v", c, err)
			}
		})
	}
}

// forgeAlg makes a token whose header names alg, with a signature of the
// right length for nothing: it must be refused before any check of it.
func forgeAlg(t *testing.T, alg, kid string, claims map[string]any) string {
	t.Helper()
	return unsigned(map[string]any{"alg": alg, "typ": "JWT", "kid": kid}, claims, strings.Repeat("A", 128))
}

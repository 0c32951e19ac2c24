package tokens

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
)

const (
	testIssuer = "http://idp.test"
	testClient = "e9fdb985-9173-4e01-9d73-ac2d60d1dc8e"
)

// staticKeys is a KeySet that holds fixed keys, for verifier tests.
type staticKeys map[string]jwk.Key

func (s staticKeys) LookupKey(_ context.Context, kid string) (jwk.Key, error) {
	if k, ok := s[kid]; ok {
		return k, nil
	}
	return nil, errUnknownKey
}

func (s staticKeys) Keys(context.Context) ([]jwk.Key, error) {
	keys := make([]jwk.Key, 0, len(s))
	for _, k := range s {
		keys = append(keys, k)
	}
	return keys, nil
}

type testSigner struct {
	kid  string
	priv *rsa.PrivateKey
	pub  jwk.Key
}

func newTestSigner(t testing.TB, kid string) *testSigner {
	t.Helper()
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := jwk.Import(&priv.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	_ = pub.Set(jwk.KeyIDKey, kid)
	_ = pub.Set(jwk.AlgorithmKey, "RS256")
	return &testSigner{kid: kid, priv: priv, pub: pub}
}

// sign makes a JWT with the given claims and extra header fields.
func (s *testSigner) sign(t testing.TB, claims map[string]any, header map[string]any) string {
	t.Helper()
	payload, _ := json.Marshal(claims)
	hdr := jws.NewHeaders()
	_ = hdr.Set("kid", s.kid)
	_ = hdr.Set("typ", "JWT")
	for k, v := range header {
		_ = hdr.Set(k, v)
	}
	out, err := jws.Sign(payload, jws.WithKey(jwa.RS256(), s.priv, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func goodClaims(now time.Time) map[string]any {
	return map[string]any{
		"iss": testIssuer, "aud": testClient, "sub": "user-1",
		"iat": now.Unix(), "exp": now.Add(2 * time.Minute).Unix(), "auth_time": now.Unix(),
	}
}

func with(m map[string]any, kv ...any) map[string]any {
	out := map[string]any{}
	for k, v := range m {
		out[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(out, kv[i].(string))
			continue
		}
		out[kv[i].(string)] = kv[i+1]
	}
	return out
}

// unsigned builds a token by hand: header and claims as given, signature as given.
func unsigned(header, claims map[string]any, sig string) string {
	h, _ := json.Marshal(header)
	c, _ := json.Marshal(claims)
	return base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(c) + "." + sig
}

func TestVerifierAcceptsGenuineTokens(t *testing.T) {
	now := time.Now()
	signer := newTestSigner(t, "k1")
	v := NewVerifier(staticKeys{"k1": signer.pub}, Profile{Issuer: testIssuer, ClientID: testClient}, func() time.Time { return now })
	c, err := v.AccessToken(context.Background(), signer.sign(t, goodClaims(now), nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.Subject != "user-1" || c.Expiry.Time().Unix() != now.Add(2*time.Minute).Unix() {
		t.Fatalf("claims = %+v", c)
	}
	// aud as an array, as some providers send it.
	if _, err := v.AccessToken(context.Background(), signer.sign(t, with(goodClaims(now), "aud", []string{"other", testClient}), nil)); err != nil {
		t.Fatalf("aud array: %v", err)
	}
	// Within the leeway after exp: still genuine and unexpired.
	if _, err := v.AccessToken(context.Background(), signer.sign(t, with(goodClaims(now), "exp", now.Add(-leeway/2).Unix()), nil)); err != nil {
		t.Fatalf("exp within leeway: %v", err)
	}
}

func TestVerifierRefusesForgeries(t *testing.T) {
	now := time.Now()
	signer := newTestSigner(t, "k1")
	attacker := newTestSigner(t, "k1") // same kid, different key
	v := NewVerifier(staticKeys{"k1": signer.pub}, Profile{Issuer: testIssuer, ClientID: testClient}, func() time.Time { return now })
	good := goodClaims(now)

	// HMAC with the public key's bytes as the secret: the classic algorithm confusion.
	pubDER, _ := x509.MarshalPKIXPublicKey(&signer.priv.PublicKey)
	hsHeader := map[string]any{"alg": "HS256", "typ": "JWT", "kid": "k1"}
	hsInput := strings.Join(strings.Split(unsigned(hsHeader, good, ""), ".")[:2], ".")
	mac := hmac.New(sha256.New, pubDER)
	mac.Write([]byte(hsInput))
	hsToken := hsInput + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))

	// A header that points at the attacker's key in every way jwx knows.
	attackerJWK, _ := jwk.Import(&attacker.priv.PublicKey)

	cases := []struct {
		name  string
		token string
		want  error
	}{
		{"alg none", unsigned(map[string]any{"alg": "none", "typ": "JWT", "kid": "k1"}, good, ""), errInvalidToken},
		{"HS256 with the public key as secret", hsToken, errInvalidToken},
		{"signed by another key with the same kid", attacker.sign(t, good, nil), errInvalidToken},
		{"embedded jwk header", attacker.sign(t, good, map[string]any{"jwk": attackerJWK}), errInvalidToken},
		{"jku header", attacker.sign(t, good, map[string]any{"jku": "http://evil.test/jwks.json"}), errInvalidToken},
		{"unknown kid", newTestSigner(t, "k2").sign(t, good, nil), errInvalidToken},
		{"no kid", unsigned(map[string]any{"alg": "RS256"}, good, "c2ln"), errInvalidToken},
		{"wrong issuer", signer.sign(t, with(good, "iss", "http://evil.test"), nil), errInvalidToken},
		{"wrong audience", signer.sign(t, with(good, "aud", "another-client"), nil), errInvalidToken},
		{"no subject", signer.sign(t, with(good, "sub", nil), nil), errInvalidToken},
		{"no exp", signer.sign(t, with(good, "exp", nil), nil), errInvalidToken},
		{"not yet valid", signer.sign(t, with(good, "nbf", now.Add(5*time.Minute).Unix()), nil), errInvalidToken},
		{"issued in the future", signer.sign(t, with(good, "iat", now.Add(5*time.Minute).Unix()), nil), errInvalidToken},
		{"expired", signer.sign(t, with(good, "exp", now.Add(-leeway-time.Second).Unix()), nil), errExpired},
		{"an ID token", signer.sign(t, with(good, "at_hash", "abc", "nonce", "n"), nil), errInvalidToken},
		{"garbage", "not.a.token", errInvalidToken},
		{"two parts", "abc.def", errInvalidToken},
		{"oversize", signer.sign(t, with(good, "pad", strings.Repeat("x", maxTokenLen)), nil), errInvalidToken},
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
	v := NewVerifier(staticKeys{"k1": signer.pub}, Profile{Issuer: testIssuer, ClientID: testClient}, func() time.Time { return now })
	id := signer.sign(t, with(goodClaims(now), "nonce", "n-123", "email", "r@example.com"), nil)
	if c, err := v.idToken(context.Background(), id, "n-123"); err != nil || c.Email != "r@example.com" {
		t.Fatalf("IDToken = %+v, %v", c, err)
	}
	if _, err := v.idToken(context.Background(), id, "n-other"); !errors.Is(err, errInvalidToken) {
		t.Fatalf("a replayed ID token with another login's nonce was accepted: %v", err)
	}
}

// failingKeys is a KeySet whose provider cannot be reached.
type failingKeys struct{}

func (failingKeys) LookupKey(context.Context, string) (jwk.Key, error) {
	return nil, errKeysUnavailable
}

func (failingKeys) Keys(context.Context) ([]jwk.Key, error) {
	return nil, errKeysUnavailable
}

func TestVerifierSaysWhenKeysAreUnavailable(t *testing.T) {
	now := time.Now()
	signer := newTestSigner(t, "k1")
	v := NewVerifier(failingKeys{}, Profile{Issuer: testIssuer, ClientID: testClient}, func() time.Time { return now })
	_, err := v.AccessToken(context.Background(), signer.sign(t, goodClaims(now), nil))
	if !errors.Is(err, errKeysUnavailable) || errors.Is(err, errInvalidToken) {
		t.Fatalf("err = %v: an unreachable JWKS must not be taken for a bad token", err)
	}
}

func BenchmarkVerifyAccessToken(b *testing.B) {
	now := time.Now()
	signer := newTestSigner(b, "k1")
	v := NewVerifier(staticKeys{"k1": signer.pub}, Profile{Issuer: testIssuer, ClientID: testClient}, func() time.Time { return now })
	token := signer.sign(b, goodClaims(now), nil)
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
	v := NewVerifier(staticKeys{"k1": signer.pub}, Profile{Issuer: testIssuer, ClientID: testClient}, func() time.Time { return now })
	ctx := context.Background()
	typed := map[string]any{"typ": "at+jwt"}
	plain := signer.sign(t, goodClaims(now), nil)
	teachNothing := map[string]func() error{
		"a Bearer at+jwt token for another audience": func() error {
			_, err := v.AccessToken(ctx, signer.sign(t, with(goodClaims(now), "aud", "another-api"), typed))
			return err
		},
		"an expired Bearer at+jwt token": func() error {
			_, err := v.AccessToken(ctx, signer.sign(t, with(goodClaims(now), "exp", now.Add(-time.Hour).Unix()), typed))
			return err
		},
		"a genuine Bearer at+jwt token": func() error {
			_, err := v.AccessToken(ctx, signer.sign(t, goodClaims(now), typed))
			return err
		},
		"a token-endpoint at+jwt token for another audience": func() error {
			_, err := v.tokenEndpointAccess(ctx, signer.sign(t, with(goodClaims(now), "aud", "another-api"), typed))
			return err
		},
		"a token-endpoint at+jwt token from another issuer": func() error {
			_, err := v.tokenEndpointAccess(ctx, signer.sign(t, with(goodClaims(now), "iss", "https://other.test"), typed))
			return err
		},
		"an expired token-endpoint at+jwt token": func() error {
			_, err := v.tokenEndpointAccess(ctx, signer.sign(t, with(goodClaims(now), "exp", now.Add(-time.Hour).Unix()), typed))
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
	if _, err := v.tokenEndpointAccess(ctx, signer.sign(t, with(goodClaims(now), "jti", "issued"), typed)); err != nil {
		t.Fatal(err)
	}
	if _, err := v.AccessToken(ctx, signer.sign(t, with(goodClaims(now), "jti", "other"), nil)); !errors.Is(err, errInvalidToken) {
		t.Fatalf("after the token endpoint issued at+jwt, an untyped Bearer token: %v, want refused", err)
	}
}

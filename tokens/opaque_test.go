package tokens

import (
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

func TestWhichAccessTokensAreJWTs(t *testing.T) {
	now := time.Now()
	signer := newTestSigner(t, "k1")
	for token, want := range map[string]bool{
		signer.sign(t, goodClaims(now), nil):                 true,
		"ya29.a0AfB_byC1234567890abcdef":                     false, // Google
		"ory_at_4Nq0mWzF1o.8cJ5t0RwQk":                       false, // Hydra: two parts
		"authelia_at_abc.def":                                false,
		"aGVsbG8.d29ybGQ.c2ln":                               false, // three parts, but no JSON header with alg
		"eyJhbGciOiJkaXIiLCJlbmMiOiJBMjU2R0NNIn0..iv.ct.tag": false, // a JWE (Auth0 without audience)
		"":                       false,
		"2YotnFZFEjr1zCsicMWpAA": false, // RFC 6749's example
	} {
		if got := isJWT(token); got != want {
			t.Errorf("isJWT(%.30q) = %v", token, got)
		}
	}
}

func TestAtHashBindsTheOpaqueAccessTokenToTheIDToken(t *testing.T) {
	now := time.Now()
	signer := newTestSigner(t, "k1")
	access := "ya29.the-access-token"
	sum := sha256.Sum256([]byte(access))
	good := base64.RawURLEncoding.EncodeToString(sum[:16])
	for name, tc := range map[string]struct {
		atHash string
		ok     bool
	}{
		"matching":          {good, true},
		"absent (optional)": {"", true},
		"another token's":   {base64.RawURLEncoding.EncodeToString(make([]byte, 16)), false},
	} {
		id := signer.sign(t, with(goodClaims(now), "at_hash", tc.atHash), nil)
		if err := checkAtHash(id, &Claims{AtHash: tc.atHash}, access); (err == nil) != tc.ok {
			t.Errorf("%s: %v", name, err)
		}
	}
	// The hash follows the ID token's algorithm: SHA-384 for ES384.
	h := unsigned(map[string]any{"alg": "ES384"}, goodClaims(now), "sig")
	d := sha512.Sum384([]byte(access))
	if err := checkAtHash(h, &Claims{AtHash: base64.RawURLEncoding.EncodeToString(d[:24])}, access); err != nil {
		t.Errorf("ES384: %v", err)
	}
}

func TestOpaqueAccessTokenLife(t *testing.T) {
	now := time.Now()
	for name, tc := range map[string]struct {
		expiry time.Time
		want   time.Time
	}{
		"expires_in as given": {now.Add(3599 * time.Second), now.Add(3599 * time.Second)},
		"no expires_in":       {time.Time{}, now.Add(DefaultOpaqueAccessLife)},
		"a day: bounded":      {now.Add(24 * time.Hour), now.Add(MaxOpaqueAccessLife)},
	} {
		if got := opaqueExpiry(&oauth2.Token{Expiry: tc.expiry}, now); !got.Equal(tc.want) {
			t.Errorf("%s: %s, want %s", name, got, tc.want)
		}
	}
}

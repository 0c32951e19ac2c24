package tokens

import (
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

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
		id := signer.Sign(t, with(goodClaims(now), "at_hash", tc.atHash), nil)
		if err := checkAtHash(id, &Claims{AtHash: tc.atHash}, access); (err == nil) != tc.ok {
			t.Errorf("%s: %v", name, err)
		}
	}
	// The hash follows the ID token's algorithm: SHA-384 for ES384.
	h := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"ES384"}`)) + ".e30.sig" // only the header counts here
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
		"no expires_in":       {time.Time{}, now.Add(defaultOpaqueAccessLife)},
		"a day: bounded":      {now.Add(24 * time.Hour), now.Add(maxOpaqueAccessLife)},
	} {
		if got := opaqueExpiry(&oauth2.Token{Expiry: tc.expiry}, now); !got.Equal(tc.want) {
			t.Errorf("%s: %s, want %s", name, got, tc.want)
		}
	}
}

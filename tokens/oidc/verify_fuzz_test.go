package oidc

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
)

// fuzzNow is the time the verifier fuzz targets run at: the seed tokens in
// testdata/fuzz were signed for it, so they stay unexpired.
var fuzzNow = time.Unix(1_800_000_000, 0)

// fuzzSigner is the test key the seed tokens were signed with. It is kept
// in testdata so that every fuzzing process verifies with the same key.
func fuzzSigner(t testing.TB) *testSigner {
	t.Helper()
	data, err := os.ReadFile("testdata/fuzz-signing-key.pem")
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		t.Fatal("testdata/fuzz-signing-key.pem holds no PEM block")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	priv := k.(*rsa.PrivateKey)
	pub, err := jwk.Import(&priv.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	_ = pub.Set(jwk.KeyIDKey, "fuzz")
	_ = pub.Set(jwk.AlgorithmKey, "RS256")
	return &testSigner{Kid: "fuzz", Priv: priv, Pub: pub}
}

// FuzzAccessToken: whatever arrives as a Bearer token or access cookie,
// the verifier does not panic, returns claims only for a token it accepts
// (or one that is only expired), and accepts only what the test key signed
// with RS256 for this issuer and client, never an ID token. The signature
// is checked again here with jws directly, not through the verifier.
func FuzzAccessToken(f *testing.F) {
	signer := fuzzSigner(f)
	v := NewVerifier(staticKeys{signer.Kid: signer.Pub}, Profile{Issuer: testIssuer, ClientID: testClient}, func() time.Time { return fuzzNow })
	f.Fuzz(func(t *testing.T, raw string) {
		c, err := v.AccessToken(context.Background(), raw)
		if err != nil && !errors.Is(err, ErrExpired) && c != nil {
			t.Fatalf("claims came back with %v", err)
		}
		if err != nil {
			if !errors.Is(err, ErrInvalidToken) && !errors.Is(err, ErrExpired) {
				t.Fatalf("a refusal wraps neither ErrInvalidToken nor ErrExpired: %v", err)
			}
			return
		}
		payload, verr := jws.Verify([]byte(raw), jws.WithKey(jwa.RS256(), signer.Pub))
		if verr != nil {
			t.Fatalf("accepted a token the test key did not sign with RS256: %v", verr)
		}
		var claims struct {
			Iss   string          `json:"iss"`
			Aud   json.RawMessage `json:"aud"`
			Nonce *string         `json:"nonce"`
			Hash  *string         `json:"at_hash"`
		}
		if err := json.Unmarshal(payload, &claims); err != nil {
			t.Fatalf("accepted a token whose payload is not JSON: %v", err)
		}
		if claims.Iss != testIssuer || c.Issuer != testIssuer || !containsClient(c.Audience) {
			t.Fatalf("accepted a token for iss %q aud %s", claims.Iss, claims.Aud)
		}
		if claims.Nonce != nil || claims.Hash != nil {
			t.Fatal("accepted an ID token as an access token")
		}
	})
}

func containsClient(aud Audience) bool {
	for _, a := range aud {
		if a == testClient {
			return true
		}
	}
	return false
}

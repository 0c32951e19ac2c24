// Package oidctest is what the tests of the session packages share: a
// signer of provider tokens, genuine claims to sign, a fixed key set, and
// an OpenID provider on httptest (discovery, JWKS, a token endpoint that
// answers what the test sets). The full FusionAuth stand-in is package idp.
package oidctest

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"maps"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
)

// The issuer and client of Claims.
const (
	Issuer = "http://idp.test"
	Client = "e9fdb985-9173-4e01-9d73-ac2d60d1dc8e"
)

// Signer signs tokens as a provider does, with an RSA key under Kid.
type Signer struct {
	Kid  string
	Priv *rsa.PrivateKey
	Pub  jwk.Key // the public key, as the provider's JWKS lists it (alg RS256)
}

// NewSigner returns a Signer with a fresh key.
func NewSigner(t testing.TB, kid string) *Signer {
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
	return &Signer{Kid: kid, Priv: priv, Pub: pub}
}

// Sign makes a JWT (RS256, typ JWT, kid) with the given claims and extra
// header fields.
func (s *Signer) Sign(t testing.TB, claims map[string]any, header map[string]any) string {
	t.Helper()
	payload, _ := json.Marshal(claims)
	hdr := jws.NewHeaders()
	_ = hdr.Set("kid", s.Kid)
	_ = hdr.Set("typ", "JWT")
	for k, v := range header {
		_ = hdr.Set(k, v)
	}
	out, err := jws.Sign(payload, jws.WithKey(jwa.RS256(), s.Priv, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// Claims are genuine access-token claims from Issuer for Client, issued at
// now, for two minutes.
func Claims(now time.Time) map[string]any {
	return map[string]any{
		"iss": Issuer, "aud": Client, "sub": "user-1",
		"iat": now.Unix(), "exp": now.Add(2 * time.Minute).Unix(), "auth_time": now.Unix(),
	}
}

// With returns a copy of m with the pairs kv set (a nil value deletes).
func With(m map[string]any, kv ...any) map[string]any {
	out := maps.Clone(m)
	if out == nil {
		out = map[string]any{}
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

// ErrUnknownKey is StaticKeys' answer for a kid it does not hold.
var ErrUnknownKey = errors.New("oidctest: no such kid")

// StaticKeys is a key set of fixed keys by kid.
type StaticKeys map[string]jwk.Key

// LookupKey returns the key under kid.
func (s StaticKeys) LookupKey(_ context.Context, kid string) (jwk.Key, error) {
	if k, ok := s[kid]; ok {
		return k, nil
	}
	return nil, ErrUnknownKey
}

// Keys returns every key of the set.
func (s StaticKeys) Keys(context.Context) ([]jwk.Key, error) {
	keys := make([]jwk.Key, 0, len(s))
	for _, k := range s {
		keys = append(keys, k)
	}
	return keys, nil
}

// Provider is an OpenID provider on httptest: discovery, a JWKS with the
// keys given, and a token endpoint that answers what the test sets
// (Answer). Its issuer is its URL.
type Provider struct {
	URL  string
	Algs []string // id_token_signing_alg_values_supported; nil leaves it out

	mu     sync.Mutex
	status int
	body   map[string]any
}

// NewProvider starts a Provider serving keys, closed when t ends.
func NewProvider(t testing.TB, algs []string, keys ...jwk.Key) *Provider {
	t.Helper()
	f := &Provider{Algs: algs, status: http.StatusOK}
	set := jwk.NewSet()
	for _, k := range keys {
		_ = set.AddKey(k)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, _ *http.Request) {
		doc := map[string]any{
			"issuer": f.URL, "authorization_endpoint": f.URL + "/authorize",
			"token_endpoint": f.URL + "/token", "jwks_uri": f.URL + "/jwks",
		}
		if f.Algs != nil {
			doc["id_token_signing_alg_values_supported"] = f.Algs
		}
		_ = json.NewEncoder(w).Encode(doc)
	})
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, _ *http.Request) { _ = json.NewEncoder(w).Encode(set) })
	mux.HandleFunc("POST /token", func(w http.ResponseWriter, _ *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(f.status)
		_ = json.NewEncoder(w).Encode(f.body)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	f.URL = srv.URL
	return f
}

// Answer sets what the token endpoint answers.
func (f *Provider) Answer(status int, body map[string]any) {
	f.mu.Lock()
	f.status, f.body = status, body
	f.mu.Unlock()
}

// ClaimsFor are genuine claims for a token from f, issued at now.
func (f *Provider) ClaimsFor(now time.Time) map[string]any {
	return With(Claims(now), "iss", f.URL)
}

// ManualClock is a clock that moves only when a test advances it. At is
// where it starts; read it with Now.
type ManualClock struct {
	mu sync.Mutex
	At time.Time
}

// Now returns the clock's time.
func (c *ManualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.At
}

// Advance moves the clock on by d.
func (c *ManualClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.At = c.At.Add(d)
	c.mu.Unlock()
}

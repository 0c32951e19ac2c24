package oidc

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
)

// The OpenID Foundation's conformance suite tests a relying party by
// playing a provider that misbehaves in one way per test
// (openid-certification/conformance-suite: OIDCCClientBasicTestPlan,
// OIDCCClientConfigTestPlan, OIDCCClientTestPlan). The tests below re-make
// each misbehaviour that concerns the ID token and the key set, one case
// per suite test, named as the suite names it: the ID token goes through
// the same check a login or refresh makes (Verifier.idToken), its keys come
// from a JWKS served over HTTP through RemoteKeySet.

// syncBuffer is a log sink tests read while the code under test writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// rawJWKS serves a key set written by hand, members the app cannot use included.
func rawJWKS(t *testing.T, members ...any) string {
	t.Helper()
	body, err := json.Marshal(map[string]any{"keys": members})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// remoteVerifier is a Verifier over the key set served at url.
func remoteVerifier(t *testing.T, url string, now time.Time, log *slog.Logger) (*Verifier, error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ks, err := newRemoteKeySet(ctx, url, &http.Client{Timeout: 2 * time.Second}, func() time.Time { return now }, log)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { _ = ks.Close() })
	return NewVerifier(ks, Profile{Issuer: testIssuer, ClientID: testClient}, func() time.Time { return now }), nil
}

// publicJWK is s's public key as a JWKS member, without kid when kid is "".
func publicJWK(t *testing.T, key any, kid string) map[string]any {
	t.Helper()
	k, err := jwk.Import(key)
	if err != nil {
		t.Fatal(err)
	}
	if kid != "" {
		_ = k.Set(jwk.KeyIDKey, kid)
	}
	b, _ := json.Marshal(k)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return m
}

// signNoKid signs claims with RS256 and no kid in the header.
func signNoKid(t *testing.T, s *testSigner, claims map[string]any) string {
	t.Helper()
	payload, _ := json.Marshal(claims)
	hdr := jws.NewHeaders()
	_ = hdr.Set("typ", "JWT")
	out, err := jws.Sign(payload, jws.WithKey(jwa.RS256(), s.Priv, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// Members a provider may publish that this app cannot check signatures
// with: the suite's default key set holds a secp256k1 key; newer sets hold
// post-quantum (AKP) keys; and a type nobody knows yet.
func unusableMembers() []any {
	b64 := func(n int) string { return base64.RawURLEncoding.EncodeToString(bytes.Repeat([]byte{7}, n)) }
	return []any{
		map[string]any{"kty": "EC", "crv": "secp256k1", "kid": "k256", "use": "sig", "alg": "ES256K", "x": b64(32), "y": b64(32)},
		map[string]any{"kty": "AKP", "alg": "ML-DSA-44", "kid": "pq", "pub": b64(1312)},
		map[string]any{"kty": "made-up", "kid": "mystery", "use": "sig"},
	}
}

func idClaims(now time.Time) map[string]any {
	return with(goodClaims(now), "nonce", "n-1")
}

func TestOpenIDClientConformance(t *testing.T) {
	now := time.Now()
	signer := newTestSigner(t, "k1")
	other := newTestSigner(t, "k2")
	ecPriv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	single := rawJWKS(t, publicJWK(t, &signer.Priv.PublicKey, "k1"))
	singleNoKid := rawJWKS(t, publicJWK(t, &signer.Priv.PublicKey, ""))
	twoNoKid := rawJWKS(t, publicJWK(t, &signer.Priv.PublicKey, ""), publicJWK(t, &other.Priv.PublicKey, ""))
	withUnusable := rawJWKS(t, append(unusableMembers(), publicJWK(t, &signer.Priv.PublicKey, "k1"))...)
	withEC := rawJWKS(t, publicJWK(t, &signer.Priv.PublicKey, "k1"), publicJWK(t, &ecPriv.PublicKey, "ec1"))

	// An HS256 token MACed with the provider's public key, and an ES256
	// token whose signature is broken.
	pubDER, _ := x509.MarshalPKIXPublicKey(&signer.Priv.PublicKey)
	hsInput := strings.Join(strings.Split(unsigned(map[string]any{"alg": "HS256", "kid": "k1"}, idClaims(now), ""), ".")[:2], ".")
	mac := hmac.New(sha256.New, pubDER)
	mac.Write([]byte(hsInput))
	hs256 := hsInput + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
	payload, _ := json.Marshal(idClaims(now))
	ecHdr := jws.NewHeaders()
	_ = ecHdr.Set("kid", "ec1")
	es256, err := jws.Sign(payload, jws.WithKey(jwa.ES256(), ecPriv, jws.WithProtectedHeaders(ecHdr)))
	if err != nil {
		t.Fatal(err)
	}
	badES256 := flipSignature(string(es256))
	badRS256 := flipSignature(signer.Sign(t, idClaims(now), nil))

	cases := []struct {
		suite  string // the suite's test name
		jwks   string
		token  string
		nonce  string
		accept bool
	}{
		{"oidcc-client-test", single, signer.Sign(t, idClaims(now), nil), "n-1", true},
		{"oidcc-client-test-idtoken-sig-rs256", single, signer.Sign(t, idClaims(now), nil), "n-1", true},
		{"oidcc-client-test-missing-iat", single, signer.Sign(t, with(idClaims(now), "iat", nil), nil), "n-1", false},
		{"oidcc-client-test-kid-absent-single-jwks", singleNoKid, signNoKid(t, signer, idClaims(now)), "n-1", true},
		{"oidcc-client-test-kid-absent-multiple-jwks", twoNoKid, signNoKid(t, signer, idClaims(now)), "n-1", false},
		{"oidcc-client-test-ignores-unparseable-key-in-jwks (secp256k1, AKP, made-up kty)", withUnusable, signer.Sign(t, idClaims(now), nil), "n-1", true},
		{"oidcc-client-test-invalid-iss", single, signer.Sign(t, with(idClaims(now), "iss", "https://evil.test"), nil), "n-1", false},
		{"oidcc-client-test-missing-sub", single, signer.Sign(t, with(idClaims(now), "sub", nil), nil), "n-1", false},
		{"oidcc-client-test-invalid-aud", single, signer.Sign(t, with(idClaims(now), "aud", "another-client"), nil), "n-1", false},
		{"oidcc-client-test-missing-aud", single, signer.Sign(t, with(idClaims(now), "aud", nil), nil), "n-1", false},
		{"oidcc-client-test-idtoken-sig-none", single, unsigned(map[string]any{"alg": "none", "kid": "k1"}, idClaims(now), ""), "n-1", false},
		{"oidcc-client-test-invalid-sig-rs256", single, badRS256, "n-1", false},
		{"oidcc-client-test-invalid-sig-hs256", single, hs256, "n-1", false},
		{"oidcc-client-test-invalid-sig-es256", withEC, badES256, "n-1", false},
		{"oidcc-client-test-nonce-invalid", single, signer.Sign(t, idClaims(now), nil), "n-other", false},
		{"oidcc-client-test-expired-id-token", single, signer.Sign(t, with(idClaims(now), "exp", now.Add(-time.Hour).Unix()), nil), "n-1", false},
		// At a refresh the ID token is checked the same way, without nonce.
		{"oidcc-client-test-refresh-token-invalid-issuer", single, signer.Sign(t, with(goodClaims(now), "iss", "https://evil.test"), nil), "", false},
		{"oidcc-client-test-refresh-token-invalid-aud", single, signer.Sign(t, with(goodClaims(now), "aud", "another-client"), nil), "", false},
		{"oidcc-client-test-refresh-token-invalid-azp", single, signer.Sign(t, with(goodClaims(now), "azp", "another-client"), nil), "", false},
	}
	for _, tc := range cases {
		t.Run(tc.suite, func(t *testing.T) {
			v, err := remoteVerifier(t, tc.jwks, now, discard)
			if err != nil {
				t.Fatalf("the key set was refused: %v", err)
			}
			c, err := v.IDToken(context.Background(), tc.token, tc.nonce)
			switch {
			case tc.accept && (err != nil || c.Subject != "user-1"):
				t.Fatalf("a good ID token was refused: %v", err)
			case !tc.accept && (err == nil || c != nil && !errors.Is(err, ErrExpired)):
				t.Fatalf("accepted: %+v, %v", c, err)
			case !tc.accept && !errors.Is(err, ErrInvalidToken) && !errors.Is(err, ErrExpired):
				t.Fatalf("refused, but not as an invalid token (the user would be told to try again): %v", err)
			}
		})
	}
}

// flipSignature changes one character of a JWS's signature.
func flipSignature(token string) string {
	b := []byte(token)
	i := len(b) - 5
	b[i] = map[bool]byte{true: 'B', false: 'A'}[b[i] == 'A']
	return string(b)
}

func TestKeySetSkipsMembersItCannotUseOneLogLineEach(t *testing.T) {
	now := time.Now()
	signer := newTestSigner(t, "k1")
	members := append(unusableMembers(),
		map[string]any{"kty": "oct", "kid": "shared", "k": "c2VjcmV0"},
		with(publicJWK(t, &signer.Priv.PublicKey, "enc1"), "use", "enc"),
		publicJWK(t, &signer.Priv.PublicKey, "k1"))
	url := rawJWKS(t, members...)
	logs := &syncBuffer{}
	v, err := remoteVerifier(t, url, now, slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatalf("one usable key among unusable ones: the set was refused: %v", err)
	}
	if _, err := v.IDToken(context.Background(), signer.Sign(t, idClaims(now), nil), "n-1"); err != nil {
		t.Fatal(err)
	}
	// A refetch (here for an unknown kid) logs nothing again.
	_, _ = v.keys.LookupKey(context.Background(), "made-up")
	for _, want := range []string{
		"kid=k256 kty=EC crv=secp256k1", "kid=pq kty=AKP", "kid=mystery kty=made-up",
		"kid=shared kty=oct", "kid=enc1 kty=RSA",
	} {
		if n := strings.Count(logs.String(), want); n != 1 {
			t.Errorf("%d log lines for %q, want 1:\n%s", n, want, logs)
		}
	}
	if n := strings.Count(logs.String(), "JWKS member skipped"); n != 5 {
		t.Errorf("%d skip lines, want 5:\n%s", n, logs)
	}
	if strings.Contains(logs.String(), "c2VjcmV0") {
		t.Error("the log shows key material")
	}
}

func TestKeySetWithNoUsableSigningKeyIsNotReady(t *testing.T) {
	url := rawJWKS(t, unusableMembers()...)
	start := time.Now()
	_, err := remoteVerifier(t, url, start, discard)
	if !errors.Is(err, errNoSigningKey) {
		t.Fatalf("a key set with nothing usable: %v, want errNoSigningKey", err)
	}
	if time.Since(start) > time.Second { // a hang, not a speed check: the fetch answered at once
		t.Fatalf("refusing the set took %s: it waited for a timeout instead of saying why", time.Since(start))
	}
	// The provider stays not ready, and says so where an operator looks.
	srv := discoveryServer(t, func(self string) map[string]any {
		return map[string]any{"issuer": self, "authorization_endpoint": self + "/authorize", "token_endpoint": self + "/token", "jwks_uri": url}
	})
	p := startProvider(t, Profile{Issuer: srv.URL})
	waitProblem(t, p, "holds no key this app can check signatures with")
}

// discoveryServer serves a discovery document doc(its own URL) makes.
func discoveryServer(t *testing.T, doc func(self string) map[string]any) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	self := "http://" + srv.Listener.Addr().String()
	srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/.well-known/openid-configuration" {
			http.NotFound(w, r)
			return
		}
		_ = json.NewEncoder(w).Encode(doc(self))
	})
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

func startProvider(t *testing.T, profile Profile) *Provider {
	t.Helper()
	return startProviderLogging(t, profile, discard)
}

func startProviderLogging(t *testing.T, profile Profile, log *slog.Logger) *Provider {
	t.Helper()
	p := NewProvider(profile, &http.Client{Timeout: time.Second}, time.Now, log)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go p.Start(ctx)
	return p
}

// waitProblem waits for the provider to name a problem holding want.
func waitProblem(t *testing.T, p *Provider, want ...string) string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second) // a hang, not a speed check
	for time.Now().Before(deadline) {
		if got := p.Problem(); got != "" {
			for _, w := range want {
				if !strings.Contains(got, w) {
					t.Fatalf("problem %q lacks %q", got, w)
				}
			}
			if p.Ready() {
				t.Fatal("ready despite the problem")
			}
			return got
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no problem named; want one holding %q", want)
	return ""
}

func TestDiscoveryIssuerMismatchIsNamed(t *testing.T) {
	// oidcc-client-test-discovery-issuer-mismatch: the document names
	// another issuer than the one configured.
	srv := discoveryServer(t, func(self string) map[string]any {
		return map[string]any{"issuer": "https://impostor.test/", "authorization_endpoint": self + "/authorize", "token_endpoint": self + "/token", "jwks_uri": self + "/jwks"}
	})
	logs := &syncBuffer{}
	p := startProviderLogging(t, Profile{Issuer: srv.URL}, slog.New(slog.NewTextHandler(logs, nil)))
	waitProblem(t, p, fmt.Sprintf("%q", "https://impostor.test/"), fmt.Sprintf("%q", srv.URL))
	for _, want := range []string{"impostor.test", srv.URL} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("the log does not name %s:\n%s", want, logs)
		}
	}
}

func TestHTTPSAppRefusesPlainHTTPEndpoints(t *testing.T) {
	signer := newTestSigner(t, "k1")
	keys := rawJWKS(t, publicJWK(t, &signer.Priv.PublicKey, "k1"))
	// The provider runs on loopback in the test, so it names its token
	// endpoint on a remote-looking host to be refused.
	srv := discoveryServer(t, func(self string) map[string]any {
		return map[string]any{"issuer": self, "authorization_endpoint": self + "/authorize",
			"token_endpoint": "http://idp.example/token", "jwks_uri": keys, "userinfo_endpoint": "https://idp.example/userinfo"}
	})
	p := startProvider(t, Profile{Issuer: srv.URL, RequireHTTPS: true})
	waitProblem(t, p, "token_endpoint http://idp.example/token", "https")
	if got := p.Problem(); strings.Contains(got, "userinfo") || strings.Contains(got, "jwks_uri") || strings.Contains(got, "authorization_endpoint") {
		t.Errorf("an https or loopback endpoint was named: %s", got)
	}

	// The same provider for an http app is fine.
	p = startProvider(t, Profile{Issuer: srv.URL})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.WaitReady(ctx); err != nil || p.Problem() != "" {
		t.Errorf("http app: %v %q", err, p.Problem())
	}
	// Endpoints moved onto the operator's own InternalURL (compose's
	// private network) are the operator's choice; the others still count.
	m := Metadata{AuthorizationEndpoint: "https://id.example/authorize", TokenEndpoint: "http://fusionauth:9011/oauth2/token",
		JWKSURI: "http://fusionauth:9011/.well-known/jwks.json", RevocationEndpoint: "http://elsewhere.example/revoke"}
	bad := Profile{Issuer: "https://id.example", InternalURL: "http://fusionauth:9011", RequireHTTPS: true}.plainEndpoints(m)
	if len(bad) != 1 || !strings.HasPrefix(bad[0], "revocation_endpoint") {
		t.Errorf("with InternalURL: %q", bad)
	}
}

func TestLoopback(t *testing.T) {
	for host, want := range map[string]bool{
		"localhost": true, "LOCALHOST": true, "app.localhost": true, "127.0.0.1": true, "127.8.9.10": true, "::1": true, "[::1]": true,
		"localhost.evil.test": false, "idp.example": false, "10.0.0.1": false, "fusionauth": false, "": false,
	} {
		if Loopback(host) != want {
			t.Errorf("Loopback(%q) = %v", host, !want)
		}
	}
}

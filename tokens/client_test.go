package tokens

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
	"golang.org/x/oauth2"
)

// fakeProvider is an OIDC provider on httptest: discovery, a JWKS with the
// keys given, and a token endpoint that answers what the test sets.
type fakeProvider struct {
	srv  *httptest.Server
	algs []string // id_token_signing_alg_values_supported; nil leaves it out

	mu     sync.Mutex
	status int
	body   map[string]any
}

func newFakeProvider(t *testing.T, algs []string, keys ...jwk.Key) *fakeProvider {
	t.Helper()
	f := &fakeProvider{algs: algs, status: http.StatusOK}
	set := jwk.NewSet()
	for _, k := range keys {
		_ = set.AddKey(k)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, _ *http.Request) {
		doc := map[string]any{
			"issuer": f.srv.URL, "authorization_endpoint": f.srv.URL + "/authorize",
			"token_endpoint": f.srv.URL + "/token", "jwks_uri": f.srv.URL + "/jwks",
		}
		if f.algs != nil {
			doc["id_token_signing_alg_values_supported"] = f.algs
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
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

// answer sets what the token endpoint answers.
func (f *fakeProvider) answer(status int, body map[string]any) {
	f.mu.Lock()
	f.status, f.body = status, body
	f.mu.Unlock()
}

// provider returns a discovered Provider for f.
func (f *fakeProvider) provider(t *testing.T) *Provider {
	t.Helper()
	p := NewProvider(Profile{Issuer: f.srv.URL}, &http.Client{Timeout: 2 * time.Second}, time.Now, discard)
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

// manager returns a Manager on f, logging into log.
func (f *fakeProvider) manager(t *testing.T, log *slog.Logger) (*Manager, *CookieStore) {
	p := f.provider(t)
	cookies := NewCookieStore("http://app.test", mustSealer(t, secretA))
	client := NewClient(p, ClientConfig{ID: testClient, Secret: "s3cret", AppURL: "http://app.test"}, nil)
	return NewManager(cookies, client, NewVerifier(p, Profile{Issuer: f.srv.URL, ClientID: testClient}, time.Now), time.Hour, time.Now, log), cookies
}

// claimsFor are genuine claims for a token from f.
func (f *fakeProvider) claimsFor(now time.Time) map[string]any {
	return with(goodClaims(now), "iss", f.srv.URL)
}

// sealedCookie seals v for the cookie base as the app would.
func sealedCookie(t *testing.T, c *CookieStore, base string, v any) *http.Cookie {
	t.Helper()
	sealed, err := c.seal(base, v)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Cookie{Name: c.Name(base), Value: sealed}
}

func TestAnIDTokenIsNeverAnAccessToken(t *testing.T) {
	now := time.Now()
	signer := newTestSigner(t, "k1")
	f := newFakeProvider(t, nil, signer.pub)
	m, cookies := f.manager(t, discard)
	// As a certified provider's token endpoint issues it: nonce, no at_hash.
	idToken := signer.sign(t, with(f.claimsFor(now), "nonce", "n-1", "email", "r@example.com"), nil)

	t.Run("as Bearer", func(t *testing.T) {
		if c, err := m.verifier.AccessToken(context.Background(), idToken); !errors.Is(err, errInvalidToken) || c != nil {
			t.Fatalf("an ID token was taken as an access token: %+v, %v", c, err)
		}
	})
	t.Run("as the access cookie", func(t *testing.T) {
		req := httptest.NewRequest(http.MethodGet, "/account", nil)
		req.AddCookie(&http.Cookie{Name: cookies.Name(AccessCookie), Value: idToken})
		req.AddCookie(sealedCookie(t, cookies, UserInfoCookie, UserInfo{Subject: "user-1", LoginID: "l", LoginAt: now.Unix(), Expires: now.Add(time.Hour).Unix()}))
		if s, err := m.Load(context.Background(), httptest.NewRecorder(), req); !errors.Is(err, ErrNoSession) {
			t.Fatalf("a session was served on an ID token: %+v, %v", s, err)
		}
	})
}

func TestAccessTokensTypedAtJWTAreRequiredOnceSeen(t *testing.T) {
	now := time.Now()
	signer := newTestSigner(t, "k1")
	v := NewVerifier(staticKeys{"k1": signer.pub}, Profile{Issuer: testIssuer, ClientID: testClient}, func() time.Time { return now })
	ctx := context.Background()
	plain := signer.sign(t, goodClaims(now), nil) // typ JWT
	if _, err := v.AccessToken(ctx, plain); err != nil {
		t.Fatalf("before any at+jwt token, typ JWT is an access token: %v", err)
	}
	// A forged at+jwt token teaches nothing: only the provider's signature counts.
	forged := newTestSigner(t, "k1").sign(t, goodClaims(now), map[string]any{"typ": "at+jwt"})
	if _, err := v.AccessToken(ctx, forged); err == nil {
		t.Fatal("a forged token was accepted")
	}
	if _, err := v.AccessToken(ctx, plain); err != nil {
		t.Fatalf("a forged at+jwt token made the verifier require at+jwt: %v", err)
	}
	for _, typ := range []string{"at+jwt", "application/at+jwt", "AT+JWT"} {
		if _, err := v.AccessToken(ctx, signer.sign(t, goodClaims(now), map[string]any{"typ": typ})); err != nil {
			t.Fatalf("typ %s: %v", typ, err)
		}
	}
	// Sent as Bearer tokens, genuine at+jwt tokens teach nothing either:
	// only the token endpoint's answer to this app does.
	if _, err := v.AccessToken(ctx, plain); err != nil {
		t.Fatalf("Bearer at+jwt tokens made the verifier require at+jwt: %v", err)
	}
	if _, err := v.tokenEndpointAccess(ctx, signer.sign(t, goodClaims(now), map[string]any{"typ": "at+jwt"})); err != nil {
		t.Fatal(err)
	}
	cases := map[string]string{
		"typ JWT":    plain,
		"typ absent": unsignedTyp(t, signer, goodClaims(now)),
	}
	for name, token := range cases {
		t.Run(name, func(t *testing.T) {
			if c, err := v.AccessToken(ctx, token); !errors.Is(err, errInvalidToken) || c != nil {
				t.Fatalf("after an at+jwt token, a %s token was taken as an access token: %v", name, err)
			}
		})
	}
	// An at+jwt token is never an ID token.
	if _, err := v.idToken(ctx, signer.sign(t, goodClaims(now), map[string]any{"typ": "at+jwt"}), ""); !errors.Is(err, errInvalidToken) {
		t.Fatalf("an at+jwt token was taken as an ID token: %v", err)
	}
}

// unsignedTyp signs claims with a header that has no typ at all.
func unsignedTyp(t *testing.T, s *testSigner, claims map[string]any) string {
	t.Helper()
	payload, _ := json.Marshal(claims)
	hdr := jws.NewHeaders()
	_ = hdr.Set("kid", s.kid)
	out, err := jws.Sign(payload, jws.WithKey(jwa.RS256(), s.priv, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func TestVerifierRefusesOddHeaders(t *testing.T) {
	now := time.Now()
	signer := newTestSigner(t, "k1")
	v := NewVerifier(staticKeys{"k1": signer.pub}, Profile{Issuer: testIssuer, ClientID: testClient}, func() time.Time { return now })
	cases := map[string]map[string]any{
		// RFC 7515 4.1.11: an extension this app does not understand.
		"unknown crit extension": {"crit": []string{"exp-ext"}, "exp-ext": 1},
		"typ dpop+jwt":           {"typ": "dpop+jwt"},
		"typ JOSE":               {"typ": "JOSE"},
	}
	for name, hdr := range cases {
		t.Run(name, func(t *testing.T) {
			if c, err := v.AccessToken(context.Background(), signer.sign(t, goodClaims(now), hdr)); !errors.Is(err, errInvalidToken) || c != nil {
				t.Fatalf("a correctly signed token with %s was accepted: %v", name, err)
			}
		})
	}
}

func TestFailedValidationReturnsNoClaims(t *testing.T) {
	now := time.Now()
	signer := newTestSigner(t, "k1")
	v := NewVerifier(staticKeys{"k1": signer.pub}, Profile{Issuer: testIssuer, ClientID: testClient}, func() time.Time { return now })
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
			token := signer.sign(t, claims, nil)
			if c, err := v.AccessToken(context.Background(), token); err == nil || c != nil {
				t.Fatalf("AccessToken = %+v, %v: want no claims", c, err)
			}
			if c, err := v.idToken(context.Background(), token, ""); err == nil || c != nil {
				t.Fatalf("idToken = %+v, %v: want no claims", c, err)
			}
		})
	}
	// The one exception: genuine but expired, so that the caller can refresh.
	c, err := v.AccessToken(context.Background(), signer.sign(t, with(good, "exp", now.Add(-time.Hour).Unix()), nil))
	if !errors.Is(err, errExpired) || c == nil || c.Subject != "user-1" {
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
	rsaKey := keyWithoutAlg(t, "rsa", &rsaSigner.priv.PublicKey)
	ecKey := keyWithoutAlg(t, "ec", &ec256.PublicKey)

	// HS256 under the RSA key's public bytes, and alg none, built by hand.
	hsHeader := map[string]any{"alg": "HS256", "typ": "JWT", "kid": "rsa"}

	for _, tc := range []struct {
		name  string
		algs  []string // the provider's discovery list
		token func(claims map[string]any) string
		ok    bool
	}{
		{"RS256, discovery lists nothing", nil, func(c map[string]any) string { return signWith(t, jwa.RS256(), rsaSigner.priv, "rsa", c) }, true},
		{"PS384 listed", []string{"RS256", "PS384"}, func(c map[string]any) string { return signWith(t, jwa.PS384(), rsaSigner.priv, "rsa", c) }, true},
		{"ES256 on P-256, listed", []string{"RS256", "ES256"}, func(c map[string]any) string { return signWith(t, jwa.ES256(), ec256, "ec", c) }, true},
		{"ES256, discovery lists nothing (RS256 only)", nil, func(c map[string]any) string { return signWith(t, jwa.ES256(), ec256, "ec", c) }, true},
		{"ES256, discovery lists RS256 for ID tokens", []string{"RS256"}, func(c map[string]any) string { return signWith(t, jwa.ES256(), ec256, "ec", c) }, true},
		{"RS512 not listed", []string{"RS256"}, func(c map[string]any) string { return signWith(t, jwa.RS512(), rsaSigner.priv, "rsa", c) }, true},
		{"ES384 on a P-256 key", []string{"ES256", "ES384"}, func(c map[string]any) string { return forgeAlg(t, "ES384", "ec", c) }, false},
		{"ES256 on an RSA key", []string{"RS256", "ES256"}, func(c map[string]any) string { return forgeAlg(t, "ES256", "rsa", c) }, false},
		{"HS256 listed", []string{"RS256", "HS256"}, func(c map[string]any) string { return unsigned(hsHeader, c, "c2ln") }, false},
		{"alg none listed", []string{"RS256", "none"}, func(c map[string]any) string {
			return unsigned(map[string]any{"alg": "none", "typ": "JWT", "kid": "rsa"}, c, "")
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeProvider(t, tc.algs, rsaKey, ecKey)
			v := NewVerifier(f.provider(t), Profile{Issuer: f.srv.URL, ClientID: testClient}, time.Now)
			c, err := v.AccessToken(context.Background(), tc.token(f.claimsFor(now)))
			if tc.ok && (err != nil || c.Subject != "user-1") {
				t.Fatalf("refused: %v", err)
			}
			if !tc.ok && !errors.Is(err, errInvalidToken) {
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

func TestTokenEndpointRefusalsAreToldApart(t *testing.T) {
	signer := newTestSigner(t, "k1")
	f := newFakeProvider(t, nil, signer.pub)
	m, _ := f.manager(t, discard)
	now := time.Now()

	// login starts a login and returns the callback request that would come back.
	login := func(t *testing.T) *http.Request {
		rec := httptest.NewRecorder()
		authURL, err := m.BeginLogin(rec, httptest.NewRequest(http.MethodGet, "/login", nil), "/account")
		if err != nil {
			t.Fatal(err)
		}
		u, _ := url.Parse(authURL)
		req := httptest.NewRequest(http.MethodGet, "/callback?code=the-code&state="+url.QueryEscape(u.Query().Get("state")), nil)
		for _, c := range rec.Result().Cookies() {
			req.AddCookie(c)
		}
		return req
	}

	for _, tc := range []struct {
		name    string
		status  int
		body    map[string]any
		login   error // what FinishLogin returns
		refresh error // what Refresh returns
	}{
		{"invalid_grant", 400, map[string]any{"error": "invalid_grant", "error_description": "the code is unknown, used or expired"},
			ErrBadCallback, ErrNoSession},
		{"invalid_client", 401, map[string]any{"error": "invalid_client", "error_description": "client authentication failed"},
			&ProviderError{}, ErrNoSession},
		{"server_error", 503, map[string]any{"error": "server_error", "error_description": "database down"},
			ErrProviderUnavailable, ErrProviderUnavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f.answer(tc.status, tc.body)
			desc := tc.body["error_description"].(string)

			_, err := m.FinishLogin(context.Background(), httptest.NewRecorder(), login(t))
			var pe *ProviderError
			if _, want := tc.login.(*ProviderError); want {
				if !errors.As(err, &pe) || pe.Code != tc.body["error"] {
					t.Fatalf("login: %v, want a *ProviderError %s", err, tc.body["error"])
				}
			} else if !errors.Is(err, tc.login) {
				t.Fatalf("login: %v, want %v", err, tc.login)
			}
			var re *oauth2.RetrieveError
			if !errors.As(err, &re) || re.ErrorCode != tc.body["error"] {
				t.Fatalf("login: the *oauth2.RetrieveError is not in the chain: %v", err)
			}
			if msg := err.Error(); !strings.Contains(msg, "authorization code") || strings.Contains(msg, "refresh token") || !strings.Contains(msg, desc) {
				t.Fatalf("login error text: %q", msg)
			}

			// One token per case: a refused one is never sent again (shield.go).
			s := &Session{RefreshToken: "the-refresh-token-" + tc.name, User: UserInfo{Subject: "user-1"}, Expires: now.Add(time.Hour)}
			err = m.Refresh(context.Background(), httptest.NewRecorder(), s)
			if !errors.Is(err, tc.refresh) || !errors.As(err, &re) {
				t.Fatalf("refresh: %v, want %v with the RetrieveError", err, tc.refresh)
			}
			if msg := err.Error(); !strings.Contains(msg, "refresh token") || !strings.Contains(msg, desc) {
				t.Fatalf("refresh error text: %q", msg)
			}
		})
	}
}

func TestPagesGreetByNameEvenWithoutTheNameClaim(t *testing.T) {
	signer := newTestSigner(t, "k1")
	f := newFakeProvider(t, nil, signer.pub)
	m, _ := f.manager(t, discard)
	now := time.Now()
	for _, tc := range []struct {
		name    string
		profile []any // ID-token claims
		want    string
	}{
		{"name claim", []any{"name", "Richard Hendricks", "given_name", "Rich", "family_name", "H", "email", "r@example.com"}, "Richard Hendricks"},
		{"given and family name (FusionAuth without fullName)", []any{"given_name", "Richard", "family_name", "Hendricks", "email", "r@example.com"}, "Richard Hendricks"},
		{"given name only", []any{"given_name", "Richard", "email", "r@example.com"}, "Richard"},
		{"email only", []any{"email", "r@example.com"}, "r@example.com"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			authURL, err := m.BeginLogin(rec, httptest.NewRequest(http.MethodGet, "/login", nil), "/account")
			if err != nil {
				t.Fatal(err)
			}
			q := must(url.Parse(authURL)).Query()
			access := signer.sign(t, f.claimsFor(now), nil)
			id := signer.sign(t, with(f.claimsFor(now), append([]any{"nonce", q.Get("nonce")}, tc.profile...)...), nil)
			f.answer(http.StatusOK, map[string]any{"access_token": access, "id_token": id, "token_type": "Bearer", "expires_in": 120})
			req := httptest.NewRequest(http.MethodGet, "/callback?code=c&state="+url.QueryEscape(q.Get("state")), nil)
			for _, c := range rec.Result().Cookies() {
				req.AddCookie(c)
			}
			rec = httptest.NewRecorder()
			if _, err := m.FinishLogin(context.Background(), rec, req); err != nil {
				t.Fatal(err)
			}
			// What the next page reads: the sealed userinfo cookie.
			next := httptest.NewRequest(http.MethodGet, "/account", nil)
			for _, c := range rec.Result().Cookies() {
				next.AddCookie(c)
			}
			user, ok := m.User(next)
			if !ok || user.Name != tc.want {
				t.Fatalf("greeted as %q (%v), want %q", user.Name, ok, tc.want)
			}
		})
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

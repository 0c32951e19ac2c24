package tokens

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
	"golang.org/x/oauth2"

	"github.com/changebank/changebank/internal/oidctest"
	"github.com/changebank/changebank/tokens/cookie"
	"github.com/changebank/changebank/tokens/oidc"
)

// fakeProvider is an OIDC provider on httptest (oidctest.Provider): a
// test sets what its token endpoint answers.
type fakeProvider struct{ *oidctest.Provider }

func newFakeProvider(t *testing.T, algs []string, keys ...jwk.Key) *fakeProvider {
	t.Helper()
	return &fakeProvider{oidctest.NewProvider(t, algs, keys...)}
}

// answer sets what the token endpoint answers.
func (f *fakeProvider) answer(status int, body map[string]any) { f.Answer(status, body) }

// provider returns a discovered Provider for f.
func (f *fakeProvider) provider(t *testing.T) *oidc.Provider {
	t.Helper()
	return startProvider(t, oidc.Profile{Issuer: f.URL}, &http.Client{Timeout: 2 * time.Second}, time.Now)
}

// manager returns Sessions on f, logging into log, and its cookie store.
func (f *fakeProvider) manager(t *testing.T, log *slog.Logger) (*Sessions, *cookie.Store) {
	cfg := testConfig(f.URL)
	cfg.Logger = log
	m := testSessions(t, cfg, f.provider(t), nil)
	return m, m.cookies
}

// claimsFor are genuine claims for a token from f.
func (f *fakeProvider) claimsFor(now time.Time) map[string]any { return f.ClaimsFor(now) }

func TestAnIDTokenIsNeverAnAccessToken(t *testing.T) {
	now := time.Now()
	signer := newTestSigner(t, "k1")
	f := newFakeProvider(t, nil, signer.Pub)
	m, cookies := f.manager(t, discard)
	// As a certified provider's token endpoint issues it: nonce, no at_hash.
	idToken := signer.Sign(t, with(f.claimsFor(now), "nonce", "n-1", "email", "r@example.com"), nil)

	t.Run("as Bearer", func(t *testing.T) {
		if c, err := m.verifier.AccessToken(context.Background(), idToken); !errors.Is(err, oidc.ErrInvalidToken) || c != nil {
			t.Fatalf("an ID token was taken as an access token: %+v, %v", c, err)
		}
	})
	t.Run("as the access cookie", func(t *testing.T) {
		req := httptest.NewRequest(http.MethodGet, "/account", nil)
		req.AddCookie(&http.Cookie{Name: cookies.Name(cookie.Access), Value: idToken})
		req.AddCookie(sealedCookie(t, cookies, cookie.UserInfo, UserInfo{Subject: "user-1", LoginID: "l", LoginAt: now.Unix(), Expires: now.Add(time.Hour).Unix()}))
		if s, err := m.Load(context.Background(), httptest.NewRecorder(), req); !errors.Is(err, ErrNoSession) {
			t.Fatalf("a session was served on an ID token: %+v, %v", s, err)
		}
	})
}

func TestTokenEndpointRefusalsAreToldApart(t *testing.T) {
	signer := newTestSigner(t, "k1")
	f := newFakeProvider(t, nil, signer.Pub)
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
	f := newFakeProvider(t, nil, signer.Pub)
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
			access := signer.Sign(t, f.claimsFor(now), nil)
			id := signer.Sign(t, with(f.claimsFor(now), append([]any{"nonce", q.Get("nonce")}, tc.profile...)...), nil)
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

package tokens

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/changebank/changebank/tokens/cookie"
	"github.com/changebank/changebank/tokens/oidc"
)

// op is a small OpenID provider on httptest whose shape each test sets:
// an issuer with a path or a trailing slash, endpoints on another host,
// access tokens shaped like ID tokens, a userinfo endpoint, RFC 7009
// revocation. Its token endpoint answers the code and refresh grants with
// tokens made by the test's functions.
type op struct {
	t       *testing.T
	srv     *httptest.Server // serves the issuer's documents and the endpoints
	issuer  string
	signer  *testSigner
	tokenAt string // the token endpoint's URL, perhaps on another server

	access   func(nonce string) map[string]any // the access token's claims
	id       func(nonce string) map[string]any // the ID token's claims
	userinfo map[string]any                    // nil: no userinfo endpoint
	revocation,
	endSession bool
	noRefresh bool // the token endpoint issues no refresh token (no offline_access)
	// opaque, when set, makes the access tokens: opaque ones, which the ID
	// token's at_hash names unless badAtHash.
	opaque    func() string
	badAtHash bool

	mu            sync.Mutex
	nonce         string // the last authorization request's
	refreshErr    map[string]any
	refreshStatus int
	userinfoCalls atomic.Int32
	revoked       []string // the paths revocation calls reached
	revokedTokens []string // the tokens RFC 7009 revocation calls named
	jwksAt        string   // the jwks_uri discovery names
}

// newOP serves a provider whose issuer is the server's URL plus path.
func newOP(t *testing.T, path string, shape func(o *op)) *op {
	t.Helper()
	o := &op{t: t, signer: newTestSigner(t, "k1")}
	mux := http.NewServeMux()
	o.srv = httptest.NewServer(mux)
	t.Cleanup(o.srv.Close)
	o.issuer = o.srv.URL + path
	o.tokenAt = o.srv.URL + "/oauth/token"
	o.access = func(string) map[string]any { return o.claims() }
	o.id = func(nonce string) map[string]any {
		return with(o.claims(), "nonce", nonce, "email", "r@example.com", "name", "Richard Hendricks")
	}
	o.jwksAt = o.srv.URL + "/oauth/jwks"
	if shape != nil {
		shape(o)
	}
	base := strings.TrimSuffix(path, "/")
	mux.HandleFunc("GET "+base+"/.well-known/openid-configuration", func(w http.ResponseWriter, _ *http.Request) {
		doc := map[string]any{
			"issuer": o.issuer, "authorization_endpoint": o.srv.URL + "/oauth/authorize",
			"token_endpoint": o.tokenAt, "jwks_uri": o.jwksAt,
		}
		if o.userinfo != nil {
			doc["userinfo_endpoint"] = o.srv.URL + "/oauth/userinfo"
		}
		if o.revocation {
			doc["revocation_endpoint"] = o.srv.URL + "/oauth/revoke"
		}
		if o.endSession {
			doc["end_session_endpoint"] = o.srv.URL + "/oauth/logout"
		}
		_ = json.NewEncoder(w).Encode(doc)
	})
	jwks := func(w http.ResponseWriter, _ *http.Request) {
		set := jwk.NewSet()
		_ = set.AddKey(o.signer.Pub)
		_ = json.NewEncoder(w).Encode(set)
	}
	mux.HandleFunc("GET /oauth/jwks", jwks)
	mux.HandleFunc("GET /.well-known/jwks.json", jwks)
	mux.HandleFunc("POST /oauth/token", o.token)
	mux.HandleFunc("POST /oauth2/token", o.token)
	mux.HandleFunc("GET /oauth/userinfo", func(w http.ResponseWriter, r *http.Request) {
		o.userinfoCalls.Add(1)
		if !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		_ = json.NewEncoder(w).Encode(o.userinfo)
	})
	mux.HandleFunc("POST /oauth/revoke", func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		o.mu.Lock()
		o.revoked = append(o.revoked, r.URL.Path)
		o.revokedTokens = append(o.revokedTokens, r.PostForm.Get("token"))
		o.mu.Unlock()
	})
	mux.HandleFunc("DELETE /api/jwt/refresh", func(w http.ResponseWriter, r *http.Request) {
		o.mu.Lock()
		o.revoked = append(o.revoked, r.URL.Path)
		o.mu.Unlock()
	})
	return o
}

// fusionAuthPaths makes o name its token endpoint and keys where FusionAuth
// does (/oauth2/token, /.well-known/jwks.json).
func (o *op) fusionAuthPaths() {
	o.tokenAt, o.jwksAt = o.srv.URL+"/oauth2/token", o.srv.URL+"/.well-known/jwks.json"
}

// claims are genuine claims of a token from o, for the client.
func (o *op) claims() map[string]any {
	return with(goodClaims(time.Now()), "iss", o.issuer)
}

func (o *op) token(w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm()
	w.Header().Set("Content-Type", "application/json")
	o.mu.Lock()
	nonce, status, refusal := o.nonce, o.refreshStatus, o.refreshErr
	o.mu.Unlock()
	if r.PostForm.Get("grant_type") == "refresh_token" {
		nonce = ""
		if refusal != nil {
			w.WriteHeader(status)
			_ = json.NewEncoder(w).Encode(refusal)
			return
		}
	}
	access, id := "", o.id(nonce)
	if o.opaque != nil {
		access = o.opaque()
		sum := sha256.Sum256([]byte(access))
		if o.badAtHash {
			sum = sha256.Sum256([]byte("another token"))
		}
		id = with(id, "at_hash", base64.RawURLEncoding.EncodeToString(sum[:16]))
	} else {
		access = o.signer.Sign(o.t, o.access(nonce), nil)
	}
	answer := map[string]any{
		"access_token": access, "id_token": o.signer.Sign(o.t, id, nil),
		"refresh_token": "rt-" + rand.Text(), "token_type": "Bearer", "expires_in": 120, "scope": "openid email profile",
	}
	o.mu.Lock()
	if o.noRefresh {
		delete(answer, "refresh_token")
	}
	o.mu.Unlock()
	_ = json.NewEncoder(w).Encode(answer)
}

// refuseRefresh makes the token endpoint answer refresh grants with status and body.
func (o *op) refuseRefresh(status int, body map[string]any) {
	o.mu.Lock()
	o.refreshStatus, o.refreshErr = status, body
	o.mu.Unlock()
}

// app is this app on o: the profile's settings with o's issuer.
type app struct {
	m       *Sessions
	cookies *cookie.Store
	o       *op
}

// app returns Sessions on o with the settings cfg has (its Issuer and
// ClientID are o's), and the FusionAuth API key apiKey.
func (o *op) app(t *testing.T, cfg Config, apiKey string) *app {
	t.Helper()
	base := testConfig(o.issuer)
	cfg.Issuer, cfg.ClientID, cfg.ClientSecret, cfg.AppURL = base.Issuer, base.ClientID, base.ClientSecret, base.AppURL
	cfg.Secrets, cfg.RefreshTokenTTL, cfg.Logger, cfg.FusionAuthAPIKey = base.Secrets, base.RefreshTokenTTL, base.Logger, apiKey
	// AuthorizeParams reach the provider's profile unchecked, as a Profile
	// built in code does: what New refuses, the profile filters too.
	params := cfg.AuthorizeParams
	cfg.AuthorizeParams = nil
	profile := cfg.profile()
	profile.AuthorizeParams = params
	p := startProvider(t, profile, &http.Client{Timeout: 2 * time.Second}, time.Now)
	m := testSessions(t, cfg, p, nil)
	return &app{m: m, cookies: m.cookies, o: o}
}

// jar is a browser's cookies: what the app set, by name, with their paths.
type jar map[string]*http.Cookie

func (j jar) take(rec *httptest.ResponseRecorder) {
	for _, c := range rec.Result().Cookies() {
		if c.MaxAge < 0 {
			delete(j, c.Name)
		} else {
			j[c.Name] = c
		}
	}
}

// request carries the cookies a browser would send to path.
func (j jar) request(method, path string) *http.Request {
	r := httptest.NewRequest(method, path, nil)
	for _, c := range j {
		if c.Path == "" || c.Path == "/" || strings.HasPrefix(path, c.Path) {
			r.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
		}
	}
	return r
}

// login runs a whole login and returns the browser's cookies and the
// authorization URL the browser was sent to.
func (a *app) login(t *testing.T) (jar, *url.URL, error) {
	t.Helper()
	j := jar{}
	rec := httptest.NewRecorder()
	authURL, err := a.m.BeginLogin(rec, httptest.NewRequest(http.MethodGet, "/login", nil), "/account")
	if err != nil {
		t.Fatal(err)
	}
	j.take(rec)
	u := must(url.Parse(authURL))
	a.o.mu.Lock()
	a.o.nonce = u.Query().Get("nonce")
	a.o.mu.Unlock()
	rec = httptest.NewRecorder()
	_, err = a.m.FinishLogin(context.Background(), rec, j.request(http.MethodGet, "/callback?code=c&state="+url.QueryEscape(u.Query().Get("state"))))
	j.take(rec)
	return j, u, err
}

func TestAnIssuerWithAPathAndATrailingSlashIsKeptExactly(t *testing.T) {
	o := newOP(t, "/tenant/", nil)
	a := o.app(t, Config{}, "")
	if _, _, err := a.login(t); err != nil {
		t.Fatalf("login at an issuer with a path and a trailing slash: %v", err)
	}
	// The same tokens without the slash are another issuer's.
	c, err := a.m.verifier.AccessToken(context.Background(), o.signer.Sign(t, with(o.claims(), "iss", strings.TrimSuffix(o.issuer, "/")), nil))
	if !errors.Is(err, oidc.ErrInvalidToken) {
		t.Fatalf("iss without the trailing slash: %+v, %v", c, err)
	}
}

func TestEndpointsAreUsedAsDiscoveredUnlessInternalURLIsSet(t *testing.T) {
	// The token endpoint lives on another host than the issuer.
	var elsewhere atomic.Int32
	var o *op
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		elsewhere.Add(1)
		o.token(w, r)
	}))
	defer other.Close()
	o = newOP(t, "", func(o *op) { o.tokenAt = other.URL + "/token" })
	a := o.app(t, Config{}, "")
	if _, _, err := a.login(t); err != nil {
		t.Fatal(err)
	}
	if elsewhere.Load() != 1 {
		t.Fatalf("the token endpoint discovery names was called %d times", elsewhere.Load())
	}
}

func TestAudienceForAccessTokensClientIDForIDTokens(t *testing.T) {
	now := time.Now()
	signer := newTestSigner(t, "k1")
	const api = "https://api.example"
	v := oidc.NewVerifier(staticKeys{"k1": signer.Pub}, oidc.Profile{Issuer: testIssuer, ClientID: testClient, Audience: api}, func() time.Time { return now })
	ctx := context.Background()
	auth0 := []string{api, testIssuer + "/userinfo"}
	if _, err := v.AccessToken(ctx, signer.Sign(t, with(goodClaims(now), "aud", auth0), nil)); err != nil {
		t.Fatalf("an access token for the API, as Auth0 issues it: %v", err)
	}
	if _, err := v.AccessToken(ctx, signer.Sign(t, goodClaims(now), nil)); !errors.Is(err, oidc.ErrInvalidToken) {
		t.Fatalf("an access token for the client, not the API: %v", err)
	}
	if _, err := v.IDToken(ctx, signer.Sign(t, with(goodClaims(now), "nonce", "n"), nil), "n"); err != nil {
		t.Fatalf("an ID token for the client: %v", err)
	}
	if _, err := v.IDToken(ctx, signer.Sign(t, with(goodClaims(now), "nonce", "n", "aud", api), nil), "n"); !errors.Is(err, oidc.ErrInvalidToken) {
		t.Fatalf("an ID token for the API, not the client: %v", err)
	}
	// Several audiences, the client among them, but issued to another client (azp).
	if _, err := v.IDToken(ctx, signer.Sign(t, with(goodClaims(now), "nonce", "n", "aud", []string{testClient, "other"}, "azp", "other"), nil), "n"); !errors.Is(err, oidc.ErrInvalidToken) {
		t.Fatalf("an ID token whose azp is another client: %v", err)
	}
	if _, err := v.IDToken(ctx, signer.Sign(t, with(goodClaims(now), "nonce", "n", "aud", []string{testClient, api}, "azp", testClient), nil), "n"); err != nil {
		t.Fatalf("an ID token whose azp is this client: %v", err)
	}
}

func TestTheAuthorizationRequestCarriesScopesAndExtraParams(t *testing.T) {
	o := newOP(t, "", nil)
	a := o.app(t, Config{Scopes: []string{"openid", "offline_access"},
		AuthorizeParams: url.Values{"audience": {"https://api.example"}, "state": {"attacker"}, "Redirect_URI": {"https://evil.test"}}}, "")
	_, u, err := a.login(t)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	if q.Get("scope") != "openid offline_access" || q.Get("audience") != "https://api.example" {
		t.Fatalf("authorization request: %v", q)
	}
	if q.Get("state") == "attacker" || len(q["state"]) != 1 || q.Get("redirect_uri") != "http://app.test/callback" || q.Has("Redirect_URI") {
		t.Fatalf("extra parameters replaced the flow's own: %v", q)
	}
}

// TestExtraParamsKeepEveryValueAndNoRequestObject: RFC 8707 lets a client
// ask for several resources, each a resource parameter; a request object
// (request, request_uri) or a response_mode would take the flow out of the
// app's hands, and a control character has no business in a URL. A
// Profile built in code drops those, as the settings refuse them at start.
func TestExtraParamsKeepEveryValueAndNoRequestObject(t *testing.T) {
	params := url.Values{
		"resource":      {"https://a.example/", "https://b.example/", "https://c.example/"},
		"prompt":        {"consent"},
		"request":       {"eyJhbGciOiJub25lIn0.e30."},
		"Request_URI":   {"https://evil.test/ro"},
		"response_mode": {"form_post"},
		"x\x00":         {"1"},
		"login_hint":    {"r@example.com\r\nX: y"},
	}
	o := newOP(t, "", nil)
	a := o.app(t, Config{AuthorizeParams: params}, "")
	_, u, err := a.login(t)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	if got := strings.Join(q["resource"], " "); got != "https://a.example/ https://b.example/ https://c.example/" || q.Get("prompt") != "consent" {
		t.Fatalf("resource %q (want all three, in order), prompt %q", got, q.Get("prompt"))
	}
	for _, name := range []string{"request", "Request_URI", "response_mode", "x\x00", "login_hint"} {
		if q.Has(name) {
			t.Errorf("%s went to the provider: %v", name, q)
		}
	}
	err = oidc.CheckAuthorizeParams(params)
	if err == nil {
		t.Fatal("CheckAuthorizeParams let them all pass")
	}
	for _, want := range []string{"request (", "Request_URI (", "response_mode (", `"x\x00" (`, "login_hint (control characters in a value)"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the message lacks %q: %v", want, err)
		}
	}
	if strings.Contains(err.Error(), "resource") || strings.Contains(err.Error(), "prompt") {
		t.Errorf("the message names an allowed parameter: %v", err)
	}
}

// TestIDTokenShapedAccessTokens is Dex: its access token carries at_hash
// and nonce and the client id as aud, like its ID token. The session's own
// access token works; an ID token swapped into the cookie does not.
func TestIDTokenShapedAccessTokens(t *testing.T) {
	o := newOP(t, "/dex", func(o *op) {
		o.access = func(nonce string) map[string]any {
			c := with(o.claims(), "at_hash", "x", "email", "r@example.com")
			if nonce != "" {
				c["nonce"] = nonce
			}
			return c
		}
	})
	a := o.app(t, Config{}, "")
	j, _, err := a.login(t)
	if err != nil {
		t.Fatalf("login with ID-token-shaped access tokens: %v", err)
	}
	ctx := context.Background()
	s, err := a.m.Load(ctx, httptest.NewRecorder(), j.request(http.MethodGet, "/account"))
	if err != nil || s.User.Name != "Richard Hendricks" {
		t.Fatalf("the session's own access token: %+v, %v", s, err)
	}
	// Another genuine token of the same user, from another login: an ID token.
	swapped := jar{}
	for k, v := range j {
		swapped[k] = v
	}
	other := *j[cookie.Access]
	other.Value = o.signer.Sign(t, with(o.id("another-login"), "at_hash", "y"), nil)
	swapped[cookie.Access] = &other
	if s, err := a.m.Load(ctx, httptest.NewRecorder(), swapped.request(http.MethodGet, "/account")); !errors.Is(err, ErrNoSession) {
		t.Fatalf("a swapped token was served: %+v, %v", s, err)
	}
}

// TestSwappedAccessTokensAreRefusedWhateverTheirShape: a genuine access
// token of the same user, not the one issued to this session, is refused
// in the cookie, where before the binding it passed.
func TestSwappedAccessTokensAreRefusedWhateverTheirShape(t *testing.T) {
	o := newOP(t, "", nil)
	a := o.app(t, Config{}, "")
	j, _, err := a.login(t)
	if err != nil {
		t.Fatal(err)
	}
	other := *j[cookie.Access]
	other.Value = o.signer.Sign(t, with(o.claims(), "jti", "another"), nil)
	j[cookie.Access] = &other
	if s, err := a.m.Load(context.Background(), httptest.NewRecorder(), j.request(http.MethodGet, "/account")); !errors.Is(err, ErrNoSession) {
		t.Fatalf("another access token in the cookie was served: %+v, %v", s, err)
	}
	// As Bearer, where there is no session to bind to, it is an access token.
	if _, err := a.m.verifier.AccessToken(context.Background(), other.Value); err != nil {
		t.Fatalf("as Bearer: %v", err)
	}
}

// TestIDTokensAsBearerWhereTokensCanBeToldApart: FusionAuth's access tokens
// carry no nonce: an ID token as Bearer is refused. Where the token endpoint
// issues access tokens that carry one (Dex), nothing tells them apart and
// this instance, having seen it, accepts them as Bearer.
func TestIDTokensAsBearerWhereTokensCanBeToldApart(t *testing.T) {
	o := newOP(t, "", nil)
	a := o.app(t, Config{}, "")
	if _, _, err := a.login(t); err != nil {
		t.Fatal(err)
	}
	id := o.signer.Sign(t, o.id("n"), nil)
	if _, err := a.m.verifier.AccessToken(context.Background(), id); !errors.Is(err, oidc.ErrInvalidToken) {
		t.Fatalf("an ID token as Bearer: %v", err)
	}
	dex := newOP(t, "", func(o *op) { o.access = func(n string) map[string]any { return with(o.claims(), "at_hash", "x") } })
	b := dex.app(t, Config{}, "")
	bearer := dex.signer.Sign(t, with(dex.claims(), "at_hash", "z"), nil)
	if _, err := b.m.verifier.AccessToken(context.Background(), bearer); !errors.Is(err, oidc.ErrInvalidToken) {
		t.Fatalf("before any login here, a token shaped like an ID token as Bearer: %v", err)
	}
	if _, _, err := b.login(t); err != nil {
		t.Fatal(err)
	}
	if _, err := b.m.verifier.AccessToken(context.Background(), bearer); err != nil {
		t.Fatalf("after a login showed this provider's access tokens carry at_hash, as Bearer: %v", err)
	}
}

// TestProfileFromUserinfoWhenTheIDTokenHasNone: asked once at login, never
// per page, and only when its sub is the ID token's.
func TestProfileFromUserinfoWhenTheIDTokenHasNone(t *testing.T) {
	bare := func(o *op) {
		o.id = func(nonce string) map[string]any { return with(o.claims(), "nonce", nonce) }
		o.userinfo = map[string]any{"sub": "user-1", "name": "Richard Hendricks", "email": "r@example.com", "email_verified": "true"}
	}
	o := newOP(t, "", bare)
	a := o.app(t, Config{}, "")
	j, _, err := a.login(t)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		s, err := a.m.Load(context.Background(), httptest.NewRecorder(), j.request(http.MethodGet, "/account"))
		if err != nil || s.User.Name != "Richard Hendricks" || s.User.Email != "r@example.com" || !s.User.EmailVerified {
			t.Fatalf("profile: %+v, %v", s, err)
		}
	}
	if n := o.userinfoCalls.Load(); n != 1 {
		t.Fatalf("userinfo asked %d times for a login and three pages, want 1", n)
	}

	liar := newOP(t, "", func(o *op) { bare(o); o.userinfo["sub"] = "user-2" })
	if _, _, err := liar.app(t, Config{}, "").login(t); !errors.Is(err, ErrNoSession) {
		t.Fatalf("userinfo naming another user: %v", err)
	}

	// An ID token with the profile: no call.
	full := newOP(t, "", func(o *op) { o.userinfo = map[string]any{"sub": "user-1"} })
	if _, _, err := full.app(t, Config{}, "").login(t); err != nil || full.userinfoCalls.Load() != 0 {
		t.Fatalf("an ID token with name and email: %v, %d userinfo calls", err, full.userinfoCalls.Load())
	}
}

// TestRefreshRefusalsEndTheSessionOnlyWhenFinal: any OAuth error in a 4xx
// ends the session (Dex answers invalid_request for a superseded token);
// temporarily_unavailable, 429 and 5xx keep it.
func TestRefreshRefusalsEndTheSessionOnlyWhenFinal(t *testing.T) {
	o := newOP(t, "", nil)
	a := o.app(t, Config{}, "")
	for _, tc := range []struct {
		status int
		code   string
		want   error
	}{
		{400, "invalid_grant", ErrNoSession},
		{400, "invalid_request", ErrNoSession},
		{400, "unauthorized_client", ErrNoSession},
		{401, "invalid_client", ErrNoSession},
		{400, "invalid_scope", ErrNoSession},
		{400, "temporarily_unavailable", ErrProviderUnavailable},
		{429, "slow_down", ErrProviderUnavailable},
		{503, "server_error", ErrProviderUnavailable},
		{500, "invalid_request", ErrProviderUnavailable},
	} {
		t.Run(tc.code, func(t *testing.T) {
			o.refuseRefresh(tc.status, map[string]any{"error": tc.code})
			s := &Session{RefreshToken: fmt.Sprintf("rt-%d-%s", tc.status, tc.code), User: UserInfo{Subject: "user-1"}, Expires: time.Now().Add(time.Hour)}
			if err := a.m.Refresh(context.Background(), httptest.NewRecorder(), s); !errors.Is(err, tc.want) {
				t.Fatalf("%d %s: %v, want %v", tc.status, tc.code, err, tc.want)
			}
		})
	}
}

// TestLogoutSendsTheIDTokenAsHint: the ID token rides in its own sealed
// cookie, on /logout only, and goes to the end-session endpoint as
// id_token_hint; logout expires it with the attributes it was set with.
func TestLogoutSendsTheIDTokenAsHint(t *testing.T) {
	o := newOP(t, "/dex", func(o *op) { o.endSession = true })
	a := o.app(t, Config{}, "")
	j, _, err := a.login(t)
	if err != nil {
		t.Fatal(err)
	}
	ck := j[cookie.IDToken]
	if ck == nil || ck.Path != "/logout" || !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode {
		t.Fatalf("cb_id_token: %+v", ck)
	}
	if r := j.request(http.MethodGet, "/account"); strings.Contains(r.Header.Get("Cookie"), cookie.IDToken) {
		t.Fatal("cb_id_token rides on pages other than /logout")
	}
	rec := httptest.NewRecorder()
	req := j.request(http.MethodPost, "/logout")
	a.m.EndSession(context.Background(), rec, req)
	end := must(url.Parse(a.m.EndAtProvider(rec, req)))
	hint := end.Query().Get("id_token_hint")
	c, err := a.m.verifier.IDToken(context.Background(), hint, "")
	if err != nil || c.Subject != "user-1" || end.Query().Get("post_logout_redirect_uri") != "http://app.test/" || end.Query().Get("client_id") != testClient {
		t.Fatalf("end-session URL %s: hint %v", end, err)
	}
	expired := false
	for _, c := range rec.Result().Cookies() {
		if c.Name == cookie.IDToken && c.MaxAge < 0 && c.Path == "/logout" {
			expired = true
		}
	}
	if !expired {
		t.Fatalf("logout did not expire cb_id_token at Path=/logout: %v", rec.Result().Header["Set-Cookie"])
	}
}

func TestTheIDTokenCookieOverHTTPSIsSecureNotHost(t *testing.T) {
	c := cookie.NewStore("https://bank.example", nil)
	rec := httptest.NewRecorder()
	c.Set(rec, cookie.IDToken, "v", time.Now().Add(time.Hour), time.Now())
	got := rec.Result().Cookies()[0]
	// A __Host- cookie must have Path=/; browsers drop it otherwise.
	if got.Name != "__Secure-"+cookie.IDToken || !got.Secure || got.Path != "/logout" {
		t.Fatalf("%+v", got)
	}
}

// TestRevocationFollowsDiscovery: RFC 7009 wherever discovery lists an
// endpoint, even with a FusionAuth API key set; FusionAuth's API only when
// it lists none.
func TestRevocationFollowsDiscovery(t *testing.T) {
	for _, tc := range []struct {
		name       string
		revocation bool
		apiKey     string
		want       string
	}{
		{"RFC 7009 listed, API key set", true, "key", "/oauth/revoke"},
		{"RFC 7009 listed", true, "", "/oauth/revoke"},
		{"none listed, API key set, FusionAuth's endpoints", false, "key", "/api/jwt/refresh"},
		{"none listed, no key", false, "", ""},
		{"none listed, API key set, another provider's endpoints (Dex)", false, "key", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := newOP(t, "", func(o *op) {
				o.revocation = tc.revocation
				if !strings.Contains(tc.name, "another provider") {
					o.fusionAuthPaths()
				}
			})
			a := o.app(t, Config{}, tc.apiKey)
			j, _, err := a.login(t)
			if err != nil {
				t.Fatal(err)
			}
			a.m.EndSession(context.Background(), httptest.NewRecorder(), j.request(http.MethodPost, "/logout"))
			o.mu.Lock()
			got := strings.Join(o.revoked, ",")
			o.mu.Unlock()
			if got != tc.want {
				t.Fatalf("revocation reached %q, want %q", got, tc.want)
			}
		})
	}
}

// A browser that leaves while its logout is answered (a tab closed, the
// provider's logout page moving on from the hidden frame that loads
// GET /logout) ends that request's context. The revocation still reaches
// the provider: this instance marks the token revoked before the call and
// never tries again, so a call cut short would leave it working.
func TestLogoutRevokesEvenWhenTheBrowserLeaves(t *testing.T) {
	o := newOP(t, "", func(o *op) { o.revocation = true })
	a := o.app(t, Config{}, "")
	j, _, err := a.login(t)
	if err != nil {
		t.Fatal(err)
	}
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	a.m.EndSession(gone, httptest.NewRecorder(), j.request(http.MethodPost, "/logout"))
	a.m.EndSession(context.Background(), httptest.NewRecorder(), j.request(http.MethodGet, "/logout")) // the same cookies again
	o.mu.Lock()
	got := strings.Join(o.revoked, ",")
	o.mu.Unlock()
	if got != "/oauth/revoke" {
		t.Fatalf("revocation reached %q, want one call to /oauth/revoke", got)
	}
}

// A login that brings no refresh token (SCOPES without offline_access, or
// a provider that grants none this time) replaces the previous login's
// refresh cookie too: left behind, it would refresh the new session with
// the old login's token (revoked at this login, so the session ended as
// "refused"), where the new session has none and simply reaches its end.
func TestALoginWithoutARefreshTokenDropsThePreviousOne(t *testing.T) {
	o := newOP(t, "", nil)
	a := o.app(t, Config{}, "")
	j, _, err := a.login(t)
	if err != nil || j[cookie.Refresh] == nil {
		t.Fatalf("first login: %v, cookies %v", err, j)
	}
	o.mu.Lock()
	o.noRefresh = true
	o.mu.Unlock()
	rec := httptest.NewRecorder()
	authURL, err := a.m.BeginLogin(rec, j.request(http.MethodGet, "/login"), "/account")
	if err != nil {
		t.Fatal(err)
	}
	j.take(rec)
	u := must(url.Parse(authURL))
	o.mu.Lock()
	o.nonce = u.Query().Get("nonce")
	o.mu.Unlock()
	rec = httptest.NewRecorder()
	if _, err := a.m.FinishLogin(context.Background(), rec, j.request(http.MethodGet, "/callback?code=c&state="+url.QueryEscape(u.Query().Get("state")))); err != nil {
		t.Fatal(err)
	}
	j.take(rec)
	if j[cookie.Refresh] != nil {
		t.Error("the second login, which brought no refresh token, left the first login's refresh cookie")
	}
	// Once the access token is gone the session ends as having reached
	// its end, not as refused by the provider.
	delete(j, cookie.Access)
	_, err = a.m.Load(context.Background(), httptest.NewRecorder(), j.request(http.MethodGet, "/account"))
	if why := endReason(err); !errors.Is(err, ErrNoSession) || why != NoticeEndedExpired {
		t.Fatalf("without an access token: %v (%s), want %s", err, why, NoticeEndedExpired)
	}
}

func TestScopesFromScopeOrScp(t *testing.T) {
	for _, tc := range []struct{ claims, want string }{
		{`{"scope":"openid email"}`, "openid email"},
		{`{"scp":["openid","offline"]}`, "openid offline"},
		{`{"scp":"openid offline"}`, "openid offline"},
		{`{}`, ""},
	} {
		var c Claims
		if err := json.Unmarshal([]byte(tc.claims), &c); err != nil || c.Scopes() != tc.want {
			t.Errorf("%s: %q, %v; want %q", tc.claims, c.Scopes(), err, tc.want)
		}
	}
}

// TestLogoutAlsoRevokesTheTokenARacingRefreshGot: a refresh and a logout
// cross (another tab refreshed; its answer, with the rotated refresh token,
// had not reached the browser when Log out was pressed, so the logout
// carries the old one). Revoking only the old token would leave the
// rotated one alive at the provider: the logout revokes both.
func TestLogoutAlsoRevokesTheTokenARacingRefreshGot(t *testing.T) {
	o := newOP(t, "", func(o *op) { o.revocation = true })
	a := o.app(t, Config{}, "")
	j, _, err := a.login(t)
	if err != nil {
		t.Fatal(err)
	}
	old := j.request(http.MethodGet, "/account")
	s, err := a.m.Load(context.Background(), httptest.NewRecorder(), old)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.m.Refresh(context.Background(), httptest.NewRecorder(), s); err != nil { // its cookies never arrive
		t.Fatal(err)
	}
	rotated := s.RefreshToken
	a.m.EndSession(context.Background(), httptest.NewRecorder(), j.request(http.MethodPost, "/logout"))
	o.mu.Lock()
	got := o.revokedTokens
	o.mu.Unlock()
	if !slices.Contains(got, rotated) || len(got) != 2 {
		t.Fatalf("revoked %d tokens, the rotated one among them: %v; want the old and the rotated one", len(got), slices.Contains(got, rotated))
	}
}

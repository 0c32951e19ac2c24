package e2e

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/changebank/changebank/internal/app"
	"github.com/changebank/changebank/internal/apptest"
	"github.com/changebank/changebank/tokens/cookie"
)

// The provider journeys: ChangeBank pointed by settings alone at providers
// shaped like Auth0, Authgear, Keycloak and Dex, each run inside the test
// (Authgear's by the certified zitadel/oidc library, the others by the small
// provider in providers_op_test.go, which takes shapes the library cannot).
// Each journey is what a user does: log in, see their name and email, call
// the API with cookies and with a Bearer token, be refreshed silently twice,
// have a token of the wrong kind refused, log out back to the app with the
// provider's session ended.

// tokenLife is the provider's access and ID token life: past the app's
// refresh margin by a few seconds, so the first pages use the login's token
// and each refresh comes when the test waits for it.
const tokenLife = 8 * time.Second

// refreshDue is how long before its exp the app refreshes an access token
// (tokens.refreshMargin), plus room for a loaded machine's clock reads.
const refreshDue = 5*time.Second - 700*time.Millisecond

// testProvider is a provider running for one journey.
type testProvider interface {
	issuerURL() string
	liveSessions() int // login sessions at the provider not ended by a logout
	revocations() int  // refresh tokens revoked at its RFC 7009 endpoint
	recorder() *opRecorder
}

func (o *handOP) recorder() *opRecorder { return o.rec }

// providerJourney is one provider's shape and what the app must do with it.
type providerJourney struct {
	name     string
	start    func(t *testing.T, clientID, secret string) testProvider
	settings func(issuer string) map[string]string // beyond APP_URL, CLIENT_ID, CLIENT_SECRET, APP_SECRET_KEY
	// authorize is what the authorization request must carry besides the flow's own parameters.
	authorize map[string]string
	// kindsApart: the provider's ID and access tokens can be told apart, so
	// an ID token as Bearer is refused. Otherwise (Dex) the session's own
	// access token passes and an ID token of another login in its cookie does not.
	kindsApart  bool
	logoutHint  bool   // the provider needs id_token_hint to return to the app
	revocation  bool   // the provider lists an RFC 7009 revocation endpoint
	refusedWith string // the OAuth error of a refused refresh (Dex)
	// profileInUserinfo: name and email are only at the userinfo endpoint (Authgear).
	profileInUserinfo bool
	// opaque: the access tokens are not JWTs (Google, ZITADEL's default).
	// The session keeps them sealed; as Bearer they pass only through the
	// provider's introspection endpoint, when the settings turn it on
	// (introspect), and get a 401 saying why otherwise.
	opaque, introspect bool
	// noEndSession: discovery lists no end-session endpoint (Google):
	// logout revokes the refresh token and ends the session here only.
	noEndSession bool
	// shape checks the first tokens the provider issued against its
	// documentation, so the journey keeps testing the shape it names.
	shape func(t *testing.T, issuer, clientID string, access, id jwtView)
}

const auth0API = "https://api.changebank.example"

var providerJourneys = []providerJourney{
	{
		// The control: the shape today's app was written for (issuer with
		// no path, aud the client id, profile in the ID token). It passes
		// on the code before issue 17 too, which shows that the other
		// journeys fail for their shapes, not for the harness.
		name: "Plain",
		start: func(t *testing.T, clientID, secret string) testProvider {
			return startHandOP(t, shape{
				issuerPath: "",
				endpoints: map[string]string{"discovery": "/.well-known/openid-configuration", "authorize": "/oauth2/authorize", "login": "/oauth2/login",
					"token": "/oauth2/token", "userinfo": "/oauth2/userinfo", "jwks": "/.well-known/jwks.json", "logout": "/oauth2/logout", "revoke": "/oauth2/revoke"},
				alg: "RS256", keyAlgInJWKS: true,
				accessAud: func(_, clientID string, _ url.Values) any { return clientID },
				accessTyp: "JWT", idTyp: "JWT", revocation: true, refreshError: "invalid_grant",
			}, clientID, secret, tokenLife)
		},
		settings:   func(issuer string) map[string]string { return map[string]string{"ISSUER": issuer} },
		kindsApart: true, revocation: true,
	},
	{
		name: "Auth0",
		start: func(t *testing.T, clientID, secret string) testProvider {
			return startHandOP(t, shape{
				issuerPath: "/",
				endpoints: map[string]string{"discovery": "/.well-known/openid-configuration", "authorize": "/authorize", "login": "/u/login",
					"token": "/oauth/token", "userinfo": "/userinfo", "jwks": "/.well-known/jwks.json", "logout": "/oidc/logout", "revoke": "/oauth/revoke"},
				alg: "RS256", keyAlgInJWKS: true, accessJWTWith: "audience",
				accessAud: func(issuer, _ string, q url.Values) any { return []string{q.Get("audience"), issuer + "userinfo"} },
				accessTyp: "JWT", idTyp: "JWT", revocation: true, refreshError: "invalid_grant",
			}, clientID, secret, tokenLife)
		},
		settings: func(issuer string) map[string]string {
			return map[string]string{"ISSUER": issuer, "AUDIENCE": auth0API, "AUTHORIZE_PARAMS": "audience=" + url.QueryEscape(auth0API)}
		},
		authorize:  map[string]string{"audience": auth0API},
		kindsApart: true, revocation: true,
		shape: func(t *testing.T, issuer, clientID string, access, id jwtView) {
			want(t, "the issuer ends with a slash", strings.HasSuffix(issuer, "/"))
			want(t, "the access token's aud is [API, issuer+userinfo]", equalJSON(access.claims["aud"], []string{auth0API, issuer + "userinfo"}))
			want(t, "the ID token's aud is the client id", id.claims["aud"] == clientID)
			want(t, "the issuer is every token's iss", access.claims["iss"] == issuer && id.claims["iss"] == issuer)
		},
	},
	{
		name:  "Authgear",
		start: startAuthgear,
		settings: func(issuer string) map[string]string {
			return map[string]string{"ISSUER": issuer, "AUDIENCE": issuer, "SCOPES": "openid offline_access"}
		},
		authorize:  map[string]string{"scope": "openid offline_access"},
		kindsApart: true, revocation: true, profileInUserinfo: true,
		shape: func(t *testing.T, issuer, clientID string, access, id jwtView) {
			want(t, "the access token's aud is [issuer]", equalJSON(access.claims["aud"], []string{issuer}))
			want(t, "the ID token has no name or email", id.claims["name"] == nil && id.claims["email"] == nil)
		},
	},
	{
		name: "Keycloak",
		start: func(t *testing.T, clientID, secret string) testProvider {
			return startHandOP(t, shape{
				issuerPath: "/realms/demo",
				endpoints: map[string]string{"discovery": "/.well-known/openid-configuration", "authorize": "/protocol/openid-connect/auth",
					"login": "/login-actions/authenticate", "token": "/protocol/openid-connect/token", "userinfo": "/protocol/openid-connect/userinfo",
					"jwks": "/protocol/openid-connect/certs", "logout": "/protocol/openid-connect/logout", "revoke": "/protocol/openid-connect/revoke"},
				alg: "ES256", keyAlgInJWKS: false,
				// Keycloak's discovery lists every algorithm a realm may use, HMAC ones included.
				idTokenAlgs: []string{"PS384", "ES384", "RS384", "HS256", "HS512", "ES256", "RS256", "HS384", "ES512", "PS256", "PS512", "RS512"},
				accessAud:   func(string, string, url.Values) any { return "account" },
				accessTyp:   "JWT", idTyp: "JWT", claimTyp: true, revocation: true, logoutNeedsIDTokenHint: true, refreshError: "invalid_grant",
			}, clientID, secret, tokenLife)
		},
		settings: func(issuer string) map[string]string {
			// FUSIONAUTH_API_KEY as the shipped .env sets it: a user who
			// copied .env must still get RFC 7009 revocation, not FusionAuth's API.
			return map[string]string{"ISSUER": issuer, "AUDIENCE": "account", "FUSIONAUTH_API_KEY": apptest.DemoEnv["FUSIONAUTH_API_KEY"]}
		},
		kindsApart: true, logoutHint: true, revocation: true,
		shape: func(t *testing.T, issuer, clientID string, access, id jwtView) {
			want(t, "the issuer has a path", strings.HasSuffix(issuer, "/realms/demo"))
			want(t, "the access token is ES256 with typ JWT", access.header["alg"] == "ES256" && access.header["typ"] == "JWT")
			want(t, "the access token's aud is account", access.claims["aud"] == "account")
			for _, key := range jwksOf(t, issuer) {
				want(t, "the JWKS names no alg", key["alg"] == nil && key["kty"] == "EC" && key["crv"] == "P-256")
			}
		},
	},
	{
		name: "Dex",
		start: func(t *testing.T, clientID, secret string) testProvider {
			return startHandOP(t, shape{
				issuerPath: "/dex",
				endpoints: map[string]string{"discovery": "/.well-known/openid-configuration", "authorize": "/auth", "login": "/auth/local/login",
					"token": "/token", "userinfo": "/userinfo", "jwks": "/keys", "logout": "/logout"},
				alg: "RS256", keyAlgInJWKS: true, accessLikeID: true,
				logoutNeedsIDTokenHint: true, refreshError: "invalid_request", supersede: true,
			}, clientID, secret, tokenLife)
		},
		settings:    func(issuer string) map[string]string { return map[string]string{"ISSUER": issuer} },
		logoutHint:  true,
		refusedWith: "invalid_request",
		shape: func(t *testing.T, issuer, clientID string, access, id jwtView) {
			want(t, "the issuer has a path", strings.HasSuffix(issuer, "/dex"))
			want(t, "the access token has no typ", access.header["typ"] == nil)
			want(t, "the access token carries nonce and at_hash", access.claims["nonce"] != nil && access.claims["at_hash"] != nil)
			want(t, "the access token's aud is the client id", access.claims["aud"] == clientID)
		},
	},
	{
		// Google: opaque access tokens (ya29...), an ID token on every
		// refresh, a refresh token only with access_type=offline (and again
		// at each consent with prompt=consent), never rotated; the
		// offline_access scope refused as invalid_scope; token, userinfo,
		// keys and revocation on another host than the issuer; no
		// end-session endpoint.
		name: "Google",
		start: func(t *testing.T, clientID, secret string) testProvider {
			return startHandOP(t, shape{
				issuerPath: "",
				endpoints: map[string]string{"discovery": "/.well-known/openid-configuration", "authorize": "/o/oauth2/v2/auth", "login": "/v3/signin",
					"token": "/token", "userinfo": "/v1/userinfo", "jwks": "/oauth2/v3/certs", "logout": "/logout", "revoke": "/revoke"},
				alg: "RS256", keyAlgInJWKS: true, idTyp: "JWT", revocation: true, refreshError: "invalid_grant",
				opaqueAccess: func() string { return "ya29." + randomString(48) }, noRotation: true, noEndSession: true, apiHost: true,
				refreshWith: "access_type=offline", refusedScopes: []string{"offline_access"},
			}, clientID, secret, tokenLife)
		},
		settings: func(issuer string) map[string]string {
			return map[string]string{"ISSUER": issuer, "SCOPES": "openid email profile", "AUTHORIZE_PARAMS": "access_type=offline&prompt=consent"}
		},
		authorize:  map[string]string{"access_type": "offline", "prompt": "consent", "scope": "openid email profile"},
		kindsApart: true, revocation: true, opaque: true, noEndSession: true,
	},
	{
		// zitadel/oidc's provider with its default access tokens: opaque,
		// the profile at the userinfo endpoint, an ID token on every
		// refresh, rotated refresh tokens, an introspection endpoint, which
		// the settings turn on for Bearer tokens.
		name:  "ZITADEL",
		start: startZitadelOpaque,
		settings: func(issuer string) map[string]string {
			return map[string]string{"ISSUER": issuer, "BEARER_INTROSPECTION": "on"}
		},
		kindsApart: true, revocation: true, profileInUserinfo: true, opaque: true, introspect: true,
	},
}

func TestProviderJourneys(t *testing.T) {
	for _, j := range providerJourneys {
		t.Run(j.name, func(t *testing.T) {
			t.Parallel()
			clientID, secret := "changebank-"+strings.ToLower(j.name), "provider-journey-client-secret-"+randomString(12)
			op := j.start(t, clientID, secret)
			rec := op.recorder()
			env := map[string]string{
				"CLIENT_ID": clientID, "CLIENT_SECRET": secret, "APP_SECRET_KEY": apptest.DemoEnv["APP_SECRET_KEY"], "LOG_LEVEL": "debug",
			}
			for k, v := range j.settings(op.issuerURL()) {
				env[k] = v
			}
			d := startApp(t, env)
			// Registered after startApp's: runs first, so the leak check sees every value the provider issued.
			t.Cleanup(func() { d.secrets.remember(rec.issuedValues()...) })

			if j.shape != nil {
				// Checked even when the app refused the login: the provider had answered.
				t.Cleanup(func() {
					if first, ok := rec.firstToken(); ok && strings.Count(first.AccessToken, ".") == 2 { // Auth0 without audience: opaque, already failed
						j.shape(t, op.issuerURL(), clientID, decodeJWT(t, first.AccessToken), decodeJWT(t, first.IDToken))
					}
				})
			}
			a := newPerson(t, d)
			authorize := a.logIn(op)
			for k, want := range j.authorize {
				if got := authorize.Get(k); got != want {
					t.Errorf("the authorization request's %s is %q, want %q", k, got, want)
				}
			}
			a.seesAccount()
			me := a.api()
			if me["name"] != opUser.name || me["email"] != opUser.email || me["authenticated_by"] != "cookie" {
				t.Errorf("/api/me with cookies: %v", me)
			}
			// The profile comes from the ID token, else from the userinfo
			// endpoint once at login, and never again per page.
			userinfo := discoveryOf(t, op.issuerURL()).userinfoPath()
			wantUserinfo := 0
			if j.profileInUserinfo {
				wantUserinfo = 1
			}
			a.seesAccount()
			a.api()
			if got := rec.callsTo(userinfo); got != wantUserinfo {
				t.Errorf("the app called the userinfo endpoint %d times for one login and three pages, want %d", got, wantUserinfo)
			}
			login := rec.lastToken(t)
			bearerAccess(t, a, j, op, login.AccessToken)
			if j.kindsApart {
				a.bearer(login.IDToken, http.StatusUnauthorized)
			}

			// Two silent refreshes, each when the app's margin before exp is reached.
			for i := 1; i <= 2; i++ {
				time.Sleep(time.Until(accessExpiry(t, rec.lastToken(t)).Add(-refreshDue)))
				if i == 1 {
					a.seesAccount()
				} else if me := a.api(); me["name"] != opUser.name {
					t.Errorf("/api/me after the second refresh: %v", me)
				}
				if got := rec.refreshes(http.StatusOK); got < i {
					t.Fatalf("after %d waits for expiry the provider answered %d refreshes", i, got)
				}
			}
			if got := rec.callsTo(userinfo); got > wantUserinfo*(1+rec.refreshes(http.StatusOK)) {
				t.Errorf("the app called the userinfo endpoint %d times for one login and %d refreshes", got, rec.refreshes(http.StatusOK))
			}
			bearerAccess(t, a, j, op, rec.lastToken(t).AccessToken)

			// The session's own ID token in its access cookie: refused whatever
			// the provider's token shapes, because the cookie is bound to the
			// access token the token endpoint issued.
			refusedInAccessCookie(t, a, rec, rec.lastToken(t).IDToken, "the session's own ID token")
			leaving := a
			if !j.kindsApart {
				leaving = swappedAndRefused(t, d, op, a, j.refusedWith)
			}
			if j.opaque {
				tamperedAndSwappedRefused(t, d, op, a)
			}
			leaving.logsOut(op, j)
			if n := rec.callsEndingIn("/api/jwt/refresh"); n != 0 {
				t.Errorf("the app called FusionAuth's /api/jwt/refresh %d times on a provider that is not FusionAuth", n)
			}
		})
	}
}

// bearerAccess calls /api/me with an access token the provider issued, as
// Bearer. A JWT passes on the app's own checks; an opaque token passes only
// through the provider's introspection endpoint, asked once per token, and
// without it gets a 401 that says why.
func bearerAccess(t *testing.T, a *person, j providerJourney, op testProvider, token string) {
	t.Helper()
	switch {
	case !j.opaque:
		if me := a.bearer(token, http.StatusOK); me["sub"] != opUser.sub {
			t.Errorf("/api/me with the access token as Bearer: %v", me)
		}
	case j.introspect:
		rec := op.recorder()
		before := rec.callsEndingIn("/introspect")
		for range 3 {
			if me := a.bearer(token, http.StatusOK); me["sub"] != opUser.sub || me["authenticated_by"] != "bearer" {
				t.Errorf("/api/me with the opaque access token as Bearer, introspection on: %v", me)
			}
		}
		if n := rec.callsEndingIn("/introspect") - before; n != 1 {
			t.Errorf("three Bearer requests with one opaque token cost %d introspection calls, want 1", n)
		}
	default:
		me := a.bearer(token, http.StatusUnauthorized)
		if why, _ := me["error_description"].(string); !strings.Contains(why, "opaque") || !strings.Contains(why, "introspection") {
			t.Errorf("an opaque Bearer token without introspection: the 401 does not say why: %v", me)
		}
	}
}

// accessExpiry is when an access token the provider issued expires: a
// JWT's exp, else the token answer's expires_in from when it came.
func accessExpiry(t *testing.T, a tokenAnswer) time.Time {
	t.Helper()
	if strings.Count(a.AccessToken, ".") == 2 {
		return expiryOf(t, a.AccessToken)
	}
	if a.ExpiresIn <= 0 {
		t.Fatal("the provider's opaque access token came without expires_in")
	}
	return a.at.Add(time.Duration(a.ExpiresIn) * time.Second)
}

// tamperedAndSwappedRefused: with opaque access tokens the access cookie
// holds the token sealed. A copy of p's cookies whose access cookie has
// one character changed is refused, and so is one holding another login's
// access cookie (sealed by this very app, so it opens): the session is
// bound to the token it was issued. Neither reaches the token endpoint.
func tamperedAndSwappedRefused(t *testing.T, d demo, op testProvider, p *person) {
	t.Helper()
	rec := op.recorder()
	sealed := p.accessCookie(t)
	if strings.Contains(sealed, rec.lastToken(t).AccessToken) {
		t.Error("the access cookie holds the opaque access token in clear")
	}
	flipped := []byte(sealed)
	i := len(flipped) / 2
	flipped[i] = map[bool]byte{true: 'B', false: 'A'}[flipped[i] == 'A']
	refusedInAccessCookie(t, p, rec, string(flipped), "a tampered access cookie")

	other := newPerson(t, d)
	other.logIn(op)
	other.seesAccount()
	refusedInAccessCookie(t, p, rec, other.accessCookie(t), "another login's access cookie")
	p.seesAccount() // p's own session is untouched
}

// swappedAndRefused is the Dex part: its access token is shaped like its ID
// token, so the app must tell them apart by the session, not by the kind. A
// second login (b) supersedes a's refresh token, as Dex does. An ID token of
// b's login swapped into a's access cookie is refused without a refresh,
// and a's next refresh, refused with 400 invalid_request, ends a's session
// with "log in again". It returns b, still logged in.
func swappedAndRefused(t *testing.T, d demo, op testProvider, a *person, refusedWith string) *person {
	rec := op.recorder()
	b := newPerson(t, d)
	b.logIn(op)
	b.seesAccount()
	other := rec.lastToken(t).IDToken

	refusedInAccessCookie(t, a, rec, other, "an ID token of another login")

	// a's refresh token was superseded by b's login.
	time.Sleep(time.Until(expiryOf(t, a.accessCookie(t)).Add(-refreshDue)))
	if status, loc := a.noFollowGet("/account"); status != http.StatusSeeOther || !strings.HasPrefix(loc, "/login") {
		t.Errorf("a refresh refused with invalid_request: /account answered %d (Location %q), want 303 to /login", status, loc)
	}
	if n := rec.refreshes(http.StatusBadRequest); n != 1 {
		t.Errorf("the provider refused %d refreshes, want 1", n)
	} else if got := rec.lastAnswer().Error; got != refusedWith {
		t.Errorf("the provider refused the refresh with %q, want %q", got, refusedWith)
	}
	_, home := a.get("/")
	for _, want := range []string{"session ended", "refused to refresh", "Log in"} {
		if !strings.Contains(home, want) {
			t.Errorf("after the refused refresh the home page does not say %q:\n%s", want, home)
		}
	}
	if status := a.apiStatus(); status != http.StatusUnauthorized {
		t.Errorf("after the refused refresh /api/me answered %d, want 401", status)
	}
	return b
}

// refusedInAccessCookie puts token in place of the access token in copies
// of p's cookies and checks that the app refuses the copy, on a page and on
// the API, without a call to the provider's token endpoint. p's own
// session is untouched.
func refusedInAccessCookie(t *testing.T, p *person, rec *opRecorder, token, what string) {
	t.Helper()
	app, _ := url.Parse(p.d.appURL)
	calls := rec.tokenCalls()
	for _, path := range []string{"/account", "/api/me"} {
		swapped := newPerson(t, p.d)
		var cookies []*http.Cookie
		for _, c := range p.jar.Cookies(app) {
			if c.Name == cookie.Access {
				c.Value = token
			}
			cookies = append(cookies, &http.Cookie{Name: c.Name, Value: c.Value})
		}
		swapped.jar.SetCookies(app, cookies)
		status, loc := swapped.noFollowGet(path)
		switch {
		case path == "/api/me" && status != http.StatusUnauthorized:
			t.Errorf("%s in the access cookie: /api/me answered %d, want 401", what, status)
		case path == "/account" && (status != http.StatusSeeOther || !strings.HasPrefix(loc, "/login")):
			t.Errorf("%s in the access cookie: /account answered %d (Location %q), want 303 to /login", what, status, loc)
		}
	}
	if n := rec.tokenCalls() - calls; n != 0 {
		t.Errorf("%s in the access cookie cost %d calls to the token endpoint: it should be refused on its own", what, n)
	}
}

// person is a cookie jar and the clients that use it.
type person struct {
	t             *testing.T
	d             demo
	jar           *cookiejar.Jar
	follow, plain *http.Client
}

func newPerson(t *testing.T, d demo) *person {
	jar, _ := cookiejar.New(nil)
	return &person{t: t, d: d, jar: jar,
		follow: &http.Client{Jar: jar, Timeout: 30 * time.Second},
		plain: &http.Client{Jar: jar, Timeout: 30 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// logIn goes through /login, the provider's form and /callback, and
// returns the authorization request's query.
func (b *person) logIn(op testProvider) url.Values {
	t := b.t
	t.Helper()
	resp, err := b.plain.Get(b.d.appURL + "/login")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	authorize, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || resp.StatusCode != http.StatusFound || !strings.HasPrefix(authorize.String(), strings.TrimSuffix(op.issuerURL(), "/")+"/") {
		t.Fatalf("/login answered %d to %s, want a redirect to the provider %s", resp.StatusCode, authorize.Host+authorize.Path, op.issuerURL())
	}
	q := authorize.Query()
	for _, p := range []string{"state", "nonce", "code_challenge"} {
		if q.Get(p) == "" {
			t.Errorf("the authorization request has no %s", p)
		}
	}
	if q.Get("code_challenge_method") != "S256" {
		t.Errorf("code_challenge_method %q, want S256", q.Get("code_challenge_method"))
	}
	resp, err = b.follow.Get(authorize.String())
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("the provider's login page answered %d", resp.StatusCode)
	}
	resp, err = b.follow.PostForm(resp.Request.URL.String(), url.Values{"username": {opUser.login}, "password": {opUser.password}})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	b.remember()
	if got := resp.Request.URL.Scheme + "://" + resp.Request.URL.Host + resp.Request.URL.Path; got != b.d.appURL+"/account" || resp.StatusCode != http.StatusOK {
		t.Fatalf("after the provider's form the browser landed on %s (%d), want %s/account:\n%.800s", got, resp.StatusCode, b.d.appURL, body)
	}
	return q
}

// seesAccount loads /account and checks it greets the user by name and email.
func (b *person) seesAccount() string {
	b.t.Helper()
	status, body := b.get("/account")
	if status != http.StatusOK || !strings.Contains(body, `<span id="name">`+opUser.name+`</span>`) || !strings.Contains(body, opUser.email) {
		b.t.Fatalf("/account answered %d without the user's name and email:\n%.600s", status, body)
	}
	return body
}

func (b *person) get(path string) (int, string) {
	b.t.Helper()
	resp, err := b.follow.Get(b.d.appURL + path)
	if err != nil {
		b.t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	b.remember()
	return resp.StatusCode, string(body)
}

func (b *person) noFollowGet(path string) (int, string) {
	b.t.Helper()
	resp, err := b.plain.Get(b.d.appURL + path)
	if err != nil {
		b.t.Fatal(err)
	}
	resp.Body.Close()
	b.remember()
	return resp.StatusCode, resp.Header.Get("Location")
}

// api calls /api/me with the browser's cookies and returns its JSON.
func (b *person) api() map[string]any {
	b.t.Helper()
	resp, err := b.follow.Get(b.d.appURL + "/api/me")
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	b.remember()
	var me map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&me); err != nil || resp.StatusCode != http.StatusOK {
		b.t.Fatalf("/api/me with cookies answered %d: %v %v", resp.StatusCode, me, err)
	}
	return me
}

func (b *person) apiStatus() int {
	b.t.Helper()
	resp, err := b.follow.Get(b.d.appURL + "/api/me")
	if err != nil {
		b.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// bearer calls /api/me with token as Bearer and no cookies.
func (b *person) bearer(token string, want int) map[string]any {
	b.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, b.d.appURL+"/api/me", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	var me map[string]any
	json.NewDecoder(resp.Body).Decode(&me)
	if resp.StatusCode != want {
		b.t.Errorf("/api/me with Bearer %s answered %d, want %d: %v", kindOf(token), resp.StatusCode, want, me)
	}
	return me
}

// kindOf names a token by what it carries, for messages that must not show it.
func kindOf(token string) string {
	if strings.Count(token, ".") != 2 {
		return "(an opaque token)"
	}
	return "(a JWT)"
}

// accessCookie returns the access token the browser's cookie holds.
func (b *person) accessCookie(t *testing.T) string {
	t.Helper()
	app, _ := url.Parse(b.d.appURL)
	for _, c := range b.jar.Cookies(app) {
		if c.Name == cookie.Access {
			return c.Value
		}
	}
	t.Fatal("the browser holds no access token cookie")
	return ""
}

// expiryOf reads a JWT's exp, unverified: the test only times its waits by it.
func expiryOf(t *testing.T, jwt string) time.Time {
	t.Helper()
	var claims struct{ Exp int64 }
	parts := strings.Split(jwt, ".")
	if len(parts) == 3 {
		if raw, err := base64.RawURLEncoding.DecodeString(parts[1]); err == nil && json.Unmarshal(raw, &claims) == nil && claims.Exp != 0 {
			return time.Unix(claims.Exp, 0)
		}
	}
	t.Fatalf("the access token %s has no readable exp", kindOf(jwt))
	return time.Time{}
}

var csrfField = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)

// refreshTag finds a meta refresh of 0 seconds, as the app's Log out page writes it.
var refreshTag = regexp.MustCompile(`<meta http-equiv="refresh" content="0; url='([^']*)'">`)

// refreshTarget is where a page that refreshes at once sends the browser; "" for any other page.
func refreshTarget(body string) string {
	if m := refreshTag.FindStringSubmatch(body); m != nil {
		return html.UnescapeString(m[1])
	}
	return ""
}

// logsOut presses Log out on /account and follows the provider back to the app.
func (b *person) logsOut(op testProvider, j providerJourney) {
	t := b.t
	t.Helper()
	rec := op.recorder()
	m := csrfField.FindStringSubmatch(b.seesAccount())
	if m == nil {
		t.Fatal("/account has no logout form with a CSRF token")
	}
	live := op.liveSessions()
	req, _ := http.NewRequest(http.MethodPost, b.d.appURL+"/logout", strings.NewReader(url.Values{"csrf_token": {m[1]}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", b.d.appURL)
	resp, err := b.follow.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	// The app's answer is a page that moves the browser on at once (a
	// meta refresh): follow it as a browser does.
	for range 3 {
		next := refreshTarget(string(body))
		if next == "" {
			break
		}
		if resp, err = b.follow.Get(next); err != nil {
			t.Fatal(err)
		}
		body, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	b.remember()
	landed := resp.Request.URL.Scheme + "://" + resp.Request.URL.Host + resp.Request.URL.Path // the query may hold id_token_hint
	if !strings.HasPrefix(landed, b.d.appURL+"/") || resp.StatusCode != http.StatusOK {
		t.Errorf("Log out left the browser on %s (%d), want back on the app:\n%.400s", landed, resp.StatusCode, body)
	}
	if !strings.Contains(string(body), `id="login"`) {
		t.Errorf("after Log out the page offers no Log in:\n%.400s", body)
	}
	logout := rec.lastLogout()
	switch {
	case j.noEndSession && logout != nil:
		t.Error("the app sent the browser to an end-session endpoint discovery does not list")
	case j.noEndSession:
		// Google's own session outlives the app's: only the refresh token,
		// revoked below, and this browser's cookies end.
		if landed != b.d.appURL+"/" {
			t.Errorf("without an end-session endpoint Log out should land home, landed on %s", landed)
		}
	case logout == nil:
		t.Error("the provider's end-session endpoint was never called")
	case j.logoutHint && logout.Get("id_token_hint") == "":
		t.Error("the end-session request carried no id_token_hint")
	}
	if got := op.liveSessions(); !j.noEndSession && got >= live {
		t.Errorf("the provider still has %d live login sessions after Log out (%d before)", got, live)
	}
	if j.revocation && op.revocations() != 1 {
		t.Errorf("the provider revoked %d refresh tokens at its revocation endpoint, want 1", op.revocations())
	}
	if status := b.apiStatus(); status != http.StatusUnauthorized {
		t.Errorf("after Log out /api/me with the browser's cookies answered %d, want 401", status)
	}
}

// remember adds the browser's cookies to the values logs must not show.
func (b *person) remember() { b.d.rememberJar(b.jar) }

// startApp calls run against an outside provider (no -embedded-idp) on a
// free port, waits until it has discovered the provider, and stops it when
// the test ends, failing the test if a remembered value reached the logs.
func startApp(t *testing.T, env map[string]string) demo {
	t.Helper()
	env["APP_URL"] = "http://" + apptest.FreePort(t)
	d := demo{appURL: env["APP_URL"], issuer: env["ISSUER"], base: env["APP_URL"], logs: &apptest.Logs{}, secrets: &secretList{}}
	d.secrets.remember(env["CLIENT_SECRET"], env["APP_SECRET_KEY"], env["FUSIONAUTH_API_KEY"])
	// Stopped as Ctrl-C stops it, without the drain period.
	ctx, cancel := context.WithCancelCause(context.Background())
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx, nil, apptest.Getenv(env), io.Discard, d.logs) }()
	t.Cleanup(func() {
		cancel(app.ErrInterrupted)
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
		leaks := d.secrets.leaked(d.logs.String())
		for _, before := range leaks {
			t.Errorf("a secret, token, code or cookie value was logged after ...%s", before)
		}
		if t.Failed() && len(leaks) == 0 {
			logs := d.logs.String()
			t.Logf("the app's last logs:\n%s", logs[max(0, len(logs)-3000):])
		}
	})
	awaitReady(t, d.base, done, 20*time.Second, d.logs)
	return d
}

// jwtView is a JWT's header and claims, decoded without a check.
type jwtView struct{ header, claims map[string]any }

func decodeJWT(t *testing.T, token string) jwtView {
	t.Helper()
	var v jwtView
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Errorf("the provider issued %s where a JWT was due", kindOf(token))
		return v
	}
	for i, into := range []*map[string]any{&v.header, &v.claims} {
		raw, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil || json.Unmarshal(raw, into) != nil {
			t.Errorf("the provider issued an unreadable JWT")
		}
	}
	return v
}

// discovery is the part of a provider's discovery document the tests use.
type discovery struct {
	Authorize string `json:"authorization_endpoint"`
	Token     string `json:"token_endpoint"`
	Userinfo  string `json:"userinfo_endpoint"`
}

func (d discovery) userinfoPath() string {
	u, _ := url.Parse(d.Userinfo)
	return u.Path
}

func discoveryOf(t *testing.T, issuer string) discovery {
	t.Helper()
	var doc discovery
	resp, err := http.Get(strings.TrimSuffix(issuer, "/") + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil || doc.Userinfo == "" {
		t.Fatalf("the provider's discovery document: %v", err)
	}
	return doc
}

// jwksOf returns the keys the provider's discovery document points at.
func jwksOf(t *testing.T, issuer string) []map[string]any {
	t.Helper()
	var doc struct {
		JWKSURI string `json:"jwks_uri"`
		Keys    []map[string]any
	}
	for _, u := range []string{strings.TrimSuffix(issuer, "/") + "/.well-known/openid-configuration", ""} {
		if u == "" {
			u = doc.JWKSURI
		}
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		json.NewDecoder(resp.Body).Decode(&doc)
		resp.Body.Close()
	}
	if len(doc.Keys) == 0 {
		t.Error("the provider publishes no keys")
	}
	return doc.Keys
}

func want(t *testing.T, what string, ok bool) {
	t.Helper()
	if !ok {
		t.Errorf("the provider's shape: want %s", what)
	}
}

func equalJSON(got any, want any) bool {
	a, _ := json.Marshal(got)
	b, _ := json.Marshal(want)
	return string(a) == string(b)
}

// TestProviderShapes runs each provider's code flow without the app and
// checks the tokens against the provider's documented shape: the journeys
// above are only as good as these shapes.
func TestProviderShapes(t *testing.T) {
	for _, j := range providerJourneys {
		if j.shape == nil {
			continue
		}
		t.Run(j.name, func(t *testing.T) {
			t.Parallel()
			clientID, secret := "changebank-"+strings.ToLower(j.name), "provider-shape-client-secret-"+randomString(12)
			op := j.start(t, clientID, secret)
			settings := j.settings(op.issuerURL())
			doc := discoveryOf(t, op.issuerURL())

			verifier := randomString(32)
			q, _ := url.ParseQuery(settings["AUTHORIZE_PARAMS"])
			redirect := "http://127.0.0.1:1/callback" // never reached: the code is read from the redirect
			for k, v := range map[string]string{"client_id": clientID, "redirect_uri": redirect, "response_type": "code",
				"scope": cmp.Or(settings["SCOPES"], "openid email profile offline_access"), "state": randomString(8), "nonce": randomString(8),
				"code_challenge": pkceS256(verifier), "code_challenge_method": "S256"} {
				q.Set(k, v)
			}
			jar, _ := cookiejar.New(nil)
			client := &http.Client{Jar: jar, CheckRedirect: func(req *http.Request, _ []*http.Request) error {
				if strings.HasPrefix(req.URL.String(), redirect) {
					return http.ErrUseLastResponse
				}
				return nil
			}}
			resp, err := client.Get(doc.Authorize + "?" + q.Encode())
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			resp, err = client.PostForm(resp.Request.URL.String(), url.Values{"username": {opUser.login}, "password": {opUser.password}})
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			back, _ := url.Parse(resp.Header.Get("Location"))
			if back.Query().Get("code") == "" {
				t.Fatalf("the provider sent no code back: %d %s", resp.StatusCode, back.Path)
			}
			req, _ := http.NewRequest(http.MethodPost, doc.Token, strings.NewReader(url.Values{"grant_type": {"authorization_code"},
				"code": {back.Query().Get("code")}, "redirect_uri": {redirect}, "code_verifier": {verifier}}.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.SetBasicAuth(clientID, secret)
			resp, err = http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var tok tokenAnswer
			json.NewDecoder(resp.Body).Decode(&tok)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("the token endpoint answered %d %s", resp.StatusCode, tok.Error)
			}
			j.shape(t, op.issuerURL(), clientID, decodeJWT(t, tok.AccessToken), decodeJWT(t, tok.IDToken))
		})
	}
}

// TestProviderRecipesMatchTheJourneys keeps the recipes of
// docs/providers.md true: each provider's recipe sets what its journey
// needed, with the same values where the recipe gives one, and an ISSUER of
// the same form (trailing slash, path).
func TestProviderRecipesMatchTheJourneys(t *testing.T) {
	data, err := os.ReadFile(repo("docs/providers.md"))
	if err != nil {
		t.Fatal(err)
	}
	section := string(data)
	setting := regexp.MustCompile("`([A-Z_]+)=([^`]*)`")
	named := regexp.MustCompile("`([A-Z_]+)`")
	for _, j := range providerJourneys {
		if j.name == "Plain" {
			continue
		}
		t.Run(j.name, func(t *testing.T) {
			_, recipe, ok := strings.Cut(section, "\n## "+j.name+"\n")
			if !ok {
				t.Fatalf("docs/providers.md has no recipe headed ## %s", j.name)
			}
			recipe, _, _ = strings.Cut(recipe, "\n## ")
			issuer := "http://127.0.0.1:1234" + map[string]string{"Auth0": "/", "Keycloak": "/realms/demo", "Dex": "/dex"}[j.name]
			journey := j.settings(issuer)
			for _, m := range setting.FindAllStringSubmatch(recipe, -1) {
				name, value := m[1], m[2]
				got, set := journey[name]
				switch {
				case !set:
					t.Errorf("the recipe sets %s, the journey does not", name)
				case name == "ISSUER":
					u, err := url.Parse(value)
					if err != nil || issuerForm(u.Path) != issuerForm(issuer[len("http://127.0.0.1:1234"):]) {
						t.Errorf("the recipe's ISSUER %s and the journey's %s differ in form", value, got)
					}
				case strings.HasSuffix(value, "="): // a value the recipe completes in words
					if !strings.HasPrefix(got, value) {
						t.Errorf("the recipe's %s starts %q, the journey's is %q", name, value, got)
					}
				case got != value:
					t.Errorf("the recipe's %s is %q, the journey's %q", name, value, got)
				}
			}
			for name := range journey {
				if name != "ISSUER" && name != "FUSIONAUTH_API_KEY" && !slices.ContainsFunc(named.FindAllStringSubmatch(recipe, -1),
					func(m []string) bool { return m[1] == name }) && !strings.Contains(recipe, "`"+name+"=") {
					t.Errorf("the journey sets %s, the recipe does not name it", name)
				}
			}
		})
	}
}

// issuerForm is what of an issuer's path must match between a recipe and a
// journey: a bare slash, or the path's first segment and its depth.
func issuerForm(path string) string {
	segments := strings.Split(strings.Trim(path, "/"), "/")
	return fmt.Sprintf("%t %s %d", strings.HasSuffix(path, "/"), segments[0], len(segments))
}

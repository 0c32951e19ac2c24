package idp

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	testAppID    = "11111111-2222-4333-8444-555555555555"
	testSecret   = "test-client-secret"
	testRedirect = "http://app.test/callback"
	verifier     = "a-pkce-verifier-that-is-long-enough-0123456789abcdef"
)

func challenge(v string) string {
	sum := sha256.Sum256([]byte(v))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func testEnv(name string) string {
	if name == "TEST_CLIENT_SECRET" {
		return testSecret
	}
	return ""
}

// standIn runs a stand-in from a kickstart file on an httptest server.
type standIn struct {
	t      *testing.T
	s      *Server
	url    string
	client *http.Client // keeps the SSO cookie, does not follow redirects
}

func newStandIn(t *testing.T, kickstart string, usage string) *standIn {
	t.Helper()
	return newStandInWith(t, kickstart, usage, Options{})
}

// newStandInWith is newStandIn with options (the issuer is always set).
func newStandInWith(t *testing.T, kickstart string, usage string, o Options) *standIn {
	t.Helper()
	ks, err := LoadKickstart(kickstart, testEnv, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if usage != "" {
		for _, app := range ks.Applications {
			app.RefreshTokenUsage = usage
		}
	}
	srv := httptest.NewUnstartedServer(nil)
	issuer := "http://" + srv.Listener.Addr().String()
	o.Issuer = issuer
	s, err := New(ks, o)
	if err != nil {
		t.Fatal(err)
	}
	srv.Config.Handler = s.Handler()
	srv.Start()
	t.Cleanup(srv.Close)
	jar, _ := cookiejar.New(nil)
	return &standIn{t: t, s: s, url: srv.URL, client: &http.Client{
		Jar:           jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

func authRequest(redirect string) url.Values {
	return url.Values{
		"client_id": {testAppID}, "redirect_uri": {redirect}, "response_type": {"code"},
		"scope": {"openid email profile offline_access"}, "state": {"st-1"}, "nonce": {"n-1"},
		"code_challenge": {challenge(verifier)}, "code_challenge_method": {"S256"},
	}
}

// login posts the login form and returns the response (a redirect on success).
func (si *standIn) login(params url.Values, email, password string) *http.Response {
	si.t.Helper()
	// The form as the stand-in renders it, with its token; a request it
	// renders no form for (a bad client or redirect) goes as it is.
	form, err := LoginForm(si.client, si.url+"/oauth2/authorize?"+params.Encode())
	if err != nil {
		form = url.Values{}
		for k, v := range params {
			form[k] = v
		}
	}
	form.Set("loginId", email)
	form.Set("password", password)
	resp, err := si.client.PostForm(si.url+"/oauth2/authorize", form)
	if err != nil {
		si.t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

// code logs dana in and returns an authorization code.
func (si *standIn) code() string {
	si.t.Helper()
	resp := si.login(authRequest(testRedirect), "dana@example.com", "pw")
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || resp.StatusCode != http.StatusFound || loc.Query().Get("code") == "" {
		si.t.Fatalf("login: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if loc.Query().Get("state") != "st-1" {
		si.t.Fatalf("state not returned: %q", loc)
	}
	return loc.Query().Get("code")
}

// token calls the token endpoint with Basic client authentication.
func (si *standIn) token(form url.Values, secret string) (int, map[string]any) {
	si.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, si.url+"/oauth2/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(testAppID, secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		si.t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body
}

func (si *standIn) exchange(code string) (int, map[string]any) {
	return si.token(url.Values{"grant_type": {"authorization_code"}, "code": {code},
		"redirect_uri": {testRedirect}, "code_verifier": {verifier}}, testSecret)
}

func claimsOf(t *testing.T, jwt string) map[string]any {
	t.Helper()
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", jwt)
	}
	b, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var c map[string]any
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestCodeFlowIssuesFusionAuthShapedTokens(t *testing.T) {
	si := newStandIn(t, "testdata/reusable.json", "")
	status, body := si.exchange(si.code())
	if status != http.StatusOK {
		t.Fatalf("exchange: %d %v", status, body)
	}
	for _, k := range []string{"access_token", "id_token", "refresh_token", "refresh_token_id", "expires_in", "userId"} {
		if body[k] == nil {
			t.Errorf("token response lacks %s", k)
		}
	}
	at := claimsOf(t, body["access_token"].(string))
	if at["aud"] != testAppID || at["iss"] != si.s.Issuer() || at["sub"] != "00000000-0000-0000-0000-000000000007" ||
		at["authenticationType"] != "PASSWORD" || at["sid"] == nil || at["tid"] == nil || at["auth_time"] == nil {
		t.Errorf("access token claims: %v", at)
	}
	if _, has := at["email"]; has {
		t.Error("the access token carries email; FusionAuth's Strict scope policy leaves it out")
	}
	id := claimsOf(t, body["id_token"].(string))
	if id["nonce"] != "n-1" || id["email"] != "dana@example.com" || id["name"] != "Dana Test" {
		t.Errorf("ID token claims: %v", id)
	}
	// The JWKS publishes the signing key.
	resp, err := http.Get(si.url + "/.well-known/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(raw), `"alg":"RS256"`) || strings.Contains(string(raw), `"d":`) {
		t.Errorf("JWKS: %s", raw)
	}
	// A code works once.
	if status, body := si.exchange(si.code()); status != http.StatusOK {
		t.Fatalf("second login: %d %v", status, body)
	}
}

func TestDiscoveryBuildsURLsFromTheRequestHost(t *testing.T) {
	si := newStandIn(t, "testdata/reusable.json", "")
	req, _ := http.NewRequest(http.MethodGet, si.url+"/.well-known/openid-configuration", nil)
	req.Host = "fusionauth:9011"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&doc)
	if doc["token_endpoint"] != "http://fusionauth:9011/oauth2/token" || doc["issuer"] != si.s.Issuer() {
		t.Fatalf("discovery: %v", doc)
	}
}

func TestTokenEndpointRefusals(t *testing.T) {
	si := newStandIn(t, "testdata/reusable.json", "")
	cases := []struct {
		name   string
		form   url.Values
		secret string
		status int
		code   string
	}{
		{"PKCE verifier mismatch", url.Values{"grant_type": {"authorization_code"}, "code": {si.code()}, "redirect_uri": {testRedirect}, "code_verifier": {"another-verifier-0123456789012345678901234567"}}, testSecret, 400, "invalid_grant"},
		{"no PKCE verifier", url.Values{"grant_type": {"authorization_code"}, "code": {si.code()}, "redirect_uri": {testRedirect}}, testSecret, 400, "invalid_grant"},
		{"wrong client secret", url.Values{"grant_type": {"authorization_code"}, "code": {si.code()}, "redirect_uri": {testRedirect}, "code_verifier": {verifier}}, "wrong", 401, "invalid_client"},
		{"other redirect_uri", url.Values{"grant_type": {"authorization_code"}, "code": {si.code()}, "redirect_uri": {"http://app.test/"}, "code_verifier": {verifier}}, testSecret, 400, "invalid_grant"},
		{"unknown code", url.Values{"grant_type": {"authorization_code"}, "code": {"nope"}, "redirect_uri": {testRedirect}, "code_verifier": {verifier}}, testSecret, 400, "invalid_grant"},
		{"unknown grant", url.Values{"grant_type": {"password"}}, testSecret, 400, "unsupported_grant_type"},
		{"unknown refresh token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"nope"}}, testSecret, 400, "invalid_grant"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, body := si.token(tc.form, tc.secret)
			if status != tc.status || body["error"] != tc.code {
				t.Fatalf("got %d %v, want %d %s", status, body, tc.status, tc.code)
			}
		})
	}
	// A code is spent by a failed attempt too.
	code := si.code()
	si.token(url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {testRedirect}, "code_verifier": {"wrong-wrong-wrong-wrong-wrong-wrong-wrong-wrong"}}, testSecret)
	if status, _ := si.exchange(code); status != http.StatusBadRequest {
		t.Fatalf("a code was usable after a failed exchange: %d", status)
	}
}

func TestAuthorizeRefusals(t *testing.T) {
	si := newStandIn(t, "testdata/reusable.json", "")
	get := func(params url.Values) *http.Response {
		resp, err := si.client.Get(si.url + "/oauth2/authorize?" + params.Encode())
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	unregistered := authRequest("http://evil.test/callback")
	if resp := get(unregistered); resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" {
		t.Fatalf("unregistered redirect_uri: %d, Location %q: must be a page, never a redirect", resp.StatusCode, resp.Header.Get("Location"))
	}
	noPKCE := authRequest(testRedirect)
	noPKCE.Del("code_challenge")
	if loc := get(noPKCE).Header.Get("Location"); !strings.Contains(loc, "error=invalid_request") {
		t.Fatalf("missing PKCE: Location %q", loc)
	}
	if resp := si.login(authRequest(testRedirect), "dana@example.com", "wrong"); resp.StatusCode != http.StatusOK || resp.Header.Get("Location") != "" {
		t.Fatalf("wrong password: %d %q: must show the form again", resp.StatusCode, resp.Header.Get("Location"))
	}
	if resp := si.login(authRequest(testRedirect), "stranger@example.com", "pw"); resp.Header.Get("Location") != "" {
		t.Fatal("a user not registered to the application got a code")
	}
}

func TestSSOSessionSkipsTheFormUntilLogout(t *testing.T) {
	si := newStandIn(t, "testdata/reusable.json", "")
	si.code()
	resp, err := si.client.Get(si.url + "/oauth2/authorize?" + authRequest(testRedirect).Encode())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if !strings.Contains(resp.Header.Get("Location"), "code=") {
		t.Fatalf("with an SSO session: %d %q, want a redirect with a code", resp.StatusCode, resp.Header.Get("Location"))
	}
	if page := si.logoutPage(url.Values{"client_id": {testAppID}, "post_logout_redirect_uri": {"http://app.test/"}}); page.target != "http://app.test/" {
		t.Fatalf("logout goes on to %q", page.target)
	}
	resp, _ = si.client.Get(si.url + "/oauth2/authorize?" + authRequest(testRedirect).Encode())
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Location") != "" {
		t.Fatalf("after logout the form must show again: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
}

// loggedOut is what the stand-in's logout page does: the frames it loads
// and where it goes next.
type loggedOut struct {
	status int
	target string
	frames []string
	csp    string
	body   string
}

var (
	continueLink = regexp.MustCompile(`<a id="continue" href="([^"]*)"`)
	logoutFrame  = regexp.MustCompile(`<iframe class="logout-frame" src="([^"]*)"`)
)

func (si *standIn) logoutPage(params url.Values) loggedOut {
	si.t.Helper()
	resp, err := si.client.Get(si.url + "/oauth2/logout?" + params.Encode())
	if err != nil {
		si.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	out := loggedOut{status: resp.StatusCode, csp: resp.Header.Get("Content-Security-Policy"), body: string(raw)}
	if m := continueLink.FindStringSubmatch(out.body); m != nil {
		out.target = html.UnescapeString(m[1])
	}
	for _, m := range logoutFrame.FindAllStringSubmatch(out.body, -1) {
		out.frames = append(out.frames, html.UnescapeString(m[1]))
	}
	return out
}

func TestLogoutLoadsEveryLogoutURL(t *testing.T) {
	cases := []struct {
		name       string
		params     url.Values
		status     int
		target     string
		errorShown string
	}{
		{"to post_logout_redirect_uri", url.Values{"client_id": {testAppID}, "post_logout_redirect_uri": {"http://app.test/"}, "state": {"s1"}}, 200, "http://app.test/?state=s1", ""},
		{"client from id_token_hint", url.Values{"id_token_hint": {""}, "post_logout_redirect_uri": {"http://app.test/"}}, 200, "http://app.test/", ""},
		{"without one, to the logoutURL", url.Values{"client_id": {testAppID}}, 200, "http://app.test/logout", ""},
		{"an unauthorized one is an error", url.Values{"client_id": {testAppID}, "post_logout_redirect_uri": {"http://evil.test/"}}, 400, "", "invalid_post_logout_redirect_uri"},
		{"no client to check it against", url.Values{"post_logout_redirect_uri": {"http://app.test/"}}, 400, "", "invalid_post_logout_redirect_uri"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			si := newStandIn(t, "testdata/reusable.json", "")
			_, tokens := si.exchange(si.code())
			if tc.params.Has("id_token_hint") {
				tc.params.Set("id_token_hint", tokens["id_token"].(string))
			}
			page := si.logoutPage(tc.params)
			if page.status != tc.status || page.target != tc.target {
				t.Fatalf("status %d, goes on to %q; want %d, %q", page.status, page.target, tc.status, tc.target)
			}
			if tc.errorShown != "" {
				if !strings.Contains(page.body, tc.errorShown) || strings.Contains(page.body, "evil.test") {
					t.Fatalf("error page: %s", page.body)
				}
				return
			}
			if len(page.frames) != 1 || page.frames[0] != "http://app.test/logout" {
				t.Fatalf("frames %v, want the application's logoutURL", page.frames)
			}
			if !strings.Contains(page.csp, "frame-src http://app.test") || !strings.Contains(page.csp, "script-src 'nonce-") {
				t.Fatalf("the CSP does not let the page frame the logout URL and run its script: %q", page.csp)
			}
			// The SSO session is over: the form shows again.
			resp, err := si.client.Get(si.url + "/oauth2/authorize?" + authRequest(testRedirect).Encode())
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.Header.Get("Location") != "" {
				t.Fatal("the SSO session survived logout")
			}
			// FusionAuth's logout does not revoke refresh tokens.
			if status, _ := refreshWith(si, tokens["refresh_token"].(string)); status != http.StatusOK {
				t.Fatalf("refresh after logout: %d", status)
			}
		})
	}
	t.Run("Options.LogoutURL names the running app's", func(t *testing.T) {
		si := newStandInWith(t, "testdata/reusable.json", "", Options{LogoutURL: "http://127.0.0.1:5555/logout"})
		page := si.logoutPage(url.Values{"client_id": {testAppID}})
		if page.target != "http://127.0.0.1:5555/logout" || len(page.frames) != 1 || page.frames[0] != "http://127.0.0.1:5555/logout" {
			t.Fatalf("goes on to %q, frames %v", page.target, page.frames)
		}
	})
}

func TestRefreshPolicies(t *testing.T) {
	refresh := func(si *standIn, rt string) (int, map[string]any) {
		return si.token(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}, testSecret)
	}
	t.Run("Reusable", func(t *testing.T) {
		si := newStandIn(t, "testdata/reusable.json", "Reusable")
		_, first := si.exchange(si.code())
		rt := first["refresh_token"].(string)
		for i := range 2 {
			status, body := refresh(si, rt)
			if status != http.StatusOK || body["refresh_token"] != rt || body["refresh_token_id"] != first["refresh_token_id"] {
				t.Fatalf("refresh %d: %d %v (Reusable answers with the same refresh token and id)", i, status, body["error"])
			}
			if c := claimsOf(t, body["access_token"].(string)); c["authenticationType"] != "REFRESH_TOKEN" {
				t.Fatalf("refreshed access token: %v", c)
			}
		}
		if si.s.TokenCalls("refresh_token") != 2 {
			t.Fatalf("TokenCalls = %d", si.s.TokenCalls("refresh_token"))
		}
	})
	t.Run("OneTimeUse", func(t *testing.T) {
		si := newStandIn(t, "testdata/reusable.json", "OneTimeUse")
		_, first := si.exchange(si.code())
		rt := first["refresh_token"].(string)
		status, body := refresh(si, rt)
		next, _ := body["refresh_token"].(string)
		if status != http.StatusOK || next == "" || next == rt || body["refresh_token_id"] == nil || body["refresh_token_id"] == first["refresh_token_id"] {
			t.Fatalf("rotation: %d %v, want a new refresh token and id", status, body["error"])
		}
		if status, body := refresh(si, rt); status != http.StatusBadRequest || body["error"] != "invalid_grant" {
			t.Fatalf("a spent one-time token: %d %v, want invalid_grant", status, body)
		}
		if status, _ := refresh(si, next); status != http.StatusOK {
			t.Fatalf("the rotated token: %d", status)
		}
	})
	t.Run("expired", func(t *testing.T) {
		si := newStandIn(t, "testdata/reusable.json", "Reusable")
		now := time.Now()
		si.s.now = func() time.Time { return now }
		_, first := si.exchange(si.code())
		now = now.Add(11 * time.Minute) // the test kickstart's refresh tokens live 10 minutes
		if status, body := refresh(si, first["refresh_token"].(string)); body["error"] != "invalid_grant" {
			t.Fatalf("expired refresh token: %d %v", status, body)
		}
	})
}

func TestRevokeNeedsTheAPIKey(t *testing.T) {
	si := newStandIn(t, "testdata/reusable.json", "Reusable")
	_, first := si.exchange(si.code())
	rt := first["refresh_token"].(string)
	revoke := func(key string) int {
		req, _ := http.NewRequest(http.MethodDelete, si.url+"/api/jwt/refresh", strings.NewReader(url.Values{"token": {rt}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Authorization", key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := revoke("wrong"); got != http.StatusUnauthorized {
		t.Fatalf("wrong API key: %d", got)
	}
	if got := revoke("test-api-key-0123456789"); got != http.StatusOK {
		t.Fatalf("revoke: %d", got)
	}
	if status, body := si.token(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}, testSecret); body["error"] != "invalid_grant" {
		t.Fatalf("a revoked refresh token still works: %d %v", status, body)
	}
}

func TestFailureHooks(t *testing.T) {
	si := newStandIn(t, "testdata/reusable.json", "")
	si.s.FailTokens(Failure{Mode: ServerErr})
	if status, _ := si.exchange("x"); status != http.StatusServiceUnavailable {
		t.Fatalf("ServerErr: %d", status)
	}
	si.s.FailTokens(Failure{Mode: Down})
	req, _ := http.NewRequest(http.MethodPost, si.url+"/oauth2/token", strings.NewReader("grant_type=refresh_token"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("Down: got a response %d, want a broken connection", resp.StatusCode)
	}
	si.s.FailTokens(Failure{Mode: Slow, Delay: 200 * time.Millisecond})
	start := time.Now()
	si.exchange("x")
	if time.Since(start) < 200*time.Millisecond {
		t.Fatal("Slow answered early")
	}
	if si.s.TokenCalls("authorization_code") != 2 || si.s.TokenCalls("refresh_token") != 1 {
		t.Fatalf("TokenCalls: code %d, refresh %d", si.s.TokenCalls("authorization_code"), si.s.TokenCalls("refresh_token"))
	}
}

func TestKickstartParser(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	t.Run("the project's kickstart", func(t *testing.T) {
		ks, err := LoadKickstart("../kickstart/kickstart.json", testEnv, log)
		if err != nil {
			t.Fatal(err)
		}
		app := ks.Applications["e9fdb985-9173-4e01-9d73-ac2d60d1dc8e"]
		if app == nil || ks.Issuer != "http://localhost:9011" || len(ks.SigningKeys) != 1 || len(ks.APIKeys) != 1 {
			t.Fatalf("kickstart: %+v", ks)
		}
		if app.PKCEPolicy != "Required" || app.AccessTokenTTL > 5*time.Minute || app.RefreshTokenTTL != 43200*time.Minute || app.AccessTokenKeyID != ks.SigningKeys[0].ID {
			t.Fatalf("application: %+v", app)
		}
		var richard *User
		for _, u := range ks.Users {
			if u.Email == "richard@example.com" {
				richard = u
			}
		}
		if richard == nil || richard.ID != "00000000-0000-0000-0000-111111111111" || richard.BirthDate != "1985-11-23" || richard.Registrations[app.ID] == nil {
			t.Fatalf("richard: %+v", richard)
		}
	})
	t.Run("variables and ENV", func(t *testing.T) {
		var logs strings.Builder
		ks, err := LoadKickstart("testdata/reusable.json", testEnv, slog.New(slog.NewTextHandler(&logs, nil)))
		if err != nil {
			t.Fatal(err)
		}
		if got := logs.String(); strings.Count(got, "ignored") != 1 || !strings.Contains(got, "/api/email/template/x") {
			t.Errorf("want one log line for the one request the stand-in ignores:\n%s", got)
		}
		if ks.Applications[testAppID].ClientSecret != testSecret || !looksLikeUUID(ks.SigningKeys[0].ID) {
			t.Fatalf("substitution: %+v %+v", ks.Applications[testAppID], ks.SigningKeys)
		}
	})
	for file, want := range map[string]string{
		"testdata/bad-json.json":       "not valid JSON",
		"testdata/bad-variable.json":   "unknown variable #{missing}",
		"testdata/bad-no-key.json":     "nothing to sign tokens with",
		"testdata/bad-policy.json":     "refreshTokenUsagePolicy",
		"testdata/bad-hs256.json":      "RS256 keys only",
		"testdata/bad-grace.json":      "gracePeriodInSeconds 86400",
		"testdata/bad-key-length.json": "POST /api/key/generate/",
		"testdata/missing.json":        "no such file",
	} {
		t.Run(file, func(t *testing.T) {
			_, err := LoadKickstart(file, testEnv, log)
			if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), file) {
				t.Fatalf("err = %v, want one naming %s and saying %q", err, file, want)
			}
		})
	}
}

func TestUserinfo(t *testing.T) {
	si := newStandIn(t, "testdata/reusable.json", "")
	_, body := si.exchange(si.code())
	ask := func(token string) (int, map[string]any) {
		req, _ := http.NewRequest(http.MethodGet, si.url+"/oauth2/userinfo", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	if status, info := ask(body["access_token"].(string)); status != http.StatusOK || info["email"] != "dana@example.com" || info["sub"] != "00000000-0000-0000-0000-000000000007" {
		t.Fatalf("userinfo: %d %v", status, info)
	}
	if status, _ := ask(body["id_token"].(string) + "x"); status != http.StatusUnauthorized {
		t.Fatalf("a broken token: %d", status)
	}
}

func refreshWith(si *standIn, rt string) (int, map[string]any) {
	si.t.Helper()
	return si.token(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}, testSecret)
}

// refreshRaw sends a refresh request with client and returns what came back.
func (si *standIn) refreshRaw(client *http.Client, rt string) (*http.Response, error) {
	req, _ := http.NewRequest(http.MethodPost, si.url+"/oauth2/token",
		strings.NewReader(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(testAppID, testSecret)
	return client.Do(req)
}

func TestOneTimeUseGracePeriod(t *testing.T) {
	cases := []struct {
		name      string
		grace     time.Duration // Options.RefreshGracePeriod
		reuseIn   time.Duration // after the rotation
		wantReuse bool
	}{
		{"reuse inside the window returns the current token", 30 * time.Second, 10 * time.Second, true},
		{"reuse at the window's end is refused", 30 * time.Second, 30 * time.Second, false},
		{"reuse after the window is refused", 30 * time.Second, 31 * time.Second, false},
		{"no grace period refuses any reuse", NoGracePeriod, 0, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			si := newStandInWith(t, "testdata/reusable.json", "OneTimeUse", Options{RefreshGracePeriod: tc.grace})
			now := time.Now()
			si.s.now = func() time.Time { return now }
			_, first := si.exchange(si.code())
			old := first["refresh_token"].(string)
			status, rotated := refreshWith(si, old)
			current, _ := rotated["refresh_token"].(string)
			if status != http.StatusOK || current == "" || current == old {
				t.Fatalf("rotation: %d %v", status, rotated["error"])
			}
			now = now.Add(tc.reuseIn)
			status, reused := refreshWith(si, old)
			if tc.wantReuse {
				if status != http.StatusOK || reused["refresh_token"] != current || reused["refresh_token_id"] != rotated["refresh_token_id"] {
					t.Fatalf("reuse in the window: %d %v, want the current refresh token back, not rotated again", status, reused["error"])
				}
				if reused["access_token"] == nil || reused["access_token"] == rotated["access_token"] {
					t.Fatal("reuse in the window must bring a new access token")
				}
			} else if status != http.StatusBadRequest || reused["error"] != "invalid_grant" {
				t.Fatalf("reuse: %d %v, want invalid_grant", status, reused["error"])
			}
			// Either way the current token is untouched and rotates as usual.
			if status, body := refreshWith(si, current); status != http.StatusOK || body["refresh_token"] == current {
				t.Fatalf("the current token after a reuse: %d %v", status, body["error"])
			}
		})
	}
	t.Run("the previous token only while its successor is current", func(t *testing.T) {
		si := newStandInWith(t, "testdata/reusable.json", "OneTimeUse", Options{RefreshGracePeriod: 30 * time.Second})
		_, first := si.exchange(si.code())
		rt0 := first["refresh_token"].(string)
		_, b1 := refreshWith(si, rt0)
		refreshWith(si, b1["refresh_token"].(string))
		if status, body := refreshWith(si, rt0); body["error"] != "invalid_grant" {
			t.Fatalf("a token two rotations back: %d %v, want invalid_grant", status, body["error"])
		}
	})
	t.Run("the tenant's applies where the application has no jwtConfiguration", func(t *testing.T) {
		raw, err := os.ReadFile("testdata/reusable.json")
		if err != nil {
			t.Fatal(err)
		}
		tenant := strings.Replace(string(raw), `"issuer": "http://issuer.test"`,
			`"issuer": "http://issuer.test", "jwtConfiguration": { "refreshTokenOneTimeUseConfiguration": { "gracePeriodInSeconds": 45 } }`, 1)
		for name, c := range map[string]struct {
			text string
			want time.Duration
		}{
			"application overrides the tenant": {tenant, 0},
			"application uses the tenant's":    {strings.Replace(tenant, `"enabled": true`, `"enabled": false`, 1), 45 * time.Second},
		} {
			ks, err := ParseKickstart([]byte(c.text), testEnv, slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			if got := ks.Applications[testAppID].RefreshGracePeriod; got != c.want {
				t.Errorf("%s: grace period %s, want %s", name, got, c.want)
			}
		}
	})
	t.Run("the project's kickstart sets it", func(t *testing.T) {
		ks, err := LoadKickstart("../kickstart/kickstart.json", testEnv, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		app := ks.Applications["e9fdb985-9173-4e01-9d73-ac2d60d1dc8e"]
		// The app's own per-instance grace window is 20 s; the provider's must cover a burst across instances.
		if app.RefreshTokenUsage != "OneTimeUse" || app.RefreshGracePeriod < 20*time.Second {
			t.Fatalf("kickstart: %s with a grace period of %s", app.RefreshTokenUsage, app.RefreshGracePeriod)
		}
	})
}

// TestFailuresAfterTheWork checks that Slow and DropAnswer do the work
// (rotate the refresh token) before the client is left without an answer.
func TestFailuresAfterTheWork(t *testing.T) {
	for _, f := range []Failure{{Mode: Slow, Delay: 5 * time.Second}, {Mode: DropAnswer}} {
		t.Run(fmt.Sprint(f.Mode), func(t *testing.T) {
			si := newStandInWith(t, "testdata/reusable.json", "OneTimeUse", Options{RefreshGracePeriod: NoGracePeriod})
			_, first := si.exchange(si.code())
			rt := first["refresh_token"].(string)
			si.s.FailTokens(f)
			client := &http.Client{Timeout: 300 * time.Millisecond} // gives up before Slow answers
			if resp, err := si.refreshRaw(client, rt); err == nil {
				resp.Body.Close()
				t.Fatalf("got an answer %d, want none", resp.StatusCode)
			}
			si.s.FailTokens(Failure{})
			// The token was rotated though the client never saw the new one.
			if status, body := refreshWith(si, rt); status != http.StatusBadRequest || body["error"] != "invalid_grant" {
				t.Fatalf("the token sent during the failure: %d %v, want invalid_grant (already rotated)", status, body["error"])
			}
		})
	}
	t.Run("with a grace period the client recovers", func(t *testing.T) {
		si := newStandInWith(t, "testdata/reusable.json", "OneTimeUse", Options{RefreshGracePeriod: 30 * time.Second})
		_, first := si.exchange(si.code())
		rt := first["refresh_token"].(string)
		si.s.FailTokens(Failure{Mode: DropAnswer})
		if resp, err := si.refreshRaw(http.DefaultClient, rt); err == nil {
			resp.Body.Close()
			t.Fatalf("DropAnswer answered %d", resp.StatusCode)
		}
		si.s.FailTokens(Failure{})
		status, body := refreshWith(si, rt)
		if status != http.StatusOK || body["refresh_token"] == rt || body["refresh_token"] == nil {
			t.Fatalf("retry with the old token in the grace period: %d %v, want the rotated token", status, body["error"])
		}
	})
	t.Run("Down does nothing", func(t *testing.T) {
		si := newStandInWith(t, "testdata/reusable.json", "OneTimeUse", Options{RefreshGracePeriod: NoGracePeriod})
		_, first := si.exchange(si.code())
		rt := first["refresh_token"].(string)
		si.s.FailTokens(Failure{Mode: Down})
		if resp, err := si.refreshRaw(http.DefaultClient, rt); err == nil {
			resp.Body.Close()
			t.Fatalf("Down answered %d", resp.StatusCode)
		}
		si.s.FailTokens(Failure{})
		if status, body := refreshWith(si, rt); status != http.StatusOK {
			t.Fatalf("after Down the token must still be usable: %d %v", status, body["error"])
		}
	})
}

// jwtHeader decodes a JWT's protected header.
func jwtHeader(t *testing.T, jwt string) map[string]any {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(strings.Split(jwt, ".")[0])
	var h map[string]any
	if err != nil || json.Unmarshal(b, &h) != nil {
		t.Fatalf("not a JWT header: %v", err)
	}
	return h
}

// TestTokensFollowFusionAuth checks the claims FusionAuth documents for
// each token: what the app reads (name, sid, scope) and what it must not
// find (roles in the ID token).
func TestTokensFollowFusionAuth(t *testing.T) {
	si := newStandIn(t, "testdata/reusable.json", "Reusable")
	code := si.code()
	status, body := si.exchange(code)
	if status != http.StatusOK {
		t.Fatalf("exchange: %d %v", status, body["error"])
	}
	access, id := claimsOf(t, body["access_token"].(string)), claimsOf(t, body["id_token"].(string))
	t.Run("access token", func(t *testing.T) {
		if access["sid"] != body["refresh_token_id"] {
			t.Errorf("sid %v, want the refresh token's id %v", access["sid"], body["refresh_token_id"])
		}
		if access["applicationId"] != testAppID || access["scope"] != "openid email profile offline_access" || access["roles"] == nil {
			t.Errorf("access token: applicationId %v, scope %v, roles %v", access["applicationId"], access["scope"], access["roles"])
		}
		if _, has := access["at_hash"]; has {
			t.Error("at_hash in an access token")
		}
		h := jwtHeader(t, body["access_token"].(string))
		if len(h) != 4 || h["alg"] != "RS256" || h["typ"] != "JWT" || h["kid"] == nil || fmt.Sprint(h["gty"]) != "[authorization_code]" {
			t.Errorf("header %v, want alg, gty, kid, typ as FusionAuth's sample", h)
		}
	})
	t.Run("ID token", func(t *testing.T) {
		for _, k := range []string{"applicationId", "roles"} {
			if _, has := id[k]; has {
				t.Errorf("the ID token carries %s (FusionAuth left it out since 1.24)", k)
			}
		}
		if id["scope"] != "openid email profile offline_access" {
			t.Errorf("scope %v", id["scope"])
		}
		sum := sha256.Sum256([]byte(code))
		if id["c_hash"] != base64.RawURLEncoding.EncodeToString(sum[:16]) {
			t.Errorf("c_hash %v does not match the code", id["c_hash"])
		}
		sum = sha256.Sum256([]byte(body["access_token"].(string)))
		if id["at_hash"] != base64.RawURLEncoding.EncodeToString(sum[:16]) {
			t.Errorf("at_hash %v does not match the access token", id["at_hash"])
		}
		_, refreshed := refreshWith(si, body["refresh_token"].(string))
		if _, has := claimsOf(t, refreshed["id_token"].(string))["c_hash"]; has {
			t.Error("c_hash in a refreshed ID token: there is no code")
		}
	})
	t.Run("name is the stored fullName only", func(t *testing.T) {
		cases := []struct{ email, name, given string }{
			{"dana@example.com", "Dana Test", "Dana"},
			{"nameless@example.com", "", "Nora"}, // first and last name, no fullName
		}
		for _, tc := range cases {
			si := newStandIn(t, "testdata/reusable.json", "")
			resp := si.login(authRequest(testRedirect), tc.email, "pw")
			loc, _ := url.Parse(resp.Header.Get("Location"))
			_, body := si.exchange(loc.Query().Get("code"))
			idt, _ := body["id_token"].(string)
			if idt == "" {
				t.Fatalf("%s: no ID token: %v", tc.email, body["error"])
			}
			c := claimsOf(t, idt)
			name, hasName := c["name"]
			if (tc.name == "" && hasName) || (tc.name != "" && name != tc.name) || c["given_name"] != tc.given {
				t.Errorf("%s: name %v (present %v), given_name %v; want name %q", tc.email, name, hasName, c["given_name"], tc.name)
			}
		}
	})
}

func TestAuthorizationCodesLive30Seconds(t *testing.T) {
	for _, tc := range []struct {
		wait time.Duration
		want int
	}{{29 * time.Second, http.StatusOK}, {31 * time.Second, http.StatusBadRequest}} {
		t.Run(tc.wait.String(), func(t *testing.T) {
			si := newStandIn(t, "testdata/reusable.json", "")
			now := time.Now()
			si.s.now = func() time.Time { return now }
			code := si.code()
			now = now.Add(tc.wait)
			if status, body := si.exchange(code); status != tc.want {
				t.Fatalf("exchange after %s: %d %v, want %d", tc.wait, status, body["error"], tc.want)
			}
		})
	}
}

// TestKickstartAsFusionAuthTakesIt: an upper-case application id logs in,
// and a request the stand-in does not know is logged and skipped.
func TestKickstartAsFusionAuthTakesIt(t *testing.T) {
	raw, err := os.ReadFile("testdata/reusable.json")
	if err != nil {
		t.Fatal(err)
	}
	upper := strings.ToUpper(testAppID)
	text := strings.Replace(string(raw), `"appId": "`+testAppID+`"`, `"appId": "`+upper+`"`, 1)
	text = strings.Replace(text, `"requests": [`, `"requests": [
    { "method": "POST", "url": "/api/user/import", "body": { "users": [ { "email": "imported@example.com" } ] } },`, 1)
	var logs strings.Builder
	ks, err := ParseKickstart([]byte(text), testEnv, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatalf("FusionAuth accepts this kickstart: %v", err)
	}
	if !strings.Contains(logs.String(), "/api/user/import") {
		t.Errorf("the ignored import is not logged:\n%s", logs.String())
	}
	s, err := New(ks, Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	jar, _ := cookiejar.New(nil)
	si := &standIn{t: t, s: s, url: srv.URL, client: &http.Client{Jar: jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	for _, clientID := range []string{upper, testAppID} {
		params := authRequest(testRedirect)
		params.Set("client_id", clientID)
		resp := si.login(params, "dana@example.com", "pw")
		loc, _ := url.Parse(resp.Header.Get("Location"))
		if loc == nil || loc.Query().Get("code") == "" {
			t.Fatalf("client_id %s: login gave %d %q", clientID, resp.StatusCode, resp.Header.Get("Location"))
		}
		if status, body := si.exchange(loc.Query().Get("code")); status != http.StatusOK {
			t.Fatalf("client_id %s: exchange %d %v", clientID, status, body["error"])
		}
	}
}

func TestMemoryIsBounded(t *testing.T) {
	t.Run("unknown grant types share one counter", func(t *testing.T) {
		si := newStandIn(t, "testdata/reusable.json", "")
		for i := range 50 {
			si.token(url.Values{"grant_type": {fmt.Sprintf("made-up-%d", i)}}, testSecret)
		}
		si.token(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"x"}}, testSecret)
		si.s.mu.Lock()
		counters := len(si.s.calls)
		si.s.mu.Unlock()
		if counters != 2 || si.s.TokenCalls("other") != 50 || si.s.TokenCalls("made-up-7") != 50 || si.s.TokenCalls("refresh_token") != 1 {
			t.Fatalf("%d counters; other %d, refresh_token %d", counters, si.s.TokenCalls("other"), si.s.TokenCalls("refresh_token"))
		}
	})
	t.Run("expired entries are swept", func(t *testing.T) {
		si := newStandIn(t, "testdata/reusable.json", "OneTimeUse")
		now := time.Now()
		si.s.now = func() time.Time { return now }
		for range 3 {
			si.code() // unused codes
		}
		_, first := si.exchange(si.code())
		refreshWith(si, first["refresh_token"].(string)) // leaves a spent token behind
		now = now.Add(11 * time.Minute)                  // codes, the spent token and the refresh tokens (10 min) are over
		si.client.Jar, _ = cookiejar.New(nil)            // a new browser: a new SSO session
		si.code()
		si.s.mu.Lock()
		codes, tokens := len(si.s.codes), len(si.s.refresh)
		si.s.mu.Unlock()
		if codes != 1 || tokens != 0 {
			t.Fatalf("after expiry: %d codes, %d refresh tokens kept; want only the new code", codes, tokens)
		}
	})
	t.Run("each store is capped, newest kept", func(t *testing.T) {
		si := newStandIn(t, "testdata/reusable.json", "Reusable")
		si.s.limit = 3
		var last map[string]any
		for range 6 {
			si.client.Jar, _ = cookiejar.New(nil) // each login a new browser, a new SSO session
			_, last = si.exchange(si.code())
		}
		si.s.mu.Lock()
		codes, sessions, tokens := len(si.s.codes), len(si.s.sessions), len(si.s.refresh)
		si.s.mu.Unlock()
		if codes > 3 || sessions > 3 || tokens > 3 {
			t.Fatalf("%d codes, %d sessions, %d refresh tokens: over the limit of 3", codes, sessions, tokens)
		}
		if status, body := refreshWith(si, last["refresh_token"].(string)); status != http.StatusOK {
			t.Fatalf("the newest refresh token was dropped: %d %v", status, body["error"])
		}
	})
}

func TestLoginPageShowsTheDemoAccounts(t *testing.T) {
	si := newStandIn(t, "../kickstart/kickstart.json", "")
	resp, err := si.client.Get(si.url + "/oauth2/authorize?" + url.Values{
		"client_id": {"e9fdb985-9173-4e01-9d73-ac2d60d1dc8e"}, "redirect_uri": {"http://localhost:8080/callback"},
		"response_type": {"code"}, "scope": {"openid"}, "code_challenge": {challenge(verifier)}, "code_challenge_method": {"S256"},
	}.Encode())
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	page := string(raw)
	at := strings.Index(page, `id="demo-hint"`)
	if at < 0 {
		t.Fatalf("no demo hint on the login page:\n%s", page)
	}
	hint := page[at:]
	for _, want := range []string{"richard@example.com", "admin@example.com", "<code>password</code>"} {
		if !strings.Contains(hint, want) {
			t.Errorf("the login page's demo hint lacks %s:\n%s", want, page)
		}
	}
	if strings.Contains(page, `id="demo-hint" hidden`) {
		t.Error("the hint is hidden")
	}
}

// The login form carries a token bound to this browser and to the
// authorize request; a post without it, with another request's, or from
// another site is refused and logs nobody in. No other site may frame it.
func TestLoginFormRefusesCrossSitePosts(t *testing.T) {
	logs := &lockedBuffer{}
	si := newStandInWith(t, "testdata/reusable.json", "Reusable", Options{Log: slog.New(slog.NewTextHandler(logs, nil))})
	params := authRequest(testRedirect)
	form, err := LoginForm(si.client, si.url+"/oauth2/authorize?"+params.Encode())
	if err != nil {
		t.Fatal(err)
	}
	form.Set("loginId", "dana@example.com")
	form.Set("password", "pw")
	post := func(edit func(url.Values, *http.Request)) *http.Response {
		f := url.Values{}
		for k, v := range form {
			f[k] = v
		}
		req, _ := http.NewRequest(http.MethodPost, si.url+"/oauth2/authorize", nil)
		edit(f, req)
		req.Body = io.NopCloser(strings.NewReader(f.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := si.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	for name, edit := range map[string]func(url.Values, *http.Request){
		"no token":                       func(f url.Values, _ *http.Request) { f.Del("csrf_token") },
		"another request's token":        func(f url.Values, _ *http.Request) { f.Set("state", "another") },
		"Origin of another site":         func(_ url.Values, r *http.Request) { r.Header.Set("Origin", "http://evil.test") },
		"Sec-Fetch-Site: cross-site":     func(_ url.Values, r *http.Request) { r.Header.Set("Sec-Fetch-Site", "cross-site") },
		"Sec-Fetch-Site: same-site":      func(_ url.Values, r *http.Request) { r.Header.Set("Sec-Fetch-Site", "same-site") },
		"no browser cookie (cross-site)": func(_ url.Values, r *http.Request) { r.Header.Set("Cookie", "standin.csrf=") },
	} {
		t.Run(name, func(t *testing.T) {
			resp := post(edit)
			if resp.StatusCode != http.StatusForbidden || resp.Header.Get("Location") != "" {
				t.Fatalf("%d %q, want 403 and no redirect", resp.StatusCode, resp.Header.Get("Location"))
			}
		})
	}
	if n := len(si.s.sessions); n != 0 {
		t.Fatalf("refused posts opened %d SSO sessions", n)
	}
	// Anyone can post them: a warning per interval, with the count, not one each.
	for range 100 {
		post(func(_ url.Values, r *http.Request) { r.Header.Set("Origin", "http://evil.test") })
	}
	if n := strings.Count(logs.String(), "login form refused"); n != 1 || !strings.Contains(logs.String(), "occurrences=1") {
		t.Errorf("106 refused forms wrote %d warnings, want 1:\n%s", n, logs)
	}
	// The genuine form, from the stand-in's own page, logs in.
	resp := post(func(_ url.Values, r *http.Request) {
		r.Header.Set("Origin", si.url)
		r.Header.Set("Sec-Fetch-Site", "same-origin")
	})
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(resp.Header.Get("Location"), testRedirect+"?code=") {
		t.Fatalf("the genuine form: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	// The login page cannot be framed by another site.
	page, err := http.Get(si.url + "/oauth2/authorize?" + params.Encode())
	if err != nil {
		t.Fatal(err)
	}
	page.Body.Close()
	if page.Header.Get("X-Frame-Options") != "DENY" || !strings.Contains(page.Header.Get("Content-Security-Policy"), "frame-ancestors 'none'") {
		t.Fatalf("framing headers: %q %q", page.Header.Get("X-Frame-Options"), page.Header.Get("Content-Security-Policy"))
	}
}

// lockedBuffer collects the logs of concurrent handlers.
type lockedBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

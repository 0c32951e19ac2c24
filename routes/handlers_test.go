package routes

import (
	"encoding/json"
	"html"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/changebank/changebank/tokens"
	"github.com/changebank/changebank/tokens/cookie"
)

func TestCallbackRefusesWhatItDidNotStart(t *testing.T) {
	s := newStack(t, stackOptions{})

	t.Run("replayed", func(t *testing.T) {
		b := s.browser()
		cb := b.submitLogin(b.startLogin(""), "richard@example.com", "password")
		if p := b.get(cb.location()); p.status != http.StatusSeeOther {
			t.Fatalf("first use: %d", p.status)
		}
		// Replayed where the login succeeded (Back), it sends the user on;
		// anywhere else it is refused as spent.
		if p := b.get(cb.location()); p.status != http.StatusSeeOther || p.location() != "/account" {
			t.Fatalf("replay while logged in: %d %q", p.status, p.location())
		}
		p := s.browser().get(cb.location())
		if p.status != http.StatusBadRequest || !strings.Contains(p.body, "no longer valid") {
			t.Fatalf("replay: %d %s", p.status, p.body)
		}
	})
	t.Run("from another browser", func(t *testing.T) {
		victim := s.browser()
		cb := victim.submitLogin(victim.startLogin(""), "richard@example.com", "password")
		attacker := s.browser()
		if p := attacker.get(cb.location()); p.status != http.StatusBadRequest || attacker.cookie(cookie.Access) != "" {
			t.Fatalf("a callback URL worked in a browser that did not start the login: %d", p.status)
		}
	})
	t.Run("expired", func(t *testing.T) {
		b := s.browser()
		cb := b.submitLogin(b.startLogin(""), "richard@example.com", "password")
		s.clock.Advance(loginTTL + time.Minute)
		defer s.clock.Advance(-(loginTTL + time.Minute))
		if p := b.get(cb.location()); p.status != http.StatusBadRequest {
			t.Fatalf("an 11-minute-old login completed: %d", p.status)
		}
	})
	t.Run("code refused by the provider", func(t *testing.T) {
		b := s.browser()
		cb := b.submitLogin(b.startLogin(""), "richard@example.com", "password")
		// The login is still live here, but the provider's code (60 s) is not.
		s.clock.Advance(2 * time.Minute)
		defer s.clock.Advance(-2 * time.Minute)
		p := b.get(cb.location())
		if p.status != http.StatusBadRequest || !strings.Contains(p.body, "no longer valid") || strings.Contains(p.body, "unknown, used or expired") {
			t.Fatalf("refused code: %d %s", p.status, p.body)
		}
		logs := s.logs.String()
		if !strings.Contains(logs, "refused the authorization code") || !strings.Contains(logs, "invalid_grant") ||
			!strings.Contains(logs, "the code is unknown, used or expired") || strings.Contains(logs, "refused the refresh token") {
			t.Fatalf("the log does not say the provider refused the code, and why:\n%s", logs)
		}
	})
	t.Run("wrong state", func(t *testing.T) {
		b := s.browser()
		cb := b.submitLogin(b.startLogin(""), "richard@example.com", "password")
		u, _ := url.Parse(cb.location())
		q := u.Query()
		q.Set("state", "forged")
		if p := b.get("/callback?" + q.Encode()); p.status != http.StatusBadRequest {
			t.Fatalf("forged state: %d", p.status)
		}
	})
	t.Run("forged code", func(t *testing.T) {
		b := s.browser()
		cb := b.submitLogin(b.startLogin(""), "richard@example.com", "password")
		u, _ := url.Parse(cb.location())
		q := u.Query()
		q.Set("code", "forged")
		if p := b.get("/callback?" + q.Encode()); p.status != http.StatusBadRequest || !strings.Contains(p.body, "no longer valid") {
			t.Fatalf("forged code: %d %s", p.status, p.body)
		}
	})
	for _, q := range []string{"", "?state=", "?code=x", "?state=" + strings.Repeat("x", 5000), "?state=%00&code=%ff"} {
		t.Run("junk "+q, func(t *testing.T) {
			if p := s.browser().get("/callback" + q); p.status != http.StatusBadRequest {
				t.Fatalf("%d", p.status)
			}
		})
	}
	t.Run("provider error", func(t *testing.T) {
		b := s.browser()
		authorize, _ := url.Parse(b.startLogin(""))
		state := authorize.Query().Get("state")
		p := b.get("/callback?" + url.Values{"state": {state}, "error": {"access_denied"}, "error_description": {"<b>call 555-0100</b>"}}.Encode())
		if p.status != http.StatusBadRequest || !strings.Contains(p.body, "cancelled or refused") || strings.Contains(p.body, "555-0100") {
			t.Fatalf("provider error: %d %s", p.status, p.body)
		}
	})
}

func TestTwoTabsLogInAtOnce(t *testing.T) {
	s := newStack(t, stackOptions{})
	b := s.browser()
	tab1 := b.startLogin("/make-change")
	tab2 := b.startLogin("/session")
	cb1 := b.submitLogin(tab1, "richard@example.com", "password")
	cb2 := b.submitLogin(tab2, "richard@example.com", "password")
	// The second tab finishes first.
	if p := b.get(cb2.location()); p.location() != "/session" {
		t.Fatalf("tab 2: %d %q", p.status, p.location())
	}
	if p := b.get(cb1.location()); p.location() != "/make-change" {
		t.Fatalf("tab 1: %d %q %s", p.status, p.location(), p.body)
	}
}

func TestLoginTransactionsAreCapped(t *testing.T) {
	s := newStack(t, stackOptions{})
	b := s.browser()
	for range maxLogins + 3 {
		b.startLogin("")
	}
	u, _ := url.Parse(s.appURL)
	n := 0
	for _, c := range b.jar.Cookies(u) {
		if strings.HasPrefix(c.Name, "cb_login_") {
			n++
		}
	}
	if n != maxLogins {
		t.Fatalf("%d login transaction cookies kept, want %d", n, maxLogins)
	}
}

func TestMakeChange(t *testing.T) {
	s := newStack(t, stackOptions{})
	b := s.browser()
	p := b.login("/make-change")
	token := csrf(t, p.body)
	cases := []struct {
		in     string
		status int
		want   string
	}{
		{"1.23", 200, "<strong id=\"nickels\">24</strong> nickels and <strong id=\"pennies\">3</strong> pennies"},
		{"0.04", 200, "<strong id=\"nickels\">0</strong> nickels and <strong id=\"pennies\">4</strong> pennies"},
		{"$5", 200, "<strong id=\"nickels\">100</strong> nickels and <strong id=\"pennies\">0</strong>"},
		{" 0.1 ", 200, "<strong id=\"nickels\">2</strong> nickels"},
		{"1000000", 200, "$1,000,000.00 with <strong id=\"nickels\">20,000,000</strong> nickels"},
		{"0.06", 200, "<strong id=\"nickels\">1</strong> nickel and <strong id=\"pennies\">1</strong> penny!"},
		{"1,000", 200, "$1,000.00 with <strong id=\"nickels\">20,000</strong> nickels and <strong id=\"pennies\">0</strong> pennies"},
		{"$1,000,000.00", 200, "$1,000,000.00 with <strong id=\"nickels\">20,000,000</strong>"},
		{"$999,999.99", 200, "$999,999.99 with <strong id=\"nickels\">19,999,999</strong> nickels and <strong id=\"pennies\">4</strong> pennies"},
		{"1,00", 422, "a comma between each group of three digits"},
		{"10,0000", 422, "a comma between each group of three digits"},
		{",100", 422, "a comma between each group of three digits"},
		{"1,000,00.50", 422, "a comma between each group of three digits"},
		{"1.000,50", 422, "digits and a point"},
		{"1,000.123", 422, "two decimal places"},
		{"1,000,000.01", 422, "at most $1,000,000.00"},
		{"", 422, "Enter an amount"},
		{"abc", 422, "digits and a point"},
		{"-1", 422, "positive amount"},
		{"0", 422, "above $0.00"},
		{"1e309", 422, "digits and a point"},
		{"NaN", 422, "digits and a point"},
		{"Infinity", 422, "digits and a point"},
		{"0.001", 422, "two decimal places"},
		{"12.345", 422, "two decimal places"},
		{"99999999999999999999", 422, "at most $1,000,000.00"},
		{"1000000.01", 422, "at most $1,000,000.00"},
		{"<script>alert(1)</script>", 422, "&lt;script&gt;"},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			p := b.post("/make-change", url.Values{"amount": {tc.in}, "csrf_token": {token}})
			if p.status != tc.status || !strings.Contains(p.body, tc.want) {
				t.Fatalf("%q: %d, want %d with %q\n%s", tc.in, p.status, tc.status, tc.want, p.body)
			}
		})
	}
}

func TestFormsNeedCSRFTokenAndSameOrigin(t *testing.T) {
	s := newStack(t, stackOptions{})
	b := s.browser()
	token := csrf(t, b.login("/make-change").body)
	if p := b.post("/make-change", url.Values{"amount": {"1"}}); p.status != http.StatusForbidden {
		t.Fatalf("no token: %d", p.status)
	}
	if p := b.post("/make-change", url.Values{"amount": {"1"}, "csrf_token": {token + "x"}}); p.status != http.StatusForbidden {
		t.Fatalf("bad token: %d", p.status)
	}
	req, _ := http.NewRequest(http.MethodPost, s.appURL+"/make-change", strings.NewReader(url.Values{"amount": {"1"}, "csrf_token": {token}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "https://evil.example")
	if p := b.do(req); p.status != http.StatusForbidden {
		t.Fatalf("cross-origin: %d", p.status)
	}
	// An oversize body is refused, not parsed.
	if p := b.post("/make-change", url.Values{"amount": {strings.Repeat("9", 200<<10)}, "csrf_token": {token}}); p.status != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversize form: %d", p.status)
	}
	// Another login's token does not fit this session.
	other := s.browser()
	otherToken := csrf(t, other.login("/make-change").body)
	if p := b.post("/make-change", url.Values{"amount": {"1"}, "csrf_token": {otherToken}}); p.status != http.StatusForbidden {
		t.Fatalf("another session's token: %d", p.status)
	}
	// The token survives a refresh.
	s.clock.Advance(3 * time.Minute)
	if p := b.post("/make-change", url.Values{"amount": {"1"}, "csrf_token": {token}}); p.status != http.StatusOK || s.idp.TokenCalls("refresh_token") != 1 {
		t.Fatalf("after refresh: %d, %d refreshes", p.status, s.idp.TokenCalls("refresh_token"))
	}
}

func TestLogoutEndsTheSessionEverywhere(t *testing.T) {
	s := newStack(t, stackOptions{})
	b := s.browser()
	token := csrf(t, b.login("").body)
	rt := s.refreshToken(b)
	u, _ := url.Parse(s.appURL)
	stolen := b.jar.Cookies(u)

	p := b.post("/logout", url.Values{"csrf_token": {token}})
	// A page that moves the browser on at once, not a redirect: a form's
	// redirects are held to form-action, and a provider's logout may lead
	// to another origin (see tokens.Sessions.Logout).
	end, err := url.Parse(p.next())
	if p.status != http.StatusOK || p.location() != "" || err != nil || !strings.HasPrefix(p.next(), s.idpURL+"/oauth2/logout?") {
		t.Fatalf("logout: %d %q %q", p.status, p.location(), p.next())
	}
	if q := end.Query(); q.Get("client_id") != clientID || q.Get("post_logout_redirect_uri") != s.appURL+"/" {
		t.Fatalf("end-session query: %v", q)
	}
	for _, name := range []string{cookie.Access, cookie.Refresh, cookie.UserInfo} {
		if c := b.setCookie(name); c == nil || c.MaxAge >= 0 || !c.HttpOnly || c.Path != "/" || c.SameSite != http.SameSiteLaxMode {
			t.Errorf("%s not expired with its attributes: %+v", name, c)
		}
	}
	// The refresh token is revoked at the provider.
	req, _ := http.NewRequest(http.MethodPost, s.idpURL+"/oauth2/token", strings.NewReader(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(clientID, clientSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("the refresh token still works after logout: %d", resp.StatusCode)
	}
	// The provider's logout lands back home, logged out.
	// Its page loads every application's logout URL in a hidden iframe, then
	// moves on to post_logout_redirect_uri through its "continue" link.
	page := b.get(p.next())
	next := regexp.MustCompile(`id="continue" href="([^"]+)"`).FindStringSubmatch(page.body)
	if next == nil {
		t.Fatalf("the provider's logout page has no continue link: %s", page.body)
	}
	home, _ := b.follow(b.get(html.UnescapeString(next[1])))
	if !strings.Contains(home.body, "Dollars in, coins out") {
		t.Fatalf("after logout: %s", home.body)
	}
	if p := b.get("/account"); p.status != http.StatusSeeOther {
		t.Fatalf("/account after logout: %d", p.status)
	}
	// A response that was in flight re-sets the old cookies: the session stays dead.
	for _, c := range stolen {
		if c.Name != cookie.LoggedOut {
			b.setJarCookie(c.Name, c.Value)
		}
	}
	if p := b.get("/account"); p.status != http.StatusSeeOther {
		t.Fatalf("old cookies resurrected the session: %d", p.status)
	}
	for _, c := range stolen {
		if c.Name != cookie.LoggedOut {
			b.setJarCookie(c.Name, c.Value)
		}
	}
	if p := b.get("/"); p.status != http.StatusOK {
		t.Fatalf("home with resurrected cookies sends the visitor on: %d %q", p.status, p.location())
	}
	// A new login works despite the logout marker.
	if p := b.login(""); p.status != http.StatusOK {
		t.Fatalf("login after logout: %d", p.status)
	}
}

func TestGETLogoutIsTheFrontChannelLogout(t *testing.T) {
	s := newStack(t, stackOptions{})
	b := s.browser()
	b.login("")
	p := b.get("/logout")
	if p.status != http.StatusSeeOther || p.location() != "/" {
		t.Fatalf("GET /logout: %d %q (must not bounce to the provider)", p.status, p.location())
	}
	if b.cookie(cookie.UserInfo) != "" || b.cookie(cookie.Access) != "" {
		t.Fatal("cookies kept")
	}

	// In the provider's hidden frame: no redirect, whose page would take the
	// notice in the frame; the page the user opens next says what happened.
	b.login("")
	if f := b.getFramed("/logout"); f.status != http.StatusOK || f.location() != "" {
		t.Fatalf("framed GET /logout: %d %q", f.status, f.location())
	}
	if b.cookie(cookie.UserInfo) != "" {
		t.Fatal("cookies kept by the framed GET /logout")
	}
	if code, _ := notice(b.get("/").body); code != string(tokens.NoticeLogoutProvider) {
		t.Fatalf("the next page's notice: %q", code)
	}
}

func TestAPIMe(t *testing.T) {
	s := newStack(t, stackOptions{})
	anon := s.browser()
	p := anon.get("/api/me")
	if p.status != http.StatusUnauthorized || p.location() != "" || !strings.HasPrefix(p.header.Get("WWW-Authenticate"), "Bearer") || !strings.Contains(p.header.Get("Content-Type"), "json") {
		t.Fatalf("anonymous: %d %v", p.status, p.header)
	}
	b := s.browser()
	b.login("")
	p = b.get("/api/me")
	var me map[string]any
	if err := json.Unmarshal([]byte(p.body), &me); err != nil || p.status != http.StatusOK {
		t.Fatalf("cookie: %d %s", p.status, p.body)
	}
	if me["email"] != "richard@example.com" || me["authenticated_by"] != "cookie" || me["access_token_expires_at"] == nil {
		t.Fatalf("cookie: %v", me)
	}
	bearer := func(token string) response {
		req, _ := http.NewRequest(http.MethodGet, s.appURL+"/api/me", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		return s.browser().do(req)
	}
	if p := bearer(b.cookie(cookie.Access)); p.status != http.StatusOK || !strings.Contains(p.body, `"authenticated_by":"bearer"`) {
		t.Fatalf("bearer: %d %s", p.status, p.body)
	}
	if p := bearer(s.idToken(t)); p.status != http.StatusUnauthorized {
		t.Fatalf("an ID token as bearer: %d", p.status)
	}
	if p := bearer("garbage"); p.status != http.StatusUnauthorized || !strings.Contains(p.header.Get("WWW-Authenticate"), "invalid_token") {
		t.Fatalf("bad bearer: %d %v", p.status, p.header)
	}
	s.clock.Advance(3 * time.Minute)
	if p := bearer(b.cookie(cookie.Access)); p.status != http.StatusUnauthorized {
		t.Fatalf("expired bearer: %d", p.status)
	}
}

func TestHomeHealthStaticAndErrors(t *testing.T) {
	s := newStack(t, stackOptions{})
	anon := s.browser()
	if p := anon.get("/"); p.status != http.StatusOK || !strings.Contains(p.body, `href="/login"`) {
		t.Fatalf("home: %d", p.status)
	}
	b := s.browser()
	b.login("")
	if p := b.get("/"); p.status != http.StatusSeeOther || p.location() != "/account" {
		t.Fatalf("home, logged in: %d %q", p.status, p.location())
	}
	if p := anon.get("/healthz"); p.status != http.StatusOK {
		t.Fatalf("healthz: %d", p.status)
	}
	if p := anon.get("/readyz"); p.status != http.StatusOK {
		t.Fatalf("readyz: %d", p.status)
	}
	if p := anon.get("/static/css/app.css"); p.status != http.StatusOK || !strings.HasPrefix(p.header.Get("Content-Type"), "text/css") {
		t.Fatalf("css: %d %q", p.status, p.header.Get("Content-Type"))
	}
	if p := anon.get("/static/"); p.status != http.StatusNotFound || strings.Contains(p.body, `href="css/"`) {
		t.Fatalf("the static directory is listed: %d", p.status)
	}
	if p := anon.get("/nope"); p.status != http.StatusNotFound || !strings.Contains(p.body, "no page") {
		t.Fatalf("404: %d", p.status)
	}
	if p := anon.get("/api/nope"); p.status != http.StatusNotFound || !strings.Contains(p.body, "not_found") {
		t.Fatalf("API 404: %d", p.status)
	}
	if p := anon.post("/account", nil); p.status != http.StatusMethodNotAllowed {
		t.Fatalf("405: %d", p.status)
	}
}

func TestInspector(t *testing.T) {
	s := newStack(t, stackOptions{})
	b := s.browser()
	b.login("")
	p := b.get("/session")
	if p.status != http.StatusOK {
		t.Fatalf("/session: %d", p.status)
	}
	for _, want := range []string{cookie.Access, cookie.Refresh, cookie.UserInfo, `kid&#34;`, clientID, "HttpOnly", "SameSite=Lax", "fingerprint", `id="refreshed">no`, "data-expires"} {
		if !strings.Contains(p.body, want) {
			t.Errorf("the inspector lacks %q", want)
		}
	}
	for _, secret := range []string{s.refreshToken(b), b.cookie(cookie.Refresh), b.cookie(cookie.UserInfo), b.cookie(cookie.Access)} {
		if strings.Contains(p.body, secret) {
			t.Fatal("the inspector shows a raw token or cookie value")
		}
	}
	token := csrf(t, p.body)
	p, _ = b.follow(b.post("/session/expire", url.Values{"csrf_token": {token}}))
	if p.status != http.StatusOK || !strings.Contains(p.body, `id="refreshed">yes`) || s.idp.TokenCalls("refresh_token") != 1 {
		t.Fatalf("expire now: %d, refresh calls %d", p.status, s.idp.TokenCalls("refresh_token"))
	}
	s.clock.Advance(refreshGrace + time.Second)
	p, _ = b.follow(b.post("/session/refresh", url.Values{"csrf_token": {token}}))
	if p.status != http.StatusOK || !strings.Contains(p.body, "redeemed the refresh token") || s.idp.TokenCalls("refresh_token") != 2 {
		t.Fatalf("refresh now: %d, refresh calls %d", p.status, s.idp.TokenCalls("refresh_token"))
	}
}

func TestProviderStartingUp(t *testing.T) {
	h, _ := appWithoutProvider(t)
	for path, want := range map[string]int{"/readyz": 503, "/login": 503, "/healthz": 200, "/": 200} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		if rec.Code != want {
			t.Errorf("%s: %d, want %d", path, rec.Code, want)
		}
		if path == "/login" && !strings.Contains(rec.Body.String(), "starting") {
			t.Errorf("/login while the provider starts: %s", rec.Body.String())
		}
	}
}

// TestProviderMisconfiguredIsNamed: a discovery document naming another
// issuer than ISSUER is a setting to fix, not a provider starting: /login
// and /readyz name both values instead of "wait".
func TestProviderMisconfiguredIsNamed(t *testing.T) {
	wrong := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]string{"issuer": "https://tenant.example/", "authorization_endpoint": "https://tenant.example/authorize",
			"token_endpoint": "https://tenant.example/token", "jwks_uri": "https://tenant.example/jwks"})
	}))
	t.Cleanup(wrong.Close)
	log := slog.New(slog.DiscardHandler)
	h, sessions, err := wire(t, log, tokens.Config{Issuer: wrong.URL, HTTPClient: &http.Client{Timeout: time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	provider := sessions.Provider()
	for deadline := time.Now().Add(5 * time.Second); provider.Problem() == "" && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	for _, path := range []string{"/login", "/readyz"} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		body := html.UnescapeString(rec.Body.String())
		if path == "/readyz" {
			var ready struct{ Problem string }
			_ = json.Unmarshal(rec.Body.Bytes(), &ready)
			body = ready.Problem
		}
		if rec.Code != http.StatusServiceUnavailable || !strings.Contains(body, `"https://tenant.example/"`) || !strings.Contains(body, `"`+wrong.URL+`"`) {
			t.Errorf("%s: %d, does not name both issuers:\n%s", path, rec.Code, body)
		}
		if strings.Contains(body, "is starting or cannot be reached") {
			t.Errorf("%s still says the provider is starting", path)
		}
	}
}

// appWithoutProvider is the app facing a provider that is not there (yet):
// discovery keeps failing. It returns the handler and the provider's URL.
func appWithoutProvider(t *testing.T) (http.Handler, string) {
	t.Helper()
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	log := slog.New(slog.DiscardHandler)
	h, _, err := wire(t, log, tokens.Config{Issuer: dead.URL, HTTPClient: &http.Client{Timeout: time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	return h, dead.URL
}

// idToken logs Richard in at the provider directly, as another client of
// the same application would, and returns the ID token it gets.
func (s *stack) idToken(t *testing.T) string {
	t.Helper()
	verifier := oauth2.GenerateVerifier()
	q := url.Values{
		"client_id": {clientID}, "redirect_uri": {s.appURL + "/callback"}, "response_type": {"code"},
		"scope": {"openid email profile"}, "state": {"s"}, "nonce": {"n"},
		"code_challenge": {oauth2.S256ChallengeFromVerifier(verifier)}, "code_challenge_method": {"S256"},
	}
	cb := s.browser().submitLogin(s.idpURL+"/oauth2/authorize?"+q.Encode(), "richard@example.com", "password")
	loc, err := url.Parse(cb.location())
	if err != nil || loc.Query().Get("code") == "" {
		t.Fatalf("no code: %d %q", cb.status, cb.location())
	}
	form := url.Values{"grant_type": {"authorization_code"}, "code": {loc.Query().Get("code")},
		"redirect_uri": {s.appURL + "/callback"}, "code_verifier": {verifier}}
	req, _ := http.NewRequest(http.MethodPost, s.idpURL+"/oauth2/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(clientID, clientSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		IDToken string `json:"id_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body.IDToken == "" {
		t.Fatalf("token response: %d %v", resp.StatusCode, err)
	}
	return body.IDToken
}

// TestFormActionAllowsTheIssuersOriginWhenItHasAPath: the logout form's
// redirect goes to the provider's end-session endpoint, which the CSP must
// allow by the issuer's origin; an issuer with a path (Keycloak's realms)
// must not put the path, or nothing, there.
func TestFormActionAllowsTheIssuersOriginWhenItHasAPath(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	h, _, err := wire(t, log, tokens.Config{Issuer: "https://id.example/realms/bank/"})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	if csp := rec.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "form-action 'self' https://id.example;") && !strings.HasSuffix(csp, "form-action 'self' https://id.example") {
		t.Fatalf("CSP: %s", csp)
	}
}

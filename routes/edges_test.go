package routes

import (
	"encoding/json"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/changebank/changebank/tokens"
	"github.com/changebank/changebank/tokens/cookie"
	"github.com/changebank/changebank/tokens/oidc"
)

func TestAmountIsParsedWhole(t *testing.T) {
	s := newStack(t, stackOptions{})
	b := s.browser()
	token := csrf(t, b.login("/make-change").body)
	padded := "1.5" + strings.Repeat(" ", 70)
	cases := []struct {
		name, in string
		status   int
		want     string
	}{
		// Cut to 64 bytes before parsing, this read as $1.50.
		{"junk past the display length", padded + "x", http.StatusUnprocessableEntity, "digits and a point"},
		{"spaces past the display length", padded, http.StatusOK, "$1.50"},
		{"digits past the display length", strings.Repeat("0", 70) + "7", http.StatusOK, "$7.00"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := b.post("/make-change", url.Values{"amount": {tc.in}, "csrf_token": {token}})
			if p.status != tc.status || !strings.Contains(p.body, tc.want) {
				t.Fatalf("%d, want %d with %q\n%s", p.status, tc.status, tc.want, p.body)
			}
		})
	}
}

func TestHEADAnswersLikeGET(t *testing.T) {
	s := newStack(t, stackOptions{})
	anon := s.browser()
	b := s.browser()
	b.login("")
	cases := []struct {
		name   string
		who    *browser
		path   string
		status int
	}{
		{"home", anon, "/", http.StatusOK},
		{"health", anon, "/healthz", http.StatusOK},
		{"stylesheet", anon, "/static/css/app.css", http.StatusOK},
		{"account", b, "/account", http.StatusOK},
		{"private page, logged out", anon, "/account", http.StatusSeeOther},
		{"missing page", anon, "/nope", http.StatusNotFound},
		{"POST-only route", b, "/session/expire", http.StatusMethodNotAllowed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			get := tc.who.get(tc.path)
			req, _ := http.NewRequest(http.MethodHead, s.appURL+tc.path, nil)
			head := tc.who.do(req)
			if head.status != tc.status || get.status != tc.status {
				t.Fatalf("HEAD %d, GET %d, want %d", head.status, get.status, tc.status)
			}
			if head.body != "" || head.header.Get("Content-Type") != get.header.Get("Content-Type") {
				t.Fatalf("HEAD: body %q, type %q; GET type %q", head.body, head.header.Get("Content-Type"), get.header.Get("Content-Type"))
			}
			if tc.path == "/" && head.header.Get("Content-Length") != strconv.Itoa(len(get.body)) {
				t.Fatalf("HEAD / announces %q bytes, GET sends %d", head.header.Get("Content-Length"), len(get.body))
			}
		})
	}
}

func TestOversizeFormIsTooLarge(t *testing.T) {
	s := newStack(t, stackOptions{})
	b := s.browser()
	token := csrf(t, b.login("/make-change").body)
	p := b.post("/make-change", url.Values{"amount": {strings.Repeat("9", 200<<10)}, "csrf_token": {token}})
	if p.status != http.StatusRequestEntityTooLarge || !strings.Contains(p.body, "too large") || !strings.HasPrefix(p.header.Get("Content-Type"), "text/html") {
		t.Fatalf("oversize form: %d %q\n%s", p.status, p.header.Get("Content-Type"), p.body)
	}
	if strings.Contains(p.body, "expired") {
		t.Fatal("an oversize form is told it expired")
	}
}

// The Authorization header decides, whatever cookies come along: a Bearer
// token in any case of the scheme (RFC 9110), anything else refused.
func TestAuthorizationHeaderDecides(t *testing.T) {
	s := newStack(t, stackOptions{})
	b := s.browser()
	b.login("")
	token := b.cookie(cookie.Access)
	cases := []struct {
		name, header string
		status       int
		err          string
	}{
		{"Bearer", "Bearer " + token, http.StatusOK, ""},
		{"bearer", "bearer " + token, http.StatusOK, ""},
		{"BEARER", "BEARER " + token, http.StatusOK, ""},
		{"Bearer and no token", "Bearer", http.StatusUnauthorized, "invalid_token"},
		{"bearer garbage", "bearer garbage", http.StatusUnauthorized, "invalid_token"},
		{"Basic", "Basic " + token, http.StatusUnauthorized, "invalid_request"},
		{"Token", "Token " + token, http.StatusUnauthorized, "invalid_request"},
		{"DPoP", "DPoP " + token, http.StatusUnauthorized, "invalid_request"},
		{"Bearer without a space", "Bearer" + token, http.StatusUnauthorized, "invalid_request"},
		{"Digest", "Digest username=richard", http.StatusUnauthorized, "invalid_request"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, s.appURL+"/api/me", nil)
			req.Header.Set("Authorization", tc.header)
			p := b.do(req) // the browser's valid session cookies go along
			if p.status != tc.status {
				t.Fatalf("%d, want %d: %s", p.status, tc.status, p.body)
			}
			if tc.status == http.StatusOK && !strings.Contains(p.body, `"authenticated_by":"bearer"`) {
				t.Fatalf("not authenticated by the bearer token: %s", p.body)
			}
			if tc.err != "" && (!strings.Contains(p.body, `"error":"`+tc.err+`"`) || !strings.HasPrefix(p.header.Get("WWW-Authenticate"), "Bearer")) {
				t.Fatalf("want error %s with a Bearer challenge: %v %s", tc.err, p.header.Get("WWW-Authenticate"), p.body)
			}
		})
	}
}

func TestMeLeavesOutAMissingAuthTime(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	cases := []struct {
		name     string
		authTime oidc.UnixTime
		want     any
	}{
		{"no auth_time", 0, nil},
		{"auth_time", oidc.UnixTime(now.Add(-time.Hour).Unix()), "2027-01-15T07:00:00Z"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			u := apiUser{source: "bearer", claims: &tokens.Claims{Subject: "s", Expiry: oidc.UnixTime(now.Add(time.Minute).Unix()), AuthTime: tc.authTime}}
			raw, _ := json.Marshal(meBody(u, now))
			var body map[string]any
			if err := json.Unmarshal(raw, &body); err != nil {
				t.Fatal(err)
			}
			if got := body["auth_time"]; got != tc.want {
				t.Fatalf("auth_time = %v, want %v (%s)", got, tc.want, raw)
			}
		})
	}
}

func TestErrorPagesShowWhoIsLoggedIn(t *testing.T) {
	s := newStack(t, stackOptions{})
	anon := s.browser()
	b := s.browser()
	token := csrf(t, b.login("").body)
	cases := []struct {
		name     string
		who      *browser
		do       func(*browser) response
		status   int
		loggedIn bool
	}{
		{"404, logged in", b, func(b *browser) response { return b.get("/nope") }, http.StatusNotFound, true},
		{"405, logged in", b, func(b *browser) response { return b.post("/account", nil) }, http.StatusMethodNotAllowed, true},
		{"expired form, logged in", b, func(b *browser) response {
			return b.post("/make-change", url.Values{"amount": {"1"}, "csrf_token": {"stale"}})
		}, http.StatusForbidden, true},
		{"404, logged out", anon, func(b *browser) response { return b.get("/nope") }, http.StatusNotFound, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.do(tc.who)
			if p.status != tc.status {
				t.Fatalf("%d, want %d", p.status, tc.status)
			}
			if got := strings.Contains(p.body, `id="logout"`); got != tc.loggedIn || strings.Contains(p.body, `id="login"`) == tc.loggedIn {
				t.Fatalf("the header shows logged in = %v, want %v\n%s", got, tc.loggedIn, p.body)
			}
			if tc.loggedIn && csrf(t, p.body) != token {
				t.Fatal("the error page's logout button carries the wrong CSRF token")
			}
		})
	}
	// The logout button on an error page works.
	p := b.post("/logout", url.Values{"csrf_token": {csrf(t, b.get("/nope").body)}})
	if p.next() == "" || b.cookie(cookie.UserInfo) != "" {
		t.Fatalf("logout from an error page: %d", p.status)
	}
}

func TestBackAfterLoginGoesOnToTheAccount(t *testing.T) {
	s := newStack(t, stackOptions{})
	b := s.browser()
	cb := b.submitLogin(b.startLogin("/make-change"), "richard@example.com", "password")
	if p, _ := b.follow(cb); p.status != http.StatusOK {
		t.Fatalf("login: %d", p.status)
	}
	// Back replays the spent callback URL while logged in.
	if p := b.get(cb.location()); p.status != http.StatusSeeOther || p.location() != "/account" {
		t.Fatalf("callback replayed while logged in: %d %q\n%s", p.status, p.location(), p.body)
	}
	// Someone else (no session) replaying it is told the link is spent.
	if p := s.browser().get(cb.location()); p.status != http.StatusBadRequest || !strings.Contains(p.body, "no longer valid") {
		t.Fatalf("callback replayed without a session: %d\n%s", p.status, p.body)
	}
}

func TestTemplateErrorsAreLogged(t *testing.T) {
	assets := fstest.MapFS{"templates/layout.html": {Data: []byte(`{{template "content" .}}`)}, "templates/trace.html": {}}
	for _, name := range pageNames {
		assets["templates/"+name+".html"] = &fstest.MapFile{Data: []byte(`{{define "content"}}{{.Data.Missing}}{{end}}`)}
	}
	logs := &syncBuffer{}
	v, err := parseViews(assets, slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	c, _ := gin.CreateTestContext(rec)
	c.Request = httptest.NewRequest(http.MethodGet, "/account", nil)
	v.render(c, http.StatusOK, "account", page{Data: struct{ Private string }{"private-value"}})
	if rec.Code != http.StatusInternalServerError || strings.Contains(rec.Body.String(), "Missing") {
		t.Fatalf("%d %q", rec.Code, rec.Body.String())
	}
	if !strings.Contains(logs.String(), "rendering a page") || !strings.Contains(logs.String(), "page=account") || !strings.Contains(logs.String(), "Missing") {
		t.Fatalf("the template error was not logged: %q", logs)
	}
	if strings.Contains(logs.String(), "private-value") {
		t.Fatalf("the page's data was logged: %q", logs)
	}
}

func TestLoginWhileTheProviderIsUnreachableNamesItAndHowToStartOne(t *testing.T) {
	h, deadURL := appWithoutProvider(t)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/login", nil))
	if rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("/login: %d", rec.Code)
	}
	// "Restart": a second `go run . -embedded-idp` beside this app would find its port taken.
	// The commands show as code, not between backticks.
	for _, want := range []string{deadURL, "restart it with the built-in stand-in, <code>go run . -embedded-idp</code>", "<code>docker compose up</code>"} {
		if !strings.Contains(rec.Body.String(), want) {
			t.Errorf("the /login page does not say %q:\n%s", want, rec.Body)
		}
	}
	if strings.Contains(rec.Body.String(), "`") {
		t.Errorf("the /login page shows backticks:\n%s", rec.Body)
	}
}

// TestMeReportsScopesFromScopeOrScp: Hydra and Okta send scp, an array,
// where FusionAuth sends scope, a string; /api/me shows either.
func TestMeReportsScopesFromScopeOrScp(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	for _, claims := range []string{`{"scope":"openid offline_access"}`, `{"scp":["openid","offline_access"]}`} {
		var c tokens.Claims
		if err := json.Unmarshal([]byte(claims), &c); err != nil {
			t.Fatal(err)
		}
		c.Subject, c.Expiry = "s", oidc.UnixTime(now.Add(time.Minute).Unix())
		raw, _ := json.Marshal(meBody(apiUser{source: "bearer", claims: &c}, now))
		if !strings.Contains(string(raw), `"scope":"openid offline_access"`) {
			t.Errorf("%s: /api/me says %s", claims, raw)
		}
	}
}

// /api/me's body, byte for byte, for a cookie session and a Bearer token
// without auth_time: what API clients parse, with the keys in the order
// they have always had.
func TestMeBodyBytes(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	claims := &tokens.Claims{Subject: "s-1", Expiry: oidc.UnixTime(now.Add(time.Minute).Unix()), Scope: "openid offline_access",
		Roles: []string{"customer"}, AuthTime: oidc.UnixTime(now.Add(-time.Hour).Unix())}
	user := &tokens.UserInfo{Name: `Richard "<Rich>" Hendricks`, Email: "richard@example.com"}
	for _, tc := range []struct {
		u    apiUser
		want string
	}{
		{apiUser{source: "cookie", claims: claims, user: user},
			`{"access_token_expires_at":"2027-01-15T08:01:00Z","access_token_expires_in":60,"auth_time":"2027-01-15T07:00:00Z","authenticated_by":"cookie","email":"richard@example.com","email_verified":false,"name":"Richard \"\u003cRich\u003e\" Hendricks","roles":["customer"],"scope":"openid offline_access","sub":"s-1"}`},
		{apiUser{source: "bearer", claims: &tokens.Claims{Subject: "s-2", Expiry: claims.Expiry}},
			`{"access_token_expires_at":"2027-01-15T08:01:00Z","access_token_expires_in":60,"authenticated_by":"bearer","roles":null,"scope":"","sub":"s-2"}`},
	} {
		body := meBody(tc.u, now)
		if raw := body.appendJSON(nil); string(raw) != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.u.source, raw, tc.want)
		}
		// The golden bytes are encoding/json's, as gin's c.JSON wrote them.
		if raw, err := json.Marshal(body); err != nil || string(raw) != tc.want {
			t.Errorf("%s: encoding/json writes %s (%v)", tc.u.source, raw, err)
		}
	}
}

// TestMeBodyIsWhatEncodingJSONWrites holds /api/me's hand-written encoder to
// encoding/json for the strings a provider may put in a token or profile:
// quotes, backslashes, every control byte, HTML's <, > and &, invalid UTF-8,
// U+2028 and U+2029, and random bytes.
func TestMeBodyIsWhatEncodingJSONWrites(t *testing.T) {
	hostile := []string{"", `a"b\c`, "<script>&amp;</script>", "\u2028\u2029 end", "caf\xc3\xa9 \xff\xfe \xc3", "\x7f\x00", "日本語"}
	for b := 0; b < 0x20; b++ {
		hostile = append(hostile, "x"+string(rune(b))+"y")
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		b := make([]byte, rng.IntN(24))
		for i := range b {
			b[i] = byte(rng.IntN(256))
		}
		hostile = append(hostile, string(b))
	}
	exp := oidc.UnixTime(1_800_000_060)
	for _, s := range hostile {
		v := true
		a := &meAnswer{AccessTokenExpiresAt: s, AuthTime: s, AuthenticatedBy: s, Email: &s, EmailVerified: &v, Name: &s,
			Roles: []string{s, s}, Scope: s, Subject: s, AccessTokenExpiresIn: int(exp)}
		want, err := json.Marshal(a)
		if err != nil {
			t.Fatal(err)
		}
		if got := a.appendJSON(nil); string(got) != string(want) {
			t.Fatalf("%q:\n got %s\nwant %s", s, got, want)
		}
	}
}

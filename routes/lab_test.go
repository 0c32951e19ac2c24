package routes

import (
	"encoding/base64"
	"encoding/json"
	"html"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/changebank/changebank/routes/inspect"
	"github.com/changebank/changebank/tokens/check"
	"github.com/changebank/changebank/tokens/cookie"
)

// kidOf returns the kid in a JWT's header.
func kidOf(t *testing.T, jwt string) string {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(strings.Split(jwt, ".")[0])
	if err != nil {
		t.Fatal(err)
	}
	var h struct {
		Kid string `json:"kid"`
	}
	if err := json.Unmarshal(b, &h); err != nil || h.Kid == "" {
		t.Fatalf("no kid in the header: %v", err)
	}
	return h.Kid
}

// secretsIn fails when the page holds a token or cookie value: every JWT
// and JWE starts with "eyJ"; the page's CSRF token is left out first.
func secretsIn(t *testing.T, b *browser, body string) {
	t.Helper()
	body = strings.ReplaceAll(body, csrf(t, body), "")
	for _, name := range []string{cookie.Access, cookie.Refresh, cookie.UserInfo} {
		if v := b.cookie(name); v != "" && strings.Contains(body, v) {
			t.Errorf("the page shows the value of %s", name)
		}
	}
	if i := strings.Index(body, "eyJ"); i >= 0 {
		t.Errorf("the page holds a token or sealed value: ...%s...", body[max(0, i-80):min(len(body), i+40)])
	}
}

func TestInspectorTracesThisRequest(t *testing.T) {
	s := newStack(t, stackOptions{})
	b := s.browser()
	b.login("")
	kid := kidOf(t, b.cookie(cookie.Access))

	p := b.get("/session")
	if p.status != http.StatusOK {
		t.Fatalf("/session: %d", p.status)
	}
	if !strings.Contains(p.body, `id="trace-kid">`+kid+`<`) || !strings.Contains(p.body, `data-outcome="accepted"`) {
		t.Fatalf("the trace does not name the key %s or the outcome:\n%s", kid, p.body)
	}
	checks := []check.Name{check.UserInfo, check.Logout, check.Algorithm, check.Signature,
		check.Issuer, check.Audience, check.NotBefore, check.Expiry, check.Kind, check.Binding}
	for _, c := range checks {
		if !strings.Contains(p.body, `data-check="`+html.EscapeString(string(c))+`" data-result="pass"`) {
			t.Errorf("the trace does not show %q passing", c)
		}
	}
	// The refresh cookie is opened only to refresh: a genuine session's
	// trace skips it and nothing else.
	if strings.Contains(p.body, `data-result="fail"`) || strings.Count(p.body, `data-result="not checked"`) != 1 ||
		!strings.Contains(p.body, `data-check="`+html.EscapeString(string(check.Refresh))+`" data-result="not checked"`) {
		t.Error("a genuine session's trace shows a failed check, or skips another than the refresh cookie")
	}
	secretsIn(t, b, p.body)

	// After "Expire the access token now" the browser sends no access token:
	// the trace says so, and that this request refreshed.
	p, _ = b.follow(b.post("/session/expire", url.Values{"csrf_token": {csrf(t, p.body)}}))
	if !strings.Contains(p.body, `data-outcome="would refresh"`) || !strings.Contains(p.body, `data-check="token size and shape" data-result="fail"`) {
		t.Fatalf("after expire now, the trace does not show the missing access token:\n%s", p.body)
	}
}

func TestAttackLabVerdicts(t *testing.T) {
	s := newStack(t, stackOptions{})
	b := s.browser()
	b.login("")
	lab := b.get("/session/lab")
	if lab.status != http.StatusOK {
		t.Fatalf("/session/lab: %d", lab.status)
	}
	token := csrf(t, lab.body)
	cases := []struct {
		attack inspect.Attack
		check  check.Name
		says   string // part of the sentence a learner reads
	}{
		{inspect.AttackFlipByte, check.UserInfo, "breaks the authentication tag"},
		{inspect.AttackMoveRefresh, check.UserInfo, "another cookie&#39;s sealed value"},
		{inspect.AttackAlgNone, check.Algorithm, "never from the token"},
		{inspect.AttackHS256Public, check.Algorithm, "never from the token"},
		{inspect.AttackExpired, check.Expiry, "exp has passed"},
		{inspect.AttackOtherSubject, check.Binding, "name different users"},
		{inspect.AttackForeignKey, check.Signature, "does not verify with the provider&#39;s public key"},
		{inspect.AttackAfterLogout, check.Logout, "logged out after this session began"},
	}
	if len(cases) != len(inspect.Attacks) {
		t.Fatalf("%d cases for %d attacks", len(cases), len(inspect.Attacks))
	}
	for _, tc := range cases {
		t.Run(string(tc.attack), func(t *testing.T) {
			if !strings.Contains(lab.body, `value="`+string(tc.attack)+`"`) {
				t.Fatalf("the lab has no button for %s", tc.attack)
			}
			b.forgetSets()
			p := b.post("/session/lab", url.Values{"csrf_token": {token}, "attack": {string(tc.attack)}})
			if p.status != http.StatusOK {
				t.Fatalf("%d\n%s", p.status, p.body)
			}
			decided := `data-decided="` + html.EscapeString(string(tc.check)) + `"`
			if !strings.Contains(p.body, decided) || !strings.Contains(p.body, "Caught by the <strong>"+html.EscapeString(string(tc.check))) ||
				!strings.Contains(p.body, tc.says) {
				t.Fatalf("verdict does not name %q with %q:\n%s", tc.check, tc.says, p.body)
			}
			if sc := p.header.Values("Set-Cookie"); len(sc) != 0 {
				t.Fatalf("the lab set cookies: %d Set-Cookie headers", len(sc))
			}
			secretsIn(t, b, p.body)
		})
	}
	if n := s.idp.TokenCalls("refresh_token") + s.idp.TokenCalls("authorization_code"); n != 1 {
		t.Fatalf("token endpoint calls: %d, want only the login's", n)
	}
	if !strings.Contains(s.logs.String(), `msg="attack lab" attack=alg-none outcome=refused decided=algorithm`) {
		t.Errorf("the log does not record the attack and its verdict:\n%s", s.logs)
	}
	// An operator reading the log sees the lab's attacks, not sessions refused.
	if strings.Contains(s.logs.String(), "session refused") {
		t.Errorf("the lab's attacks were logged as refused sessions:\n%s", s.logs)
	}
	// The real session is as it was.
	if p := b.get("/account"); p.status != http.StatusOK || s.idp.TokenCalls("refresh_token") != 0 {
		t.Fatalf("after the lab: %d, refresh calls %d", p.status, s.idp.TokenCalls("refresh_token"))
	}
}

func TestAttackLabNeverRefreshes(t *testing.T) {
	s := newStack(t, stackOptions{})
	b := s.browser()
	b.login("")
	token := csrf(t, b.get("/session/lab").body)
	access := b.cookie(cookie.Access)
	// The access token expires while the lab page is open: an attack must
	// still leave the cookies alone, where any page would refresh them.
	s.clock.Advance(3 * time.Minute)
	b.forgetSets()
	p := b.post("/session/lab", url.Values{"csrf_token": {token}, "attack": {string(inspect.AttackOtherSubject)}})
	if p.status != http.StatusOK || !strings.Contains(p.body, `data-decided="subject binding"`) {
		t.Fatalf("%d\n%s", p.status, p.body)
	}
	if len(p.header.Values("Set-Cookie")) != 0 || s.idp.TokenCalls("refresh_token") != 0 || b.cookie(cookie.Access) != access {
		t.Fatalf("the lab touched the session: %d Set-Cookie, %d refresh calls", len(p.header.Values("Set-Cookie")), s.idp.TokenCalls("refresh_token"))
	}
}

func TestAttackLabRefusals(t *testing.T) {
	s := newStack(t, stackOptions{})
	b := s.browser()
	b.login("")
	token := csrf(t, b.get("/session/lab").body)
	cases := []struct {
		name   string
		form   url.Values
		status int
		says   string
	}{
		{"unknown attack", url.Values{"csrf_token": {token}, "attack": {"drop-table"}}, http.StatusBadRequest, "no such attack"},
		{"no attack", url.Values{"csrf_token": {token}}, http.StatusBadRequest, "no such attack"},
		{"no CSRF token", url.Values{"attack": {"alg-none"}}, http.StatusForbidden, "expired"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := b.post("/session/lab", tc.form)
			if p.status != tc.status || !strings.Contains(p.body, tc.says) {
				t.Fatalf("%d, want %d with %q\n%s", p.status, tc.status, tc.says, p.body)
			}
		})
	}
	t.Run("no access token", func(t *testing.T) {
		// "Expire the access token now", and the lab posted before any page
		// brought a new one: a clear answer, and still nothing refreshed.
		b := s.browser()
		token := csrf(t, b.login("/session/lab").body)
		b.post("/session/expire", url.Values{"csrf_token": {token}})
		b.forgetSets()
		p := b.post("/session/lab", url.Values{"csrf_token": {token}, "attack": {"alg-none"}})
		if p.status != http.StatusConflict || !strings.Contains(p.body, "no access token") || len(p.header.Values("Set-Cookie")) != 0 {
			t.Fatalf("%d, %d Set-Cookie\n%s", p.status, len(p.header.Values("Set-Cookie")), p.body)
		}
	})
	t.Run("cross-site", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPost, s.appURL+"/session/lab",
			strings.NewReader(url.Values{"csrf_token": {token}, "attack": {"alg-none"}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", "http://evil.example")
		if p := b.do(req); p.status != http.StatusForbidden {
			t.Fatalf("cross-site post: %d", p.status)
		}
	})
	t.Run("logged out", func(t *testing.T) {
		p := s.browser().post("/session/lab", url.Values{"attack": {"alg-none"}})
		if p.status != http.StatusSeeOther || !strings.HasPrefix(p.location(), "/login") {
			t.Fatalf("%d %q", p.status, p.location())
		}
	})
}

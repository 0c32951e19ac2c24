package routes

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/changebank/changebank/idp"
	"github.com/changebank/changebank/tokens/cookie"
)

func TestLoginLandsOnAccountWithHttpOnlyCookies(t *testing.T) {
	s := newStack(t, stackOptions{})
	b := s.browser()
	p := b.login("")
	if p.status != http.StatusOK || !strings.Contains(p.body, "Richard Hendricks") || !strings.Contains(p.body, "richard@example.com") {
		t.Fatalf("after login: %d\n%s", p.status, p.body)
	}
	for _, name := range []string{cookie.Access, cookie.Refresh, cookie.UserInfo} {
		c := b.setCookie(name)
		if c == nil || c.Value == "" {
			t.Fatalf("%s was not set", name)
		}
		if !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Path != "/" || c.Domain != "" || c.MaxAge <= 0 {
			t.Errorf("%s attributes: %+v", name, c)
		}
	}
	// The refresh token and profile are sealed: neither appears in the clear.
	if v := b.cookie(cookie.UserInfo); strings.Contains(v, "richard") || !strings.HasPrefix(v, "eyJ") {
		t.Errorf("cb_userinfo is not sealed: %q", v)
	}
	if v, rt := b.cookie(cookie.Refresh), s.refreshToken(b); rt == "" || strings.Contains(v, rt) || !strings.HasPrefix(v, "eyJ") {
		t.Errorf("cb_refresh_token is not sealed, or holds no refresh token")
	}
	// The refresh cookie outlives the access cookie.
	if at, rt := b.setCookie(cookie.Access), b.setCookie(cookie.Refresh); rt.MaxAge < 24*3600 || at.MaxAge > 300 {
		t.Errorf("lifetimes: access %ds, refresh %ds", at.MaxAge, rt.MaxAge)
	}
	// The login transaction cookie is gone.
	for _, c := range b.sets {
		if strings.HasPrefix(c.Name, "cb_login_") && c.MaxAge >= 0 && c.Value != "" && b.cookie(c.Name) != "" {
			t.Errorf("login transaction cookie %s survived the callback", c.Name)
		}
	}
	if got := p.header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("account page Cache-Control = %q", got)
	}
}

func TestDeepLinkReturnsAfterLogin(t *testing.T) {
	s := newStack(t, stackOptions{})
	b := s.browser()
	p := b.get("/make-change?x=1")
	if p.status != http.StatusSeeOther || p.location() != "/login?return_to=%2Fmake-change%3Fx%3D1" {
		t.Fatalf("logged out /make-change: %d %q", p.status, p.location())
	}
	cb := b.submitLogin(b.startLogin("/make-change?x=1"), "richard@example.com", "password")
	p = b.get(cb.location())
	if p.location() != "/make-change?x=1" {
		t.Fatalf("callback sent us to %q", p.location())
	}
}

func TestReturnToNeverLeavesTheSite(t *testing.T) {
	s := newStack(t, stackOptions{})
	for _, evil := range []string{"//evil.example/x", "/\\evil.example", "https://evil.example/", "/ok\r\nX: y", "javascript:alert(1)"} {
		t.Run(evil, func(t *testing.T) {
			b := s.browser()
			cb := b.submitLogin(b.startLogin(evil), "richard@example.com", "password")
			if p := b.get(cb.location()); p.location() != "/account" {
				t.Fatalf("return_to %q led to %q", evil, p.location())
			}
		})
	}
}

func TestSilentRefreshRotatesTokens(t *testing.T) {
	s := newStack(t, stackOptions{}) // the kickstart's OneTimeUse policy
	b := s.browser()
	b.login("")
	oldAccess, oldRefresh := b.cookie(cookie.Access), s.refreshToken(b)

	s.clock.Advance(3 * time.Minute) // the kickstart's access tokens live 2 minutes
	p := b.get("/account")
	if p.status != http.StatusOK || !strings.Contains(p.body, "Richard Hendricks") {
		t.Fatalf("after expiry: %d %q", p.status, p.location())
	}
	if b.cookie(cookie.Access) == oldAccess {
		t.Fatal("the access cookie was not replaced")
	}
	if newRefresh := s.refreshToken(b); newRefresh == oldRefresh || newRefresh == "" {
		t.Fatal("the rotated refresh token was not stored")
	}
	if n := s.idp.TokenCalls("refresh_token"); n != 1 {
		t.Fatalf("token calls: %d", n)
	}
	// And again, with the rotated token.
	s.clock.Advance(3 * time.Minute)
	if p := b.get("/account"); p.status != http.StatusOK {
		t.Fatalf("second refresh: %d %q", p.status, p.location())
	}
}

func TestReusableRefreshTokenIsKept(t *testing.T) {
	s := newStack(t, stackOptions{refreshPolicy: "Reusable"})
	b := s.browser()
	b.login("")
	rt := s.refreshToken(b)
	for i := range 2 {
		s.clock.Advance(3 * time.Minute)
		if p := b.get("/account"); p.status != http.StatusOK {
			t.Fatalf("refresh %d: %d %q", i, p.status, p.location())
		}
		if s.refreshToken(b) != rt {
			t.Fatal("the refresh token changed although the provider returned none")
		}
	}
	if n := s.idp.TokenCalls("refresh_token"); n != 2 {
		t.Fatalf("token calls: %d", n)
	}
}

// refreshToken opens the browser's sealed refresh cookie, as only the server can.
func (s *stack) refreshToken(b *browser) string {
	s.t.Helper()
	plain, err := s.sealer.Open(cookie.Refresh, b.cookie(cookie.Refresh))
	if err != nil {
		s.t.Fatalf("opening cb_refresh_token: %v", err)
	}
	var rc struct {
		Token string `json:"rt"`
	}
	_ = json.Unmarshal(plain, &rc)
	return rc.Token
}

func TestFiftyRequestsWithOneExpiredTokenRefreshOnce(t *testing.T) {
	s := newStack(t, stackOptions{}) // OneTimeUse: a second refresh would be refused
	b := s.browser()
	b.login("")
	s.clock.Advance(3 * time.Minute)

	// The same cookies on all of them, as a page firing requests at once sends.
	u, _ := url.Parse(s.appURL)
	cookies := b.jar.Cookies(u)
	send := func() (int, []*http.Cookie) {
		req, _ := http.NewRequest(http.MethodGet, s.appURL+"/api/me", nil)
		for _, c := range cookies {
			req.AddCookie(c)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Error(err)
			return 0, nil
		}
		resp.Body.Close()
		return resp.StatusCode, resp.Cookies()
	}
	var wg sync.WaitGroup
	statuses := make(chan int, 50)
	for range 50 {
		wg.Go(func() {
			status, set := send()
			statuses <- status
			if status == http.StatusOK && len(set) == 0 {
				t.Error("a refreshed response carried no new cookies")
			}
		})
	}
	wg.Wait()
	close(statuses)
	for st := range statuses {
		if st != http.StatusOK {
			t.Fatalf("a request got %d", st)
		}
	}
	if n := s.idp.TokenCalls("refresh_token"); n != 1 {
		t.Fatalf("50 racing requests made %d token calls, want 1", n)
	}
	// A straggler with the old cookies, a few seconds later: served, no new call.
	s.clock.Advance(5 * time.Second)
	if st, _ := send(); st != http.StatusOK || s.idp.TokenCalls("refresh_token") != 1 {
		t.Fatalf("straggler: %d, token calls %d", st, s.idp.TokenCalls("refresh_token"))
	}
}

func TestProviderDownDuringRefreshKeepsTheSession(t *testing.T) {
	s := newStack(t, stackOptions{})
	b := s.browser()
	b.login("")
	s.clock.Advance(3 * time.Minute)
	before := b.cookie(cookie.Refresh)

	for _, mode := range []idp.FailureMode{idp.Down, idp.ServerErr} {
		s.idp.FailTokens(idp.Failure{Mode: mode})
		b.forgetSets()
		p := b.get("/account")
		if p.status != http.StatusServiceUnavailable || !strings.Contains(p.body, "try again") || p.header.Get("Retry-After") == "" {
			t.Fatalf("mode %d: %d %q", mode, p.status, p.body)
		}
		if len(b.sets) != 0 {
			t.Fatalf("mode %d: a transient failure touched cookies: %v", mode, b.sets)
		}
		api := b.get("/api/me")
		if api.status != http.StatusServiceUnavailable || api.header.Get("Retry-After") == "" || !strings.Contains(api.body, "temporarily_unavailable") {
			t.Fatalf("mode %d: API %d %q", mode, api.status, api.body)
		}
	}
	if b.cookie(cookie.Refresh) != before {
		t.Fatal("the refresh cookie changed while the provider was down")
	}
	// A slow provider: the app's request gives up after its client's
	// timeout (2 s here) and answers 503. The stand-in answers after 4 s,
	// within the detached call's own limit, and the test's browser would
	// wait 10 s, so a 503 can only come from the app giving up.
	s.idp.FailTokens(idp.Failure{Mode: idp.Slow, Delay: 4 * time.Second})
	if p := b.get("/account"); p.status != http.StatusServiceUnavailable {
		t.Fatalf("slow provider: %d", p.status)
	}
	s.idp.FailTokens(idp.Failure{})
	// The slow call goes on after the request gave up (the provider has
	// already rotated the token); until it lands, requests are told to try
	// again, then its result is served. 20 s is a hang guard.
	p := b.get("/account")
	for deadline := time.Now().Add(20 * time.Second); p.status == http.StatusServiceUnavailable && time.Now().Before(deadline); {
		p = b.get("/account")
	}
	if p.status != http.StatusOK || !strings.Contains(p.body, "Richard Hendricks") {
		t.Fatalf("provider back: %d %q", p.status, p.location())
	}
}

func TestRefusedRefreshEndsTheSession(t *testing.T) {
	s := newStack(t, stackOptions{})
	b := s.browser()
	b.login("")
	// Revoke at the provider behind the app's back (an admin, another device's logout...).
	s.revokeRichard()
	s.clock.Advance(3 * time.Minute)
	if api := b.get("/api/me"); api.status != http.StatusUnauthorized || api.header.Get("WWW-Authenticate") == "" {
		t.Fatalf("API after invalid_grant: %d", api.status)
	}
	b.login("") // the API call cleared the cookies; log in and revoke again for the page
	s.revokeRichard()
	s.clock.Advance(3 * time.Minute)
	p := b.get("/make-change")
	if p.status != http.StatusSeeOther || p.location() != "/login?return_to=%2Fmake-change" {
		t.Fatalf("page after invalid_grant: %d %q", p.status, p.location())
	}
	if b.cookie(cookie.Refresh) != "" || b.cookie(cookie.UserInfo) != "" {
		t.Fatal("the dead session's cookies were kept")
	}
}

// revokeRichard revokes all of Richard's refresh tokens at the provider.
func (s *stack) revokeRichard() {
	s.t.Helper()
	req, _ := http.NewRequest(http.MethodDelete, s.idpURL+"/api/jwt/refresh?userId=00000000-0000-0000-0000-111111111111", nil)
	req.Header.Set("Authorization", apiKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		s.t.Fatalf("revoke: %d", resp.StatusCode)
	}
}

func TestKeyRotationIsPickedUp(t *testing.T) {
	s := newStack(t, stackOptions{})
	b := s.browser()
	b.login("")
	kid, err := s.idp.RotateKey()
	if err != nil {
		t.Fatal(err)
	}
	s.clock.Advance(3 * time.Minute)
	p := b.get("/account")
	if p.status != http.StatusOK {
		t.Fatalf("after rotation: %d %q\n%s", p.status, p.location(), s.logs)
	}
	if !strings.Contains(decodeJWT(b.cookie(cookie.Access)), kid) {
		t.Fatal("the new access token is not signed with the rotated key")
	}
	// A fresh login after the rotation works too.
	if p := s.browser().login(""); p.status != http.StatusOK {
		t.Fatalf("login after rotation: %d", p.status)
	}
}

func TestTamperedCookiesEndTheSession(t *testing.T) {
	s := newStack(t, stackOptions{})
	other := s.browser()
	adminPage, _ := other.follow(other.submitLogin(other.startLogin(""), "admin@example.com", "password"))
	if adminPage.status != http.StatusOK {
		t.Fatalf("admin login: %d", adminPage.status)
	}

	cases := map[string]func(b *browser){
		"garbage access token": func(b *browser) { b.setJarCookie(cookie.Access, "garbage") },
		"forged access token": func(b *browser) {
			parts := strings.Split(b.cookie(cookie.Access), ".")
			b.setJarCookie(cookie.Access, parts[0]+"."+parts[1]+"x."+parts[2])
		},
		"oversize access token": func(b *browser) { b.setJarCookie(cookie.Access, strings.Repeat("a", 3000)) },
		"refresh value moved into userinfo": func(b *browser) {
			b.setJarCookie(cookie.UserInfo, b.cookie(cookie.Refresh))
		},
		"another user's access token": func(b *browser) {
			b.setJarCookie(cookie.Access, other.cookie(cookie.Access))
		},
		// The refresh cookie is opened only to refresh: its binding is
		// checked then, and a mismatch ends the session instead of renewing it.
		"another user's refresh cookie, at the next refresh": func(b *browser) {
			b.setJarCookie(cookie.Refresh, other.cookie(cookie.Refresh))
			s.clock.Advance(3 * time.Minute)
		},
	}
	for name, tamper := range cases {
		t.Run(name, func(t *testing.T) {
			b := s.browser()
			b.login("")
			tamper(b)
			p := b.get("/account")
			if p.status != http.StatusSeeOther || !strings.HasPrefix(p.location(), "/login") {
				t.Fatalf("%d %q\n%s", p.status, p.location(), p.body)
			}
			if b.cookie(cookie.UserInfo) != "" {
				t.Fatal("cookies were not cleared")
			}
		})
	}
}

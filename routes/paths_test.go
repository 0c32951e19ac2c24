package routes

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/changebank/changebank/idp"
	"github.com/changebank/changebank/tokens/cookie"
)

// sessionSets returns the session cookies the browser was sent since its
// last forgetSets.
func (b *browser) sessionSets() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var names []string
	for _, c := range b.sets {
		switch c.Name {
		case cookie.Access, cookie.Refresh, cookie.UserInfo:
			names = append(names, c.Name)
		}
	}
	return names
}

func TestEarlyRefreshFailureServesWithTheCurrentToken(t *testing.T) {
	s := newStack(t, stackOptions{})
	b := s.browser()
	b.login("")
	access := b.cookie(cookie.Access)
	// 3 s before the 2-minute token expires: inside the refresh margin.
	s.clock.Advance(2*time.Minute - 3*time.Second)
	s.idp.FailTokens(idp.Failure{Mode: idp.Down})
	b.forgetSets()
	p := b.get("/account")
	if p.status != http.StatusOK || !strings.Contains(p.body, "Richard Hendricks") {
		t.Fatalf("early refresh failed, current token still good: %d %q", p.status, p.location())
	}
	if api := b.get("/api/me"); api.status != http.StatusOK {
		t.Fatalf("API, early refresh failed: %d %s", api.status, api.body)
	}
	if sets := b.sessionSets(); len(sets) != 0 || b.cookie(cookie.Access) != access {
		t.Fatalf("a failed refresh touched the session cookies: %v", sets)
	}
	if s.idp.TokenCalls("refresh_token") == 0 || !strings.Contains(s.logs.String(), "serving with the current access token") {
		t.Fatalf("no refresh was tried, or the log does not say the current token was used:\n%s", s.logs)
	}
	// Once the token has expired (and its leeway passed), it serves no more.
	s.clock.Advance(time.Minute)
	if p := b.get("/account"); p.status != http.StatusServiceUnavailable || !strings.Contains(p.body, "still logged in") {
		t.Fatalf("expired token, provider down: %d %q", p.status, p.location())
	}
}

func TestCallbackPages(t *testing.T) {
	s := newStack(t, stackOptions{})
	cases := []struct {
		name    string
		nonce   string // replaces the login's nonce on the way to the provider
		failure idp.FailureMode
		status  int
		page    string
		log     string
	}{
		{"nonce mismatch", "another-login's-nonce", idp.Healthy, http.StatusBadRequest,
			"did not pass our checks", "nonce does not match"},
		{"provider down", "", idp.Down, http.StatusServiceUnavailable,
			"unreachable right now", "callback: provider unavailable"},
		{"provider failing", "", idp.ServerErr, http.StatusServiceUnavailable,
			"unreachable right now", "callback: provider unavailable"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := s.browser()
			authorize := b.startLogin("")
			if tc.nonce != "" {
				u, _ := url.Parse(authorize)
				q := u.Query()
				q.Set("nonce", tc.nonce)
				u.RawQuery = q.Encode()
				authorize = u.String()
			}
			cb := b.submitLogin(authorize, "richard@example.com", "password")
			s.idp.FailTokens(idp.Failure{Mode: tc.failure})
			defer s.idp.FailTokens(idp.Failure{})
			b.forgetSets()
			p := b.get(cb.location())
			if p.status != tc.status || !strings.Contains(p.body, tc.page) || !strings.Contains(p.body, `href="/login"`) {
				t.Fatalf("%d, want %d with %q and a way to log in again:\n%s", p.status, tc.status, tc.page, p.body)
			}
			if tc.status == http.StatusServiceUnavailable && p.header.Get("Retry-After") == "" {
				t.Error("503 without Retry-After")
			}
			if sets := b.sessionSets(); len(sets) != 0 || b.cookie(cookie.UserInfo) != "" {
				t.Fatalf("a failed login set session cookies: %v", sets)
			}
			if !strings.Contains(s.logs.String(), tc.log) {
				t.Fatalf("the log does not say %q:\n%s", tc.log, s.logs)
			}
		})
	}
}

func TestRefreshNowFailing(t *testing.T) {
	s := newStack(t, stackOptions{})
	b := s.browser()
	b.login("")
	token := csrf(t, b.get("/session").body)

	// The provider is down: the page says so and the session stays.
	s.idp.FailTokens(idp.Failure{Mode: idp.Down})
	b.forgetSets()
	p := b.post("/session/refresh", url.Values{"csrf_token": {token}})
	if p.status != http.StatusServiceUnavailable || !strings.Contains(p.body, "still logged in") || p.header.Get("Retry-After") == "" {
		t.Fatalf("refresh now, provider down: %d\n%s", p.status, p.body)
	}
	if sets := b.sessionSets(); len(sets) != 0 {
		t.Fatalf("a transient failure touched the session cookies: %v", sets)
	}
	s.idp.FailTokens(idp.Failure{})
	if p := b.get("/session"); p.status != http.StatusOK {
		t.Fatalf("after the provider came back: %d %q", p.status, p.location())
	}

	// The refresh token was revoked: the session ends, and logging in
	// again comes back to the inspector.
	s.revokeRichard()
	p = b.post("/session/refresh", url.Values{"csrf_token": {token}})
	if p.status != http.StatusSeeOther || p.location() != "/login?return_to=/session" {
		t.Fatalf("refresh now, token revoked: %d %q", p.status, p.location())
	}
	if b.cookie(cookie.Refresh) != "" || b.cookie(cookie.UserInfo) != "" || b.cookie(cookie.Access) != "" {
		t.Fatal("the ended session's cookies were kept")
	}
}

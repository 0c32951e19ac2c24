package routes

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/changebank/changebank/tokens"
)

// TestLoggedOutBrowsersCachedTokenIsRefused: the access token of a
// session is in the verified-token cache (it served pages), yet once the
// browser has logged out, its old cookies open nothing, page or API.
func TestLoggedOutBrowsersCachedTokenIsRefused(t *testing.T) {
	s := newStack(t, stackOptions{})
	b := s.browser()
	token := csrf(t, b.login("").body)
	for range 3 {
		if p := b.get("/api/me"); p.status != http.StatusOK {
			t.Fatalf("/api/me before logout: %d", p.status)
		}
	}
	u, _ := url.Parse(s.appURL)
	old := b.jar.Cookies(u)
	if p := b.post("/logout", url.Values{"csrf_token": {token}}); p.status != http.StatusSeeOther {
		t.Fatalf("logout: %d", p.status)
	}
	for _, path := range []string{"/api/me", "/account"} {
		t.Run(path, func(t *testing.T) {
			for _, c := range old {
				if c.Name != tokens.LogoutCookie {
					b.setJarCookie(c.Name, c.Value)
				}
			}
			p := b.get(path)
			if p.status == http.StatusOK {
				t.Fatalf("%s with the cookies from before logout: %d %s", path, p.status, p.body)
			}
		})
	}
}

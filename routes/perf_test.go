package routes

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/changebank/changebank/routes/inspect"
	"github.com/changebank/changebank/tokens/cookie"
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
	if p := b.post("/logout", url.Values{"csrf_token": {token}}); p.next() == "" {
		t.Fatalf("logout: %d", p.status)
	}
	for _, path := range []string{"/api/me", "/account"} {
		t.Run(path, func(t *testing.T) {
			for _, c := range old {
				if c.Name != cookie.LoggedOut {
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

// TestRequestLogLevels: at the default level, pages and API calls are
// logged, static files and health probes (thousands, all alike) are not,
// unless they fail.
func TestRequestLogLevels(t *testing.T) {
	s := newStack(t, stackOptions{infoLogs: true})
	b := s.browser()
	for _, path := range []string{"/static/css/app.css", "/healthz", "/readyz", "/", "/static/nothing.css"} {
		b.get(path)
	}
	logs := s.logs.String()
	for path, want := range map[string]bool{
		"/static/css/app.css": false, "/healthz": false, "/readyz": false,
		"/": true, "/static/nothing.css": true, // a 404 is worth a line
	} {
		if got := strings.Contains(logs, "msg=request method=GET path="+path+" "); got != want {
			t.Errorf("%s logged at info: %v, want %v\n%s", path, got, want, logs)
		}
	}
}

// TestInspectorShowsTheRefreshTokensFingerprint: the refresh cookie is
// opened only when needed, and the inspector is a page that needs it.
func TestInspectorShowsTheRefreshTokensFingerprint(t *testing.T) {
	s := newStack(t, stackOptions{})
	b := s.browser()
	b.login("")
	want := inspect.Fingerprint(s.refreshToken(b))
	if p := b.get("/session"); p.status != http.StatusOK || !strings.Contains(p.body, want) {
		t.Fatalf("/session: %d; the page lacks the refresh token's fingerprint %s", p.status, want)
	}
}

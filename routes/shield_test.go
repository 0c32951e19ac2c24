package routes

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/changebank/changebank/tokens"
	"github.com/changebank/changebank/tokens/cookie"
)

// b64Flip returns part with its last base64url character changed only in
// bits no byte uses (the lowest): it decodes to the same bytes.
func b64Flip(part string) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	last := strings.IndexByte(alphabet, part[len(part)-1])
	return part[:len(part)-1] + string(alphabet[last|1])
}

// Only the compact serialization with canonical base64url is an access
// token: a genuine token written another way (the JWS JSON serialization,
// unused bits set, padding) is refused as Bearer and as the cookie, so one
// token cannot be turned into many signature checks and cache entries.
func TestOnlyTheCompactCanonicalFormIsAnAccessToken(t *testing.T) {
	s := newStack(t, stackOptions{})
	b := s.browser()
	b.login("")
	token := b.cookie(cookie.Access)
	parts := strings.Split(token, ".")
	if len(parts[2])%4 == 0 {
		t.Fatalf("the RS256 signature's base64url has no unused bits: %d chars", len(parts[2]))
	}
	jsonForm, _ := json.Marshal(map[string]any{"protected": parts[0], "payload": parts[1], "signature": parts[2],
		"header": map[string]string{"x": "a.b.c"}})
	variants := map[string]string{
		"JWS JSON serialization":       string(jsonForm),
		"unused bits in the signature": parts[0] + "." + parts[1] + "." + b64Flip(parts[2]),
		"padded signature":             token + strings.Repeat("=", (4-len(parts[2])%4)%4),
		"standard base64 alphabet":     parts[0] + "." + parts[1] + "." + strings.NewReplacer("-", "+", "_", "/").Replace(parts[2]) + "+/",
	}
	for name, v := range variants {
		if v == token {
			t.Fatalf("%s: the variant is the token itself", name)
		}
		t.Run(name+" as Bearer", func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, s.appURL+"/api/me", nil)
			req.Header.Set("Authorization", "Bearer "+v)
			if p := s.browser().do(req); p.status != http.StatusUnauthorized {
				t.Fatalf("%d, want 401: %s", p.status, p.body)
			}
		})
		if strings.HasPrefix(v, "{") {
			continue // no cookie carries quotes: net/http drops such a value unread
		}
		t.Run(name+" as the cookie", func(t *testing.T) {
			other := s.browser()
			other.login("")
			u, _ := url.Parse(s.appURL)
			other.jar.SetCookies(u, []*http.Cookie{{Name: cookie.Access, Path: "/", MaxAge: -1}})
			req, _ := http.NewRequest(http.MethodGet, s.appURL+"/api/me", nil)
			req.Header.Set("Cookie", cookie.Access+"="+v) // the jar adds the others
			if p := other.do(req); p.status != http.StatusUnauthorized {
				t.Fatalf("%d, want 401: %s", p.status, p.body)
			}
		})
	}
	// The genuine token still works as Bearer.
	req, _ := http.NewRequest(http.MethodGet, s.appURL+"/api/me", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	if p := s.browser().do(req); p.status != http.StatusOK {
		t.Fatalf("the genuine token: %d %s", p.status, p.body)
	}
}

// A missing static file is a plain 404: no page with the session's Log out
// button and CSRF token, nothing a cache may keep.
func TestMissingStaticFileIsAPlainUncached404(t *testing.T) {
	s := newStack(t, stackOptions{})
	b := s.browser()
	b.login("")
	p := b.get("/static/missing.css")
	if p.status != http.StatusNotFound {
		t.Fatalf("%d, want 404", p.status)
	}
	if cc := p.header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q, want no-store", cc)
	}
	if strings.Contains(p.body, "csrf_token") || strings.Contains(p.body, "Log out") || strings.Contains(p.body, "Richard") {
		t.Errorf("the 404 shows the session:\n%s", p.body)
	}
	if p.header.Get("Content-Security-Policy") == "" || p.header.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("security headers missing: %v", p.header)
	}
	// A present file is still cached as a static file.
	if p := b.get("/static/css/app.css"); p.status != http.StatusOK || !strings.HasPrefix(p.header.Get("Cache-Control"), "public") {
		t.Errorf("/static/css/app.css: %d %q", p.status, p.header.Get("Cache-Control"))
	}
}

// Another method on a static file is refused plainly, as a missing file is:
// no page with the session's Log out button and CSRF token, nothing a cache
// may keep under a static file's address.
func TestOtherMethodsOnAStaticFileAreAPlainUncached405(t *testing.T) {
	s := newStack(t, stackOptions{})
	b := s.browser()
	token := csrf(t, b.login("").body)
	for _, method := range []string{http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch, http.MethodOptions} {
		t.Run(method, func(t *testing.T) {
			req, _ := http.NewRequest(method, s.appURL+"/static/css/app.css", strings.NewReader("x=1"))
			req.Header.Set("Origin", s.appURL)
			p := b.do(req)
			if p.status != http.StatusMethodNotAllowed {
				t.Fatalf("%d, want 405", p.status)
			}
			if cc := p.header.Get("Cache-Control"); cc != "no-store" {
				t.Errorf("Cache-Control %q, want no-store", cc)
			}
			if strings.Contains(p.body, token) || strings.Contains(p.body, "csrf_token") || strings.Contains(p.body, "Log out") || strings.Contains(p.body, "Richard") {
				t.Errorf("the 405 shows the session:\n%s", p.body)
			}
			if p.header.Get("Content-Security-Policy") == "" || p.header.Get("X-Content-Type-Options") != "nosniff" {
				t.Errorf("security headers missing: %v", p.header)
			}
		})
	}
	// A page's 405 is still the page for people.
	req, _ := http.NewRequest(http.MethodPut, s.appURL+"/account", nil)
	if p := b.do(req); p.status != http.StatusMethodNotAllowed || !strings.Contains(p.body, "does not take that kind of request") {
		t.Errorf("PUT /account: %d\n%s", p.status, p.body)
	}
}

// The front-channel logout's framed answer may be shown by the provider's
// logout page, which frames it on every logout (a refused frame is an error
// in the browser's console each time), and by no other site.
func TestFramedLogoutMayBeFramedByTheProviderAlone(t *testing.T) {
	s := newStack(t, stackOptions{})
	b := s.browser()
	b.login("")
	f := b.getFramed("/logout")
	if f.status != http.StatusOK {
		t.Fatalf("framed GET /logout: %d", f.status)
	}
	csp := f.header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "frame-ancestors "+s.idpURL+";") || strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("framed GET /logout: Content-Security-Policy %q, want frame-ancestors %s", csp, s.idpURL)
	}
	if xfo := f.header.Get("X-Frame-Options"); xfo != "" {
		t.Errorf("framed GET /logout: X-Frame-Options %q would refuse the provider's frame too", xfo)
	}
	// Every other answer, the logout followed as a link among them, refuses every frame.
	for _, path := range []string{"/logout", "/", "/account", "/static/css/app.css"} {
		p := b.get(path)
		if csp := p.header.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") || p.header.Get("X-Frame-Options") != "DENY" {
			t.Errorf("%s: %q, X-Frame-Options %q", path, csp, p.header.Get("X-Frame-Options"))
		}
	}
	if p := b.getFramed("/account"); !strings.Contains(p.header.Get("Content-Security-Policy"), "frame-ancestors 'none'") {
		t.Errorf("framed /account: %q", p.header.Get("Content-Security-Policy"))
	}
}

// A page's path with a trailing slash redirects to the page with every
// security header, and never to a prefix the client names.
func TestTrailingSlashRedirectKeepsTheHeadersAndIgnoresForwardedPrefix(t *testing.T) {
	s := newStack(t, stackOptions{})
	req, _ := http.NewRequest(http.MethodGet, s.appURL+"/account/?x=1", nil)
	req.Header.Set("X-Forwarded-Prefix", "/evil.com")
	p := s.browser().do(req)
	if p.status != http.StatusMovedPermanently || p.location() != "/account?x=1" {
		t.Fatalf("%d %q, want 301 to /account?x=1", p.status, p.location())
	}
	for _, h := range []string{"Content-Security-Policy", "X-Frame-Options", "X-Content-Type-Options", "Referrer-Policy"} {
		if p.header.Get(h) == "" {
			t.Errorf("no %s on the redirect", h)
		}
	}
	if cc := p.header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q, want no-store", cc)
	}
	for _, path := range []string{"//evil.com/", "/nowhere/", "/static/"} {
		if p := s.browser().get(path); p.status != http.StatusNotFound {
			t.Errorf("%s: %d %q, want 404", path, p.status, p.location())
		}
	}
}

// Over https every response tells the browser to come back over https only;
// over http (the demo on localhost) no response does, or a browser would
// refuse the demo's plain-http provider and app for a year.
func TestHSTSOnlyOverHTTPS(t *testing.T) {
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	log := slog.New(slog.DiscardHandler)
	for appURL, want := range map[string]string{"https://bank.example": "max-age=31536000", "http://app.test": ""} {
		h, _, err := wire(t, log, tokens.Config{Issuer: dead.URL, AppURL: appURL, HTTPClient: &http.Client{Timeout: time.Second}})
		if err != nil {
			t.Fatal(err)
		}
		for _, path := range []string{"/", "/static/css/app.css", "/nowhere", "/account/"} {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
			if got := rec.Header().Get("Strict-Transport-Security"); got != want {
				t.Errorf("%s%s: Strict-Transport-Security %q, want %q", appURL, path, got, want)
			}
		}
	}
}

// Anyone can send bad bearer tokens: they are warned about once per
// interval, with a count, not once each.
func TestRefusedBearerTokensDoNotFillTheLog(t *testing.T) {
	s := newStack(t, stackOptions{})
	b := s.browser()
	for range 100 {
		req, _ := http.NewRequest(http.MethodGet, s.appURL+"/api/me", nil)
		req.Header.Set("Authorization", "Bearer not.a.token")
		if p := b.do(req); p.status != http.StatusUnauthorized {
			t.Fatalf("%d, want 401", p.status)
		}
	}
	warnings := 0
	for _, line := range strings.Split(s.logs.String(), "\n") {
		if strings.Contains(line, "level=WARN") && strings.Contains(line, "bearer token refused") {
			warnings++
		}
	}
	if warnings != 1 {
		t.Fatalf("100 bad bearer tokens wrote %d warnings, want 1", warnings)
	}
}

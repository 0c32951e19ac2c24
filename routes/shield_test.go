package routes

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/changebank/changebank/tokens"
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
	token := b.cookie(tokens.AccessCookie)
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
			other.jar.SetCookies(u, []*http.Cookie{{Name: tokens.AccessCookie, Path: "/", MaxAge: -1}})
			req, _ := http.NewRequest(http.MethodGet, s.appURL+"/api/me", nil)
			req.Header.Set("Cookie", tokens.AccessCookie+"="+v) // the jar adds the others
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

package routes

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// TestLogCheckKnowsEverySecret makes sure the check every stack runs at
// cleanup looks for the opaque secrets too (codes, refresh tokens, PKCE
// verifiers, SSO session ids), which do not start with "eyJ".
func TestLogCheckKnowsEverySecret(t *testing.T) {
	s := newStack(t, stackOptions{})
	b := s.browser()
	b.login("")
	s.clock.Advance(3 * time.Minute) // a refresh, for a rotated refresh token
	if p := b.get("/account"); p.status != 200 {
		t.Fatalf("after expiry: %d", p.status)
	}
	byKind := map[string][]string{}
	s.secrets.mu.Lock()
	for v, kind := range s.secrets.values {
		byKind[kind] = append(byKind[kind], v)
	}
	s.secrets.mu.Unlock()
	for _, kind := range []string{
		"code", "code_verifier", "refresh_token", "access_token", "id_token", "sso_session",
		"client_secret", "api_key", "app_secret",
		// The access and SSO cookies hold values recorded above, as issued.
		"cookie cb_refresh_token", "cookie cb_userinfo",
	} {
		t.Run(kind, func(t *testing.T) {
			if len(byKind[kind]) == 0 {
				t.Fatalf("no %s was recorded", kind)
			}
			for _, v := range byKind[kind] {
				// A log line as a careless slog call would write it.
				line := `time=2026-01-01T00:00:00Z level=INFO msg="tokens refreshed" value=` + v + "\n"
				leaks := s.secrets.leaks(line)
				if !slices.ContainsFunc(leaks, func(l string) bool { return strings.HasPrefix(l, kind+" at") }) {
					t.Fatalf("a logged %s goes unnoticed: %v", kind, leaks)
				}
			}
		})
	}
	if got := len(byKind["refresh_token"]); got < 2 {
		t.Errorf("%d refresh tokens recorded, want the first and the rotated one", got)
	}
}

package routes

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
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

// TestAnonymousRequestsCannotFillTheLog: what anyone can send without an
// account (forms from another site, callbacks with anything in them, long
// paths, bad Bearer tokens) adds one line per kind per interval beside the
// access log's line per request, and no line longer than a few hundred
// bytes, whatever the request carried.
func TestAnonymousRequestsCannotFillTheLog(t *testing.T) {
	s := newStack(t, stackOptions{infoLogs: true})
	anon := s.browser()
	before := len(s.logs.String())
	for range 200 {
		req, _ := http.NewRequest(http.MethodPost, s.appURL+"/logout", strings.NewReader("csrf_token=x"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", "https://evil.example")
		if p := anon.do(req); p.status != http.StatusForbidden {
			t.Fatalf("cross-origin POST /logout: %d", p.status)
		}
	}
	huge := strings.Repeat("A", 50<<10)
	for _, q := range []url.Values{{"error": {huge}}, {"error": {huge}, "state": {"no-such-login"}}, {"state": {huge[:200]}, "code": {huge}}} {
		if p := anon.get("/callback?" + q.Encode()); p.status != http.StatusBadRequest {
			t.Fatalf("/callback with 50 KB: %d", p.status)
		}
	}
	for range 200 {
		if p := anon.get("/callback?state=forged&code=forged"); p.status != http.StatusBadRequest {
			t.Fatalf("forged callback: %d", p.status)
		}
		req, _ := http.NewRequest(http.MethodGet, s.appURL+"/api/me", nil)
		req.Header.Set("Authorization", "Bearer "+huge[:5000])
		if p := anon.do(req); p.status != http.StatusUnauthorized {
			t.Fatalf("bad bearer: %d", p.status)
		}
	}
	if p := anon.get("/" + huge[:8000]); p.status != http.StatusNotFound {
		t.Fatalf("a long path: %d", p.status)
	}

	added := s.logs.String()[before:]
	lines, others, otherBytes := 0, 0, 0
	for _, line := range strings.Split(strings.TrimSpace(added), "\n") {
		lines++
		if len(line) > 600 {
			t.Errorf("a %d-byte log line: %.300s...", len(line), line)
		}
		if strings.Contains(line, "level=DEBUG") || strings.Contains(line, " msg=request ") {
			continue // debug is off in production; the access log has its line per request, bounded above
		}
		others++
		otherBytes += len(line) + 1
	}
	// One line per kind: cross-origin form, provider's error, refused callback, bearer.
	if others > 6 || otherBytes > 3<<10 {
		t.Errorf("%d anonymous requests added %d lines (%d bytes) beside the access log, want a few:\n%.3000s", 200+3+400+1, others, otherBytes, added)
	}
	t.Logf("%d lines, %d bytes in all (debug included); %d lines, %d bytes beside the access log", lines, len(added), others, otherBytes)
}

// TestQuietLogCountsWhatItHolds: one line per message per interval, each
// with how many it stands for, and long values cut.
func TestQuietLogCountsWhatItHolds(t *testing.T) {
	var buf syncBuffer
	q := newQuietLog(slog.New(slog.NewTextHandler(&buf, nil)))
	now := time.Unix(1_800_000_000, 0)
	q.now = func() time.Time { return now }
	ctx := context.Background()
	for i := range 25 {
		q.Warn(ctx, "form refused: cross-origin", "path", "/logout")
		q.Info(ctx, "callback refused", "err", errors.New(strings.Repeat("é", 1000)))
		if i == 9 {
			now = now.Add(quietEvery) // the 11th of each starts a new interval
		}
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	want := []string{
		`level=WARN msg="form refused: cross-origin" path=/logout occurrences=1`,
		`level=INFO msg="callback refused" err=`,
		`level=WARN msg="form refused: cross-origin" path=/logout occurrences=10`,
		`level=INFO msg="callback refused" err=`,
	}
	if len(lines) != len(want) {
		t.Fatalf("%d lines, want %d:\n%s", len(lines), len(want), buf.String())
	}
	for i, w := range want {
		if !strings.Contains(lines[i], w) {
			t.Errorf("line %d: %s\nwant %s", i, lines[i], w)
		}
		if len(lines[i]) > maxLogText+150 {
			t.Errorf("line %d has %d bytes", i, len(lines[i]))
		}
	}
	if !strings.Contains(lines[1], "1800 more bytes") || !strings.Contains(lines[3], "occurrences=10") || !utf8.ValidString(buf.String()) {
		t.Errorf("the long error: %s / %s", lines[1], lines[3])
	}
}

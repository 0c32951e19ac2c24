package tokens

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/changebank/changebank/tokens/cookie"
)

// TestCachedUserInfoStillExpires: an opened userinfo value is remembered,
// yet the session ends at its exp, and a value that does not open is never
// remembered as one that did.
func TestCachedUserInfoStillExpires(t *testing.T) {
	now := time.Now()
	clock := func() time.Time { return now }
	cfg := testConfig(testIssuer)
	cfg.Clock = clock
	m := testSessions(t, cfg, nil, nil)
	cookies := m.cookies
	sealed, err := cookies.Seal(cookie.UserInfo, UserInfo{Subject: "u1", LoginAt: now.Unix(), Expires: now.Add(time.Hour).Unix()})
	if err != nil {
		t.Fatal(err)
	}
	req := func(value string) *http.Request {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.AddCookie(&http.Cookie{Name: cookie.UserInfo, Value: value})
		return r
	}
	for range 2 {
		if u, ok := m.User(req(sealed)); !ok || u.Subject != "u1" {
			t.Fatalf("User = %+v, %v", u, ok)
		}
	}
	if m.users.Len() != 1 {
		t.Fatalf("%d userinfo values remembered, want 1", m.users.Len())
	}
	// The tag's last two characters replaced: by "AA", unless they were
	// that already (one run in 256), which would tamper with nothing.
	tampered := sealed[:len(sealed)-2] + "AA"
	if tampered == sealed {
		tampered = sealed[:len(sealed)-2] + "BA"
	}
	for range 2 {
		if _, ok := m.User(req(tampered)); ok {
			t.Fatal("a tampered userinfo value was accepted")
		}
	}
	if m.users.Len() != 1 {
		t.Fatalf("a tampered value was remembered: %d entries", m.users.Len())
	}
	now = now.Add(time.Hour)
	if _, ok := m.User(req(sealed)); ok {
		t.Fatal("a remembered userinfo value outlived its exp")
	}
}

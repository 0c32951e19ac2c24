package tokens

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestOversizeTokensAreRefusedNotSilentlyDropped(t *testing.T) {
	now := time.Now()
	p := NewProvider(Profile{Issuer: testIssuer}, http.DefaultClient, time.Now, discard)
	clock := func() time.Time { return now }
	m := NewManager(NewCookieStore("http://app.test", mustSealer(t, secretA)), NewClient(p, ClientConfig{ID: testClient, AppURL: "http://app.test"}, nil),
		NewVerifier(p, Profile{Issuer: testIssuer, ClientID: testClient}, clock), time.Hour, clock, discard)
	s := &Session{
		Access:  &Claims{Subject: "u1", Expiry: UnixTime(now.Add(time.Minute).Unix())},
		User:    UserInfo{Subject: "u1"},
		Expires: now.Add(time.Hour),
	}
	for size, wantErr := range map[int]bool{1200: false, maxCookieBytes: true} {
		s.AccessToken = strings.Repeat("a", size)
		rec := httptest.NewRecorder()
		err := m.write(rec, s, now)
		if (err != nil) != wantErr {
			t.Fatalf("%d-byte token: err = %v", size, err)
		}
		if wantErr && len(rec.Result().Cookies()) != 0 {
			t.Fatalf("%d-byte token: some cookies were set anyway", size)
		}
		if !wantErr && len(rec.Result().Cookies()) != 2 {
			t.Fatalf("%d-byte token: %d cookies set, want access and userinfo", size, len(rec.Result().Cookies()))
		}
	}
}

// TestCachedUserInfoStillExpires: an opened userinfo value is remembered,
// yet the session ends at its exp, and a value that does not open is never
// remembered as one that did.
func TestCachedUserInfoStillExpires(t *testing.T) {
	now := time.Now()
	clock := func() time.Time { return now }
	cookies := NewCookieStore("http://app.test", mustSealer(t, secretA))
	p := NewProvider(Profile{Issuer: testIssuer}, http.DefaultClient, time.Now, discard)
	m := NewManager(cookies, NewClient(p, ClientConfig{ID: testClient, AppURL: "http://app.test"}, nil),
		NewVerifier(p, Profile{Issuer: testIssuer, ClientID: testClient}, clock), time.Hour, clock, discard)
	sealed, err := cookies.seal(UserInfoCookie, UserInfo{Subject: "u1", LoginAt: now.Unix(), Expires: now.Add(time.Hour).Unix()})
	if err != nil {
		t.Fatal(err)
	}
	req := func(value string) *http.Request {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.AddCookie(&http.Cookie{Name: UserInfoCookie, Value: value})
		return r
	}
	for range 2 {
		if u, ok := m.User(req(sealed)); !ok || u.Subject != "u1" {
			t.Fatalf("User = %+v, %v", u, ok)
		}
	}
	if m.users.len() != 1 {
		t.Fatalf("%d userinfo values remembered, want 1", m.users.len())
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
	if m.users.len() != 1 {
		t.Fatalf("a tampered value was remembered: %d entries", m.users.len())
	}
	now = now.Add(time.Hour)
	if _, ok := m.User(req(sealed)); ok {
		t.Fatal("a remembered userinfo value outlived its exp")
	}
}

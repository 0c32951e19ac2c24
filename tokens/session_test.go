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
	p := NewProvider(testIssuer, "", http.DefaultClient, time.Now, discard)
	clock := func() time.Time { return now }
	m := NewManager(NewCookieStore("http://app.test", mustSealer(t, secretA)), NewClient(p, ClientConfig{ID: testClient, AppURL: "http://app.test"}, nil),
		NewVerifier(p, testIssuer, testClient, clock), time.Hour, clock, discard)
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

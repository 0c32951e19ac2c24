package cookie

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// FuzzCookieReaders holds the app's Cookie readers to net/http's on any
// header: the checked read finds what r.Cookie finds, and the unchecked read
// the session cache is looked up with finds the same values whenever what
// it found holds only bytes a cookie value may hold (the premise of
// SessionUnchecked). Chunked values are reassembled by both, so they
// are compared with each other only.
func FuzzCookieReaders(f *testing.F) {
	for _, seed := range []string{
		"cb_access_token=a.b.c; cb_userinfo=x; cb_refresh_token=y; cb_logged_out=1",
		`cb_userinfo="quoted"; cb_userinfo=second`,
		`cb_access_token=bad\value; cb_access_token=good`,
		"cb_access_token=2~head; cb_access_token.1=tail; cb_userinfo=3~a; cb_userinfo.1=b",
		" cb_logged_out = 12 ;;; =x; cb_refresh_token",
		"cb_access_token=\x7f; cb_access_token=\"\"",
	} {
		f.Add(seed)
	}
	c := NewStore("http://app.test", mustSealer(f, secretA))
	names := []string{Access, Refresh, UserInfo, LoggedOut}
	f.Fuzz(func(t *testing.T, header string) {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Header.Set("Cookie", header)
		checked, unchecked := c.Session(r), c.SessionUnchecked(r)
		got := []string{checked.Access, checked.Refresh, checked.UserInfo, checked.LoggedOut}
		raw := []string{unchecked.Access, unchecked.Refresh, unchecked.UserInfo, unchecked.LoggedOut}
		for i, name := range names {
			if ValidValue(raw[i]) && raw[i] != got[i] {
				t.Fatalf("%s: the unchecked read found %q, the checked one %q", name, raw[i], got[i])
			}
			want := ""
			if ck, err := r.Cookie(name); err == nil {
				want = ck.Value
			}
			if chunkCount(want) == 0 && got[i] != want {
				t.Fatalf("%s: read %q, net/http reads %q", name, got[i], want)
			}
		}
	})
}

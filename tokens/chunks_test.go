package tokens

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/changebank/changebank/tokens/cookie"
	"github.com/changebank/changebank/tokens/oidc"
)

// chunkName and chunkCount are the wire format of chunked cookies (see
// cookie/chunks.go): chunk i ≥ 1 of base is base.i, and the head's value
// starts with the count and a tilde.
func chunkName(base string, i int) string { return base + "." + strconv.Itoa(i) }

func chunkCount(head string) int {
	if len(head) < 2 || head[1] != '~' {
		return 0
	}
	return int(head[0] - '0')
}

// chunkFixture is Sessions without a provider, for what write and the
// cookie readers do alone.
func chunkFixture(t *testing.T, appURL string) (*Sessions, time.Time) {
	t.Helper()
	now := time.Now()
	cfg := testConfig(testIssuer)
	cfg.AppURL, cfg.Clock = appURL, func() time.Time { return now }
	return testSessions(t, cfg, nil, nil), now
}

// bigSession is a session whose access token is tokenBytes long and whose
// name makes cb_userinfo need chunks of its own.
func bigSession(now time.Time, tokenBytes int, name string) *Session {
	return &Session{
		AccessToken:  strings.Repeat("a", tokenBytes),
		Access:       &Claims{Subject: "u1", Expiry: oidc.UnixTime(now.Add(time.Minute).Unix())},
		RefreshToken: "rt-1",
		User:         UserInfo{Subject: "u1", Name: name, LoginAt: now.Unix() - 10},
		Expires:      now.Add(time.Hour),
	}
}

// written returns the Set-Cookie lines of rec and a request carrying the
// cookies they set, in the order given (or reversed).
func written(t *testing.T, rec *httptest.ResponseRecorder, reversed bool) ([]string, *http.Request) {
	t.Helper()
	lines := rec.Header().Values("Set-Cookie")
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	cks := rec.Result().Cookies()
	for i := range cks {
		ck := cks[i]
		if reversed {
			ck = cks[len(cks)-1-i]
		}
		if ck.MaxAge >= 0 {
			r.AddCookie(&http.Cookie{Name: ck.Name, Value: ck.Value})
		}
	}
	return lines, r
}

// TestBigSessionsAreChunkedWithinTheBrowsersLimit: a 16 KB access token and
// a profile too large for one cookie are cut into cookies whose every
// Set-Cookie line a browser keeps, and read back whole, over http and https.
func TestBigSessionsAreChunkedWithinTheBrowsersLimit(t *testing.T) {
	for _, appURL := range []string{"http://app.test", "https://bank.example"} {
		t.Run(appURL, func(t *testing.T) {
			m, now := chunkFixture(t, appURL)
			s := bigSession(now, 16<<10, strings.Repeat("Hendricks ", 500))
			rec := httptest.NewRecorder()
			if err := m.write(rec, s, now); err != nil {
				t.Fatal(err)
			}
			lines, r := written(t, rec, false)
			if len(lines) < 7 {
				t.Fatalf("%d Set-Cookie lines, want the access token and the profile in chunks", len(lines))
			}
			for _, l := range lines {
				if len(l) > cookie.MaxLine {
					t.Errorf("a Set-Cookie line of %d bytes, which a browser drops: %.60s", len(l), l)
				}
				if m.cookies.Secure() && (!strings.HasPrefix(l, "__Host-") || !strings.Contains(l, "; Secure")) {
					t.Errorf("a chunk without the __Host- prefix and Secure: %.60s", l)
				}
			}
			if got := m.cookies.Session(r).Access; got != s.AccessToken {
				t.Fatalf("the access token came back as %d bytes, want the %d written", len(got), len(s.AccessToken))
			}
			if u, ok := m.User(r); !ok || u.Name != s.User.Name {
				t.Fatalf("the chunked profile does not open: %v", ok)
			}
			if _, r := written(t, rec, true); m.cookies.Session(r).Access != s.AccessToken {
				t.Fatal("chunks sent in another order are not read back whole")
			}
		})
	}
}

// TestBrokenChunksBreakTheSession: whatever happens to the chunks of a
// sealed cookie, it opens whole or not at all.
func TestBrokenChunksBreakTheSession(t *testing.T) {
	m, now := chunkFixture(t, "http://app.test")
	write := func(name string) map[string]string {
		rec := httptest.NewRecorder()
		if err := m.write(rec, bigSession(now, 500, name), now); err != nil {
			t.Fatal(err)
		}
		jar := map[string]string{}
		for _, ck := range rec.Result().Cookies() {
			jar[ck.Name] = ck.Value
		}
		return jar
	}
	name := strings.Repeat("Hendricks ", 700)
	jar, other := write(name), write(strings.Repeat("Bachman ", 875)) // same length, another value
	n := chunkCount(jar[cookie.UserInfo])
	if n < 3 {
		t.Fatalf("cb_userinfo in %d chunks, want 3 or more", n)
	}
	c1, last := chunkName(cookie.UserInfo, 1), chunkName(cookie.UserInfo, n-1)
	cases := []struct {
		name  string
		edit  func(j map[string]string)
		opens bool
	}{
		{"untouched", func(map[string]string) {}, true},
		{"an extra chunk beyond the count", func(j map[string]string) { j[chunkName(cookie.UserInfo, n)] = other[c1] }, true},
		{"a chunk missing", func(j map[string]string) { delete(j, c1) }, false},
		{"the last chunk missing", func(j map[string]string) { delete(j, last) }, false},
		{"a chunk from another session", func(j map[string]string) { j[c1] = other[c1] }, false},
		{"two chunks swapped", func(j map[string]string) { j[c1], j[last] = j[last], j[c1] }, false},
		{"a chunk emptied", func(j map[string]string) { j[c1] = "" }, false},
		{"a count larger than the chunks", func(j map[string]string) { j[cookie.UserInfo] = "9" + j[cookie.UserInfo][1:] }, false},
		{"a count of two digits", func(j map[string]string) { j[cookie.UserInfo] = "1" + j[cookie.UserInfo] }, false},
		{"a count of one", func(j map[string]string) { j[cookie.UserInfo] = "1" + j[cookie.UserInfo][1:] }, false},
		{"the head alone", func(j map[string]string) {
			for i := 1; i < n; i++ {
				delete(j, chunkName(cookie.UserInfo, i))
			}
		}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			j := map[string]string{}
			for k, v := range jar {
				j[k] = v
			}
			tc.edit(j)
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			for k, v := range j {
				r.AddCookie(&http.Cookie{Name: k, Value: v})
			}
			u, ok := m.User(r)
			if ok != tc.opens || (ok && u.Name != name) {
				t.Fatalf("opens = %v (name of %d bytes), want %v", ok, len(u.Name), tc.opens)
			}
		})
	}
}

// TestASessionThatShrinksExpiresItsStaleChunks: when a refresh brings a
// smaller token, the chunks the old one needed are deleted; logout and the
// inspector's "Expire the access token now" delete every chunk.
func TestASessionThatShrinksExpiresItsStaleChunks(t *testing.T) {
	m, now := chunkFixture(t, "http://app.test")
	rec := httptest.NewRecorder()
	if err := m.write(rec, bigSession(now, 12<<10, "Richard"), now); err != nil {
		t.Fatal(err)
	}
	_, r := written(t, rec, false)
	carried := m.cookies.Session(r).Carried
	if carried[cookie.Access] < 4 {
		t.Fatalf("the 12 KB token came in %d chunks", carried[cookie.Access])
	}
	expired := func(rec *httptest.ResponseRecorder) map[string]bool {
		out := map[string]bool{}
		for _, ck := range rec.Result().Cookies() {
			if ck.MaxAge < 0 {
				out[ck.Name] = true
			}
		}
		return out
	}
	small := bigSession(now, 2<<10, "Richard")
	small.carried = carried
	rec = httptest.NewRecorder()
	if err := m.write(rec, small, now); err != nil {
		t.Fatal(err)
	}
	gone := expired(rec)
	for i := 1; i < carried[cookie.Access]; i++ {
		if !gone[chunkName(cookie.Access, i)] {
			t.Errorf("%s was not expired when the token shrank", chunkName(cookie.Access, i))
		}
	}
	if gone[cookie.Access] {
		t.Error("the access cookie itself was expired")
	}

	for what, end := range map[string]func(*httptest.ResponseRecorder){
		"logout":                  func(rec *httptest.ResponseRecorder) { m.EndSession(t.Context(), rec, r) },
		"expire the access token": func(rec *httptest.ResponseRecorder) { m.ExpireAccess(rec, r) },
	} {
		rec = httptest.NewRecorder()
		end(rec)
		gone = expired(rec)
		for i := range carried[cookie.Access] {
			name := cookie.Access
			if i > 0 {
				name = chunkName(cookie.Access, i)
			}
			if !gone[name] {
				t.Errorf("%s left %s", what, name)
			}
		}
	}
}

// TestOversizeTokensAreRefusedNotSilentlyDropped: past cookie.MaxSessionBytes the
// session is refused as too large, and no cookie is set.
func TestOversizeTokensAreRefusedNotSilentlyDropped(t *testing.T) {
	m, now := chunkFixture(t, "http://app.test")
	for _, size := range []int{1200, 16 << 10, cookie.MaxSessionBytes - 2<<10, cookie.MaxSessionBytes, 60 << 10} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			rec := httptest.NewRecorder()
			err := m.write(rec, bigSession(now, size, "Richard"), now)
			tooLarge := size >= cookie.MaxSessionBytes
			if tooLarge != errors.Is(err, ErrSessionTooLarge) || (!tooLarge && err != nil) {
				t.Fatalf("err = %v", err)
			}
			if n := len(rec.Result().Cookies()); tooLarge && n != 0 {
				t.Fatalf("%d cookies set anyway", n)
			}
			if tooLarge && !strings.Contains(err.Error(), fmt.Sprint(size)) {
				t.Errorf("the error does not name the token's size: %v", err)
			}
		})
	}
}

// TestTheLoginCookieFitsForEveryReturnPath: every return path
// SafeReturnPath accepts leaves a login transaction cookie a browser keeps,
// and a long link of & comes back whole.
func TestTheLoginCookieFitsForEveryReturnPath(t *testing.T) {
	m, _ := newFakeProvider(t, nil, newTestSigner(t, "k1").Pub).manager(t, discard)
	for name, p := range map[string]string{
		"900 &":              "/make-change?x=1" + strings.Repeat("&", 900),
		"1024 bytes of <>":   "/make-change?x=" + strings.Repeat("<>", 504),
		"quotes":             "/" + strings.Repeat(`"`, 1023),
		"line separators":    "/" + strings.Repeat("\u2028", 341),
		"path of < and &":    "/" + strings.Repeat("<&", 511),
		"long ordinary path": "/" + strings.Repeat("a", 1023),
	} {
		t.Run(name, func(t *testing.T) {
			if SafeReturnPath(p) != p {
				t.Fatalf("not a return path the app accepts (%d bytes)", len(p))
			}
			rec := httptest.NewRecorder()
			if _, err := m.BeginLogin(rec, httptest.NewRequest(http.MethodGet, "/login", nil), p); err != nil {
				t.Fatal(err)
			}
			lines := rec.Header().Values("Set-Cookie")
			if len(lines) != 1 || len(lines[0]) > cookie.MaxLine {
				t.Fatalf("%d Set-Cookie lines, the first of %d bytes", len(lines), len(lines[0]))
			}
			ck := rec.Result().Cookies()[0]
			var txn loginTxn
			if err := m.cookies.OpenValue(ck.Name, ck.Value, &txn); err != nil {
				t.Fatal(err)
			}
			if name == "900 &" && txn.ReturnTo != p {
				t.Fatalf("the return path came back as %q", txn.ReturnTo)
			}
			if !strings.HasPrefix(p, txn.ReturnTo) && txn.ReturnTo != "/account" {
				t.Fatalf("the return path became %q", txn.ReturnTo)
			}
		})
	}
}

// TestARefreshedTokenThatGrowsIsKeptOrRefusedAsTooLarge: a refresh whose
// token outgrows one cookie keeps the session in chunks; one that outgrows
// the session's limit ends it as too large, not as refused by the provider.
func TestARefreshedTokenThatGrowsIsKeptOrRefusedAsTooLarge(t *testing.T) {
	signer := newTestSigner(t, "k1")
	f := newFakeProvider(t, nil, signer.Pub)
	m, _ := f.manager(t, discard)
	now := time.Now()
	for _, tc := range []struct {
		name     string
		size     int // bytes of the new token, about
		tooLarge bool
	}{
		{"past one cookie", 6 << 10, false},
		{"16 KB", 16 << 10, false},
		{"past the limit once stored", cookie.MaxSessionBytes - 200, true},
		{"past the limit alone", 30 << 10, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Roles of 40 characters, 43 bytes each in JSON, 4 bytes of
			// token for 3 of claims, beside ~600 bytes of the rest.
			roles := make([]string, (tc.size-600)*3/4/43)
			for i := range roles {
				roles[i] = fmt.Sprintf("changebank-branch-%04d-ledger-reader-role", i)[:40]
			}
			token := signer.Sign(t, with(f.claimsFor(now), "roles", roles), nil)
			if d := len(token) - tc.size; d < -100 || d > 100 {
				t.Fatalf("a %d-byte token, want about %d", len(token), tc.size)
			}
			f.answer(http.StatusOK, map[string]any{"access_token": token, "token_type": "Bearer", "expires_in": 120, "refresh_token": "rt-2"})
			// A refresh token of its own: the grace window would hand back the last result.
			s := &Session{RefreshToken: "rt-" + tc.name, User: UserInfo{Subject: "user-1", LoginAt: now.Unix()}, Expires: now.Add(time.Hour)}
			rec := httptest.NewRecorder()
			err := m.Refresh(context.Background(), rec, s)
			if !tc.tooLarge {
				if err != nil {
					t.Fatalf("a %d-byte token: %v", len(token), err)
				}
				_, r := written(t, rec, false)
				if m.cookies.Session(r).Access != token {
					t.Fatal("the refreshed token does not come back whole")
				}
				return
			}
			if !errors.Is(err, ErrSessionTooLarge) || endReason(err) != NoticeEndedTooLarge {
				t.Fatalf("err = %v (notice %s), want too large", err, endReason(err))
			}
			// Refresh sets the notice that says why the session ended,
			// and no cookie of the session.
			notice := false
			for _, ck := range rec.Result().Cookies() {
				switch {
				case ck.Name == cookie.Notice:
					notice = true
				case ck.MaxAge >= 0:
					t.Errorf("%s was set for a session too large to keep", ck.Name)
				}
			}
			if !notice {
				t.Error("no notice says why the session ended")
			}
		})
	}
}

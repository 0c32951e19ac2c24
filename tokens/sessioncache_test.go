package tokens

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/changebank/changebank/tokens/cookie"
	"github.com/changebank/changebank/tokens/oidc"
)

// sessionFixture is a Manager whose clock, keys and verifier a test can
// change between requests, with one genuine session's cookies.
type sessionFixture struct {
	m      *Sessions
	keys   staticKeys
	signer *testSigner
	logs   *bytes.Buffer
	start  time.Time
	jar    map[string]string

	mu  sync.Mutex
	now time.Time
}

func newSessionFixture(t *testing.T) *sessionFixture {
	f := &sessionFixture{start: time.Now(), signer: newTestSigner(t, "k1"), logs: &bytes.Buffer{}}
	f.now = f.start
	f.keys = staticKeys{"k1": f.signer.Pub}
	cfg := testConfig(testIssuer)
	cfg.Clock, cfg.Logger = f.clock, slog.New(slog.NewTextHandler(f.logs, nil))
	// The provider is never reached: a refresh fails as unavailable.
	f.m = testSessions(t, cfg, nil, f.keys)
	cookies := f.m.cookies
	user := UserInfo{Subject: "user-1", LoginID: "l1", LoginAt: f.start.Add(-time.Minute).Unix(), Expires: f.start.Add(time.Hour).Unix()}
	f.jar = map[string]string{
		cookie.Access:   f.signer.Sign(t, goodClaims(f.start), nil), // exp in 2 minutes
		cookie.Refresh:  sealedCookie(t, cookies, cookie.Refresh, refreshCookie{Token: "rt", Subject: "user-1", Expires: user.Expires}).Value,
		cookie.UserInfo: sealedCookie(t, cookies, cookie.UserInfo, user).Value,
	}
	return f
}

func (f *sessionFixture) clock() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *sessionFixture) at(t time.Time) {
	f.mu.Lock()
	f.now = t
	f.mu.Unlock()
}

func (f *sessionFixture) request() *http.Request {
	r := httptest.NewRequest(http.MethodGet, "/account", nil)
	for _, name := range []string{cookie.Access, cookie.Refresh, cookie.UserInfo, cookie.LoggedOut} {
		if v := f.jar[name]; v != "" {
			r.AddCookie(&http.Cookie{Name: name, Value: v})
		}
	}
	return r
}

func (f *sessionFixture) load() (*Session, error) {
	return f.m.Load(context.Background(), httptest.NewRecorder(), f.request())
}

// A session served from the cache is refused, or refreshed, exactly when a
// full check would refuse or refresh it: every check whose answer can
// change is made again on every request.
func TestCachedSessionIsCheckedOnEveryRequest(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(f *sessionFixture)
		want   func(t *testing.T, f *sessionFixture, s *Session, err error)
	}{
		{"the session ends", func(f *sessionFixture) { f.at(f.start.Add(time.Hour)) }, refused},
		{"the browser logs out", func(f *sessionFixture) { f.jar[cookie.LoggedOut] = strconv.FormatInt(f.start.Unix(), 10) }, refused},
		{"the key leaves the JWKS", func(f *sessionFixture) { delete(f.keys, "k1") }, refused},
		{"the provider turns out to type its access tokens", func(f *sessionFixture) {
			typed := f.signer.Sign(t, goodClaims(f.start), map[string]any{"typ": "at+jwt"})
			if _, err := f.m.verifier.TokenEndpointAccess(context.Background(), typed); err != nil {
				t.Fatal(err)
			}
		}, refused},
		{"cb_userinfo changes by one byte", func(f *sessionFixture) {
			v := []byte(f.jar[cookie.UserInfo])
			i := len(v) / 2 // inside the ciphertext
			v[i] = map[bool]byte{true: 'B', false: 'A'}[v[i] == 'A']
			f.jar[cookie.UserInfo] = string(v)
		}, refused},
		{"the access token comes within the refresh margin", func(f *sessionFixture) {
			f.at(f.start.Add(2*time.Minute - refreshMargin + time.Second))
		}, func(t *testing.T, f *sessionFixture, s *Session, err error) {
			// The refresh was tried (the provider is down) and the token,
			// still valid, serves this request.
			if err != nil || !strings.Contains(f.logs.String(), "refresh failed, serving with the current access token") {
				t.Fatalf("err %v; no refresh tried:\n%s", err, f.logs)
			}
		}},
		{"the access token expires", func(f *sessionFixture) { f.at(f.start.Add(2*time.Minute + oidc.Leeway)) }, func(t *testing.T, f *sessionFixture, s *Session, err error) {
			if s != nil || !errors.Is(err, ErrProviderUnavailable) {
				t.Fatalf("an expired token with the provider down: %v, %v; want no session, try again", s, err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newSessionFixture(t)
			for range 2 {
				if _, err := f.load(); err != nil {
					t.Fatal(err)
				}
			}
			if n := f.m.sessions.len(); n != 1 {
				t.Fatalf("%d sessions cached after two loads of one, want 1", n)
			}
			tc.change(f)
			s, err := f.load()
			tc.want(t, f, s, err)
		})
	}
}

func refused(t *testing.T, _ *sessionFixture, s *Session, err error) {
	t.Helper()
	if s != nil || !errors.Is(err, ErrNoSession) {
		t.Fatalf("served %v, %v; want the session refused", s, err)
	}
}

// The logout marker is the one cookie a browser may set to anything:
// checked on every request, it is no part of what a cache entry holds, so
// one session sent with ever new markers (each older than its login, or
// not a number) takes one entry. Were it part of the key, each marker
// would copy the session's cookies into an entry of its own and push
// everyone else's sessions out.
func TestLogoutMarkersDoNotMultiplyCachedSessions(t *testing.T) {
	f := newSessionFixture(t)
	for i := range maxCachedSessions + 10 {
		f.jar[cookie.LoggedOut] = []string{strconv.FormatInt(f.start.Add(-2*time.Minute).Unix()-int64(i), 10), "x" + strconv.Itoa(i)}[i%2]
		if _, err := f.load(); err != nil {
			t.Fatalf("marker %q: %v", f.jar[cookie.LoggedOut], err)
		}
	}
	if n := f.m.sessions.len(); n != 1 {
		t.Fatalf("one session with %d logout markers holds %d cache entries, want 1", maxCachedSessions+10, n)
	}
	// A marker from after the login still ends it, cached or not.
	f.jar[cookie.LoggedOut] = strconv.FormatInt(f.start.Unix(), 10)
	s, err := f.load()
	refused(t, f, s, err)
}

// The second request of a session costs one allocation, its Session: no
// cookie is opened or hashed again, no claims copied.
func TestCachedSessionAllocatesOnlyItsSession(t *testing.T) {
	f := newSessionFixture(t)
	r, w, ctx := f.request(), httptest.NewRecorder(), context.Background()
	if _, err := f.m.Load(ctx, w, r); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(100, func() {
		if _, err := f.m.Load(ctx, w, r); err != nil {
			t.Fatal(err)
		}
	}); n > 1 {
		t.Fatalf("a cached session's load allocates %v times, want 1", n)
	}
}

// 100,000 distinct sessions, each with cookies of a real session's size,
// leave the cache at its bound and the heap where a full cache puts it.
func TestSessionCacheStaysBounded(t *testing.T) {
	c := newSessionCache()
	now := time.Now()
	access, userInfo := strings.Repeat("a", 1100), strings.Repeat("u", 600)
	e := &validSession{user: UserInfo{Expires: now.Add(time.Hour).Unix()}, ends: now.Add(time.Hour).Unix()}
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	var full uint64
	for i := range 100_000 {
		v := cookie.Values{Access: access + strconv.Itoa(i), UserInfo: userInfo}
		c.put(v, e, now)
		if n := c.len(); n > maxCachedSessions {
			t.Fatalf("after %d sessions the cache holds %d, bound %d", i+1, n, maxCachedSessions)
		}
		if i == 2*maxCachedSessions {
			full = heap()
		}
	}
	last := heap()
	t.Logf("heap with a full cache: %d MB; after 100,000 sessions: %d MB", full>>20, last>>20)
	if last > full+full/4 {
		t.Fatalf("heap %d MB after 100,000 sessions, %d MB once the cache was full: it grows", last>>20, full>>20)
	}
	if _, ok := c.get(cookie.Values{Access: access + "99999", UserInfo: userInfo}); !ok {
		t.Fatal("the latest session is not cached")
	}
}

// TestTheCacheLookupReadsAsACheckedReadWould: the session cache is looked up
// with values whose bytes were not checked, so a request must get from it
// exactly the session a checked read (net/http's rules: the first cookie of
// a name whose bytes are all allowed) would give. A first cookie of a name
// with a byte no cookie value holds is skipped by a checked read; the
// unchecked one takes it, misses, and the full load reads again, checked.
func TestTheCacheLookupReadsAsACheckedReadWould(t *testing.T) {
	f := newSessionFixture(t)
	if _, err := f.load(); err != nil { // now cached
		t.Fatal(err)
	}
	for _, base := range []string{cookie.Access, cookie.UserInfo, cookie.Refresh} {
		t.Run(base, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/account", nil)
			// A value with a backslash first, then the genuine cookies.
			r.Header.Add("Cookie", base+`=`+f.jar[base][:20]+`\`+f.jar[base][21:])
			for _, name := range []string{cookie.Access, cookie.Refresh, cookie.UserInfo} {
				r.AddCookie(&http.Cookie{Name: name, Value: f.jar[name]})
			}
			want, err := r.Cookie(base)
			if err != nil || want.Value != f.jar[base] {
				t.Fatalf("net/http reads %v, %v: the test's premise is off", want, err)
			}
			s, err := f.m.Load(context.Background(), httptest.NewRecorder(), r)
			if err != nil {
				t.Fatalf("the session net/http's reading gives was refused: %v", err)
			}
			if s.AccessToken != f.jar[cookie.Access] || s.refreshSealed != f.jar[cookie.Refresh] {
				t.Fatal("the session holds another value than the checked read's")
			}
		})
	}
}

// TestTheCacheLookupSeesTheMarkerACheckedReadWould: a logout marker that a
// checked read skips (a byte no cookie value holds) must not hide the next
// one, from after the login, which ends the session.
func TestTheCacheLookupSeesTheMarkerACheckedReadWould(t *testing.T) {
	f := newSessionFixture(t)
	if _, err := f.load(); err != nil { // now cached
		t.Fatal(err)
	}
	r := f.request()
	r.Header.Set("Cookie", cookie.LoggedOut+`=1\; `+cookie.LoggedOut+"="+strconv.FormatInt(f.start.Unix(), 10)+"; "+r.Header.Get("Cookie"))
	if _, err := f.m.Load(context.Background(), httptest.NewRecorder(), r); !errors.Is(err, ErrNoSession) {
		t.Fatalf("a session from before the logout marker net/http reads was served: %v", err)
	}
}

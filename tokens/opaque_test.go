package tokens

import (
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"fmt"
	"github.com/changebank/changebank/tokens/cookie"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

func TestAtHashBindsTheOpaqueAccessTokenToTheIDToken(t *testing.T) {
	now := time.Now()
	signer := newTestSigner(t, "k1")
	access := "ya29.the-access-token"
	sum := sha256.Sum256([]byte(access))
	good := base64.RawURLEncoding.EncodeToString(sum[:16])
	for name, tc := range map[string]struct {
		atHash string
		ok     bool
	}{
		"matching":          {good, true},
		"absent (optional)": {"", true},
		"another token's":   {base64.RawURLEncoding.EncodeToString(make([]byte, 16)), false},
	} {
		id := signer.Sign(t, with(goodClaims(now), "at_hash", tc.atHash), nil)
		if err := checkAtHash(id, &Claims{AtHash: tc.atHash}, access); (err == nil) != tc.ok {
			t.Errorf("%s: %v", name, err)
		}
	}
	// The hash follows the ID token's algorithm: SHA-384 for ES384.
	h := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"ES384"}`)) + ".e30.sig" // only the header counts here
	d := sha512.Sum384([]byte(access))
	if err := checkAtHash(h, &Claims{AtHash: base64.RawURLEncoding.EncodeToString(d[:24])}, access); err != nil {
		t.Errorf("ES384: %v", err)
	}
}

func TestOpaqueAccessTokenLife(t *testing.T) {
	now := time.Now().Add(time.Hour) // the app's clock, which need not be the wall clock
	answer := func(extra map[string]any) *oauth2.Token {
		return (&oauth2.Token{AccessToken: "opaque"}).WithExtra(extra)
	}
	for name, tc := range map[string]struct {
		tok  *oauth2.Token
		want time.Duration
	}{
		"expires_in as given":           {answer(map[string]any{"expires_in": float64(3599)}), 3599 * time.Second},
		"expires_in quoted":             {answer(map[string]any{"expires_in": "300"}), 300 * time.Second},
		"no expires_in":                 {answer(nil), defaultOpaqueAccessLife},
		"a day: bounded":                {answer(map[string]any{"expires_in": float64(86400)}), maxOpaqueAccessLife},
		"nonsense: the bounded default": {answer(map[string]any{"expires_in": "soon"}), defaultOpaqueAccessLife},
	} {
		if got := opaqueExpiry(tc.tok, now); !got.Equal(now.Add(tc.want)) {
			t.Errorf("%s: %s after now, want %s", name, got.Sub(now), tc.want)
		}
	}
}

// TestOpaqueAccessTokenSession is a provider whose access tokens are not
// JWTs (Google, Authelia, ZITADEL's default): the login stands on the ID
// token, the access token goes sealed into its cookie with its expiry, and
// every request checks the seal, the binding and the expiry; at expiry the
// session refreshes, and the ID token the refresh brings is checked in
// full. Before, such a login failed at the callback.
func TestOpaqueAccessTokenSession(t *testing.T) {
	var n atomic.Int32
	o := newOP(t, "", func(o *op) {
		o.opaque = func() string { return fmt.Sprintf("ya29.opaque-%d", n.Add(1)) }
	})
	clock := &manualClock{At: time.Now()}
	logs := &syncLog{}
	a := o.app(t, Config{Clock: clock.Now, Logger: slog.New(slog.NewTextHandler(logs, nil))}, "")
	a.m.log = slog.New(slog.NewTextHandler(logs, nil))
	j, _, err := a.login(t)
	if err != nil {
		t.Fatalf("login with an opaque access token: %v", err)
	}
	if v := j[a.cookies.Name(cookie.Access)].Value; strings.Contains(v, "ya29") {
		t.Fatal("the access cookie holds the opaque token in clear")
	}
	if !strings.Contains(logs.String(), "access tokens: opaque, sealed in the access cookie, checked by the provider at each refresh") {
		t.Errorf("the kind of access token was not logged:\n%s", logs)
	}
	ctx := context.Background()
	load := func(j jar) (*Session, error) {
		rec := httptest.NewRecorder()
		s, err := a.m.Load(ctx, rec, j.request(http.MethodGet, "/account"))
		j.take(rec)
		return s, err
	}
	s, err := load(j)
	if err != nil || s.AccessToken != "ya29.opaque-1" || s.Access.Subject != "user-1" || s.Access.Scope != "openid email profile" ||
		!s.User.OpaqueAccess || s.User.Name != "Richard Hendricks" || s.Refreshed {
		t.Fatalf("a request of the session: %+v, %v", s, err)
	}
	if left := time.Until(s.Access.Expiry.Time()); left < 100*time.Second || left > 121*time.Second {
		t.Errorf("the access token is kept for %s, want the token endpoint's expires_in of 120 s", left)
	}

	// A cookie changed by one byte, or another login's access cookie (sealed
	// by this very app): refused, without a call to the provider.
	other, _, err := a.login(t)
	if err != nil {
		t.Fatal(err)
	}
	access := a.cookies.Name(cookie.Access)
	flipped := []byte(j[access].Value)
	flipped[len(flipped)/2] ^= 1
	for name, value := range map[string]string{"changed": string(flipped), "another login's": other[access].Value} {
		bad := jar{}
		for k, c := range j {
			cc := *c
			bad[k] = &cc
		}
		bad[access].Value = value
		if s, err := load(bad); !errors.Is(err, ErrNoSession) || s != nil {
			t.Errorf("%s access cookie: %v, %v; want the session refused", name, s, err)
		}
	}

	// Within the refresh margin of its expiry: a silent refresh, whose new
	// ID token is checked, and a new sealed token.
	clock.Advance(116 * time.Second)
	s, err = load(j)
	if err != nil || !s.Refreshed || s.AccessToken == "ya29.opaque-1" || !strings.HasPrefix(s.AccessToken, "ya29.opaque-") {
		t.Fatalf("at expiry: %+v, %v; want a refresh", s, err)
	}
	if s, err := load(j); err != nil || s.Refreshed {
		t.Fatalf("after the refresh: %+v, %v", s, err)
	}

	// A refresh whose ID token names another user ends the session.
	o.id = func(string) map[string]any {
		return with(o.claims(), "sub", "user-2", "email", "m@example.com", "name", "Mallory")
	}
	clock.Advance(116 * time.Second)
	if _, err := load(j); !errors.Is(err, ErrNoSession) {
		t.Fatalf("a refresh naming another user: %v, want the session ended", err)
	}
}

// TestOpaqueAccessTokenMustMatchTheIDTokensAtHash: an ID token whose
// at_hash is another token's does not vouch for this access token.
func TestOpaqueAccessTokenMustMatchTheIDTokensAtHash(t *testing.T) {
	o := newOP(t, "", func(o *op) {
		o.opaque = func() string { return "ya29.opaque" }
		o.badAtHash = true
	})
	a := o.app(t, Config{}, "")
	if _, _, err := a.login(t); !errors.Is(err, ErrNoSession) {
		t.Fatalf("at_hash of another token: %v, want the login refused", err)
	}
}

// syncLog is a log sink a test reads while the code writes.
type syncLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *syncLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *syncLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// BenchmarkLoadSession measures a request of a session that needs no
// refresh: with a JWT access token (remembered after its first check, see
// sessioncache.go) and with an opaque one (its cookie opened on every
// request: it is not cached).
func BenchmarkLoadSession(b *testing.B) {
	now := time.Now()
	signer := newTestSigner(b, "k1")
	cfg := testConfig(testIssuer)
	cfg.Clock = func() time.Time { return now }
	s := testSessions(b, cfg, nil, staticKeys{"k1": signer.Pub})
	jwt := signer.Sign(b, goodClaims(now), nil)
	for _, kind := range []string{"JWT", "opaque"} {
		b.Run(kind, func(b *testing.B) {
			token := jwt
			if kind == "opaque" {
				token = "ya29.an-opaque-access-token-of-typical-length-0123456789abcdef"
			}
			sum := sha256.Sum256([]byte(token))
			user := UserInfo{Subject: "user-1", Name: "Richard Hendricks", LoginID: "l1", LoginAt: now.Add(-time.Minute).Unix(),
				Expires: now.Add(time.Hour).Unix(), AccessHash: sum[:], OpaqueAccess: kind == "opaque"}
			access := token
			if kind == "opaque" {
				access = sealedCookie(b, s.cookies, cookie.Access, opaqueCookie{Token: token, Subject: "user-1", Expires: now.Add(time.Hour).Unix()}).Value
			}
			r := httptest.NewRequest(http.MethodGet, "/account", nil)
			r.AddCookie(&http.Cookie{Name: s.cookies.Name(cookie.Access), Value: access})
			r.AddCookie(sealedCookie(b, s.cookies, cookie.UserInfo, user))
			w := httptest.NewRecorder()
			ctx := context.Background()
			for b.Loop() {
				if _, err := s.Load(ctx, w, r); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestCachedOpaqueSessionIsCheckedOnEveryRequest: an opaque session served
// from the session cache still meets the logout marker and its own expiry.
func TestCachedOpaqueSessionIsCheckedOnEveryRequest(t *testing.T) {
	clock := &manualClock{At: time.Now()}
	cfg := testConfig(testIssuer)
	cfg.Clock = clock.Now
	s := testSessions(t, cfg, nil, staticKeys{})
	now := clock.Now()
	const token = "ya29.opaque"
	sum := sha256.Sum256([]byte(token))
	user := UserInfo{Subject: "user-1", LoginID: "l1", LoginAt: now.Add(-time.Minute).Unix(), Expires: now.Add(time.Hour).Unix(),
		AccessHash: sum[:], OpaqueAccess: true}
	access := sealedCookie(t, s.cookies, cookie.Access, opaqueCookie{Token: token, Subject: "user-1", Expires: now.Add(time.Minute).Unix()})
	info := sealedCookie(t, s.cookies, cookie.UserInfo, user)
	request := func(extra ...*http.Cookie) *http.Request {
		r := httptest.NewRequest(http.MethodGet, "/account", nil)
		r.AddCookie(access)
		r.AddCookie(info)
		for _, c := range extra {
			r.AddCookie(c)
		}
		return r
	}
	for range 2 {
		if sess, err := s.Load(context.Background(), httptest.NewRecorder(), request()); err != nil || sess.AccessToken != token {
			t.Fatalf("%+v, %v", sess, err)
		}
	}
	if s.sessions.len() != 1 {
		t.Fatalf("%d sessions cached, want the opaque one", s.sessions.len())
	}
	out := &http.Cookie{Name: s.cookies.Name(cookie.LoggedOut), Value: strconv.FormatInt(now.Unix(), 10)}
	if _, err := s.Load(context.Background(), httptest.NewRecorder(), request(out)); !errors.Is(err, ErrNoSession) {
		t.Fatalf("after a logout in this browser: %v, want the session refused", err)
	}
	// Past the token's expiry the cache does not answer: the full check
	// wants a refresh, and with no refresh cookie the session ends.
	clock.Advance(time.Minute)
	if sess, err := s.Load(context.Background(), httptest.NewRecorder(), request()); !errors.Is(err, ErrNoSession) {
		t.Fatalf("an expired opaque token: %+v, %v; want the session ended (no refresh cookie)", sess, err)
	}
}

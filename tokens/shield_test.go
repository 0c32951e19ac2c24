package tokens

import (
	"context"
	"crypto/sha256"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/changebank/changebank/idp"
	"github.com/changebank/changebank/tokens/cookie"
)

// countingProxy stands between the app and the provider and counts the
// app's calls by method and path, as a provider's access log would.
type countingProxy struct {
	*httptest.Server
	mu    sync.Mutex
	calls map[string]int
}

func newCountingProxy(t *testing.T, target string) *countingProxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	p := &countingProxy{calls: map[string]int{}}
	proxy := httputil.NewSingleHostReverseProxy(u)
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.calls[r.Method+" "+r.URL.Path]++
		p.mu.Unlock()
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(p.Close)
	return p
}

func (p *countingProxy) count(call string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls[call]
}

const (
	tokenCall  = "POST /oauth2/token"
	revokeCall = "DELETE /api/jwt/refresh"
)

// callbackFor starts a login as an anonymous visitor would (no provider
// visit) and returns a callback request for it carrying a made-up code.
func (s *liveStack) forgedCallback(t *testing.T) *http.Request {
	t.Helper()
	rec := httptest.NewRecorder()
	authorize, err := s.m.BeginLogin(rec, httptest.NewRequest(http.MethodGet, "/login", nil), "/account")
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(authorize)
	cb := httptest.NewRequest(http.MethodGet, "/callback?"+url.Values{"state": {u.Query().Get("state")}, "code": {"made-up"}}.Encode(), nil)
	for _, c := range rec.Result().Cookies() {
		cb.AddCookie(c)
	}
	return cb
}

// A login transaction's code is exchanged once per instance, however
// often its callback is replayed with the transaction cookie.
func TestACallbackIsExchangedOncePerTransaction(t *testing.T) {
	s := newLiveStack(t, idp.NoGracePeriod, 5*time.Second)
	before := s.calls.count(tokenCall)
	cb := s.forgedCallback(t)
	for i := range 200 {
		_, err := s.m.FinishLogin(context.Background(), httptest.NewRecorder(), cb)
		if !errors.Is(err, ErrBadCallback) {
			t.Fatalf("replay %d: %v, want ErrBadCallback", i, err)
		}
	}
	if n := s.calls.count(tokenCall) - before; n != 1 {
		t.Fatalf("200 replays of one callback made %d token calls, want 1", n)
	}
}

// A callback's error code is anyone's text: what FinishLogin returns, and
// callers log, keeps a bounded part of it, as code alone or with a state.
func TestACallbackErrorCodeIsBounded(t *testing.T) {
	s := newLiveStack(t, idp.NoGracePeriod, 5*time.Second)
	huge := strings.Repeat("é", 25<<10)
	cb := s.forgedCallback(t)
	withState := cb.URL.Query()
	withState.Set("error", huge)
	cb.URL.RawQuery = withState.Encode()
	for _, req := range []*http.Request{httptest.NewRequest(http.MethodGet, "/callback?"+url.Values{"error": {huge}}.Encode(), nil), cb} {
		_, err := s.m.FinishLogin(context.Background(), httptest.NewRecorder(), req)
		var pe *ProviderError
		if !errors.As(err, &pe) {
			t.Fatalf("%.80v, want a *ProviderError", err)
		}
		if len(pe.Code) > maxCallbackCode+len("…") || !strings.HasPrefix(huge, strings.TrimSuffix(pe.Code, "…")) || len(err.Error()) > 200 {
			t.Fatalf("a 50 KB error code: %d bytes kept (%.80q...)", len(pe.Code), err)
		}
	}
}

// An anonymous flood of fresh transactions, each with a forged callback,
// costs the provider at most the budget of refused exchanges; a real login
// goes through again a moment after the flood.
func TestAFloodOfForgedCallbacksIsBounded(t *testing.T) {
	s := newLiveStack(t, idp.NoGracePeriod, 5*time.Second)
	before := s.calls.count(tokenCall)
	for range 200 {
		_, err := s.m.FinishLogin(context.Background(), httptest.NewRecorder(), s.forgedCallback(t))
		if !errors.Is(err, ErrBadCallback) && !errors.Is(err, ErrLoginsThrottled) {
			t.Fatalf("forged callback: %v", err)
		}
	}
	if n := s.calls.count(tokenCall) - before; n > exchangeBurst {
		t.Fatalf("200 forged callbacks made %d token calls, want at most %d", n, exchangeBurst)
	}
	// Right after the flood the budget is spent: the login is refused
	// without a token call, with an answer that says to try again.
	calls := s.calls.count(tokenCall)
	if err := s.tryLogin(); !errors.Is(err, ErrLoginsThrottled) || !errors.Is(err, ErrProviderUnavailable) {
		t.Fatalf("login during the flood: %v, want ErrLoginsThrottled", err)
	}
	if s.calls.count(tokenCall) != calls {
		t.Fatal("a throttled callback called the provider")
	}
	s.Advance(2 * exchangeRefill)
	if err := s.tryLogin(); err != nil {
		t.Fatalf("login after the flood: %v", err)
	}
}

// refreshTokenOf opens the browser's refresh cookie.
func (s *liveStack) refreshTokenOf(t *testing.T, jar []*http.Cookie) string {
	t.Helper()
	for _, c := range jar {
		if c.Name == cookie.Refresh {
			var rc refreshCookie
			if err := s.m.cookies.OpenValue(cookie.Refresh, c.Value, &rc); err != nil {
				t.Fatal(err)
			}
			return rc.Token
		}
	}
	t.Fatal("no refresh cookie")
	return ""
}

// redeemAtProvider presents a refresh token to the stand-in directly and
// returns the OAuth error code, "" when it was accepted.
func (s *liveStack) redeemAtProvider(t *testing.T, token string) string {
	t.Helper()
	_, err := s.m.client.refresh(context.Background(), token)
	var te *tokenEndpointError
	switch {
	case err == nil:
		return ""
	case errors.As(err, &te):
		return te.re.ErrorCode
	}
	t.Fatalf("redeeming at the provider: %v", err)
	return ""
}

// withCookies is a request carrying jar, except the cookies named in drop.
func withCookies(path string, jar []*http.Cookie, drop ...string) *http.Request {
	req := httptest.NewRequest(http.MethodGet, path, nil)
	for _, c := range jar {
		if !strings.Contains(strings.Join(drop, " "), c.Name) {
			req.AddCookie(c)
		}
	}
	return req
}

// A refresh token the provider refused is not sent again, and a refresh
// token is revoked once per instance, however often its cookie comes back.
func TestRefusedAndRevokedRefreshTokensCostOneCall(t *testing.T) {
	s := newLiveStack(t, idp.NoGracePeriod, 5*time.Second)
	old := append([]*http.Cookie(nil), s.cookies...)

	// A transient failure is not a refusal: the token stays usable.
	s.idp.FailTokens(idp.Failure{Mode: idp.ServerErr})
	if _, err := s.m.Load(context.Background(), httptest.NewRecorder(), withCookies("/", old, cookie.Access)); !errors.Is(err, ErrProviderUnavailable) {
		t.Fatalf("refresh during an outage: %v", err)
	}
	s.idp.FailTokens(idp.Failure{})

	// Spend it (one-time use), then replay the old cookies without an access token.
	if _, err := s.m.Load(context.Background(), httptest.NewRecorder(), withCookies("/", old, cookie.Access)); err != nil {
		t.Fatalf("refresh: %v", err)
	}
	s.Advance(refreshGrace + time.Second)
	before := s.calls.count(tokenCall)
	for range 100 {
		if _, err := s.m.Load(context.Background(), httptest.NewRecorder(), withCookies("/", old, cookie.Access)); !errors.Is(err, ErrNoSession) {
			t.Fatalf("spent token: %v, want ErrNoSession", err)
		}
	}
	if n := s.calls.count(tokenCall) - before; n != 1 {
		t.Fatalf("100 requests with a spent refresh token made %d token calls, want 1", n)
	}
	// The refused token needs no revocation either.
	for range 10 {
		s.m.EndSession(context.Background(), httptest.NewRecorder(), withCookies("/logout", old))
	}
	if n := s.calls.count(revokeCall); n != 0 {
		t.Fatalf("logout with a refused refresh token made %d revocations, want 0", n)
	}

	// A live token: logout revokes it once, however often the old cookie
	// comes back, in a row or all at once.
	s.login(t)
	live := append([]*http.Cookie(nil), s.cookies...)
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() { s.m.EndSession(context.Background(), httptest.NewRecorder(), withCookies("/logout", live)) })
	}
	wg.Wait()
	for range 50 {
		s.m.EndSession(context.Background(), httptest.NewRecorder(), withCookies("/logout", live))
	}
	if n := s.calls.count(revokeCall); n != 1 {
		t.Fatalf("100 logouts with one refresh cookie made %d revocations, want 1", n)
	}
	if code := s.redeemAtProvider(t, s.refreshTokenOf(t, live)); code != "invalid_grant" {
		t.Fatalf("the revoked token at the provider: %q, want invalid_grant", code)
	}
}

// Logging in again in the same browser revokes the previous login's
// refresh token: after logout, neither login's token works.
func TestReloginRevokesThePreviousRefreshToken(t *testing.T) {
	s := newLiveStack(t, idp.NoGracePeriod, 5*time.Second)
	first := s.refreshTokenOf(t, s.cookies)
	s.login(t)
	second := s.refreshTokenOf(t, s.cookies)
	if first == second {
		t.Fatal("both logins got the same refresh token")
	}
	s.m.EndSession(context.Background(), httptest.NewRecorder(), withCookies("/logout", s.cookies))
	for name, token := range map[string]string{"first": first, "second": second} {
		if code := s.redeemAtProvider(t, token); code != "invalid_grant" {
			t.Errorf("the %s login's refresh token after logout: %q, want invalid_grant", name, code)
		}
	}
}

// The memories stay bounded under a flood of distinct values, and keep
// what they hold until it expires.
func TestShieldMemoryIsBounded(t *testing.T) {
	now := time.Now()
	s := newHashSet()
	first := sha256.Sum256([]byte("first"))
	s.add(first, now.Add(time.Hour), now)
	for i := range 3 * maxSpentEntries {
		s.add(sha256.Sum256([]byte(strconv.Itoa(i))), now.Add(time.Hour), now)
		if s.entries.Len() > maxSpentEntries {
			t.Fatalf("%d entries, more than %d", s.entries.Len(), maxSpentEntries)
		}
	}
	// Expired entries go first when it is full.
	s = newHashSet()
	for i := range maxSpentEntries - 1 {
		s.add(sha256.Sum256([]byte(strconv.Itoa(i))), now.Add(time.Second), now)
	}
	s.add(first, now.Add(time.Hour), now)
	later := now.Add(time.Minute)
	s.add(sha256.Sum256([]byte("new")), later.Add(time.Hour), later)
	if !s.has(first, later) || s.entries.Len() != 2 {
		t.Fatalf("after the sweep: first kept %v, %d entries, want 2", s.has(first, later), s.entries.Len())
	}
	if s.add(first, later.Add(time.Hour), later) {
		t.Fatal("a live entry was added twice")
	}
}

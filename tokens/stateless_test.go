package tokens

import (
	"context"
	"errors"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/changebank/changebank/idp"
	"github.com/changebank/changebank/tokens/oidc"
)

// liveStack is a Manager against the FusionAuth stand-in with the
// project's kickstart, both on one fake clock.
type liveStack struct {
	idp      *idp.Server
	issuer   string
	m        *Sessions
	verifier *oidc.Verifier
	calls    *countingProxy
	manualClock
	mu      sync.Mutex // guards cookies
	cookies []*http.Cookie
}

// newLiveStack starts the stand-in (grace: its one-time-use grace period,
// as idp.Options.RefreshGracePeriod) and a Manager whose requests wait at
// most wait for a token call, and logs Richard in.
func newLiveStack(t *testing.T, grace, wait time.Duration) *liveStack {
	t.Helper()
	s := &liveStack{manualClock: manualClock{At: time.Now()}}
	ks, err := idp.LoadKickstart("../kickstart/kickstart.json", func(string) string { return "" }, discard)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(nil)
	s.issuer = "http://" + srv.Listener.Addr().String()
	const appURL = "http://app.test"
	s.idp, err = idp.New(ks, idp.Options{Issuer: s.issuer, ExtraRedirectURLs: []string{appURL + "/callback"},
		RefreshGracePeriod: grace, Now: s.Now})
	if err != nil {
		t.Fatal(err)
	}
	srv.Config.Handler = s.idp.Handler()
	srv.Start()
	t.Cleanup(srv.Close)

	client := &http.Client{Timeout: wait}
	// The app reaches the stand-in through a proxy that counts its calls.
	s.calls = newCountingProxy(t, s.issuer)
	cfg := testConfig(s.issuer)
	cfg.IssuerInternalURL, cfg.ClientSecret, cfg.AppURL = s.calls.URL, ks.Applications[testClient].ClientSecret, appURL
	cfg.FusionAuthAPIKey, cfg.HTTPClient, cfg.Clock = ks.APIKeys[0], client, s.Now
	p := startProvider(t, cfg.profile(), &http.Client{Timeout: 2 * time.Second}, s.Now)
	s.m = testSessions(t, cfg, p, nil)
	s.verifier = s.m.verifier
	s.login(t)
	return s
}

// login runs the authorization code flow as a browser would.
func (s *liveStack) login(t *testing.T) {
	t.Helper()
	if err := s.tryLogin(); err != nil {
		t.Fatalf("login: %v", err)
	}
}

// tryLogin is login, returning FinishLogin's error. The browser's cookies
// go along on the callback, as they would in a browser.
func (s *liveStack) tryLogin() error {
	rec := httptest.NewRecorder()
	authorize, err := s.m.BeginLogin(rec, httptest.NewRequest(http.MethodGet, "/login", nil), "/account")
	if err != nil {
		return err
	}
	jar, _ := cookiejar.New(nil)
	noFollow := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	form, err := idp.LoginForm(noFollow, authorize)
	if err != nil {
		return err
	}
	form.Set("loginId", "richard@example.com")
	form.Set("password", "password")
	resp, err := noFollow.PostForm(s.issuer+"/oauth2/authorize", form)
	if err != nil {
		return err
	}
	resp.Body.Close()
	callback := httptest.NewRequest(http.MethodGet, resp.Header.Get("Location"), nil)
	s.mu.Lock()
	for _, c := range s.cookies {
		callback.AddCookie(c)
	}
	s.mu.Unlock()
	for _, c := range rec.Result().Cookies() {
		callback.AddCookie(c)
	}
	rec = httptest.NewRecorder()
	if _, err := s.m.FinishLogin(context.Background(), rec, callback); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range rec.Result().Cookies() {
		s.cookies = keepCookie(s.cookies, c)
	}
	return nil
}

// load is one request with the browser's cookies; the cookies it sets are kept.
func (s *liveStack) load(ctx context.Context) (*Session, []*http.Cookie, error) {
	req := httptest.NewRequest(http.MethodGet, "/account", nil).WithContext(ctx)
	for _, c := range s.cookies {
		req.AddCookie(c)
	}
	rec := httptest.NewRecorder()
	sess, err := s.m.Load(ctx, rec, req)
	set := rec.Result().Cookies()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range set {
		s.cookies = keepCookie(s.cookies, c)
	}
	return sess, set, err
}

func keepCookie(jar []*http.Cookie, c *http.Cookie) []*http.Cookie {
	out := jar[:0:0]
	for _, old := range jar {
		if old.Name != c.Name {
			out = append(out, old)
		}
	}
	if c.MaxAge >= 0 && c.Value != "" {
		out = append(out, c)
	}
	return out
}

// expireAccess moves the clock past the access token's life.
func (s *liveStack) expireAccess() { s.Advance(121 * time.Second) }

func TestSlowProviderKeepsTheSession(t *testing.T) {
	// The stand-in redeems and rotates at once but answers after the
	// request has stopped waiting: the rotated token is known only to the
	// token call still running. No provider grace period: the app alone
	// must keep the result.
	s := newLiveStack(t, idp.NoGracePeriod, 200*time.Millisecond)
	s.expireAccess()
	s.idp.FailTokens(idp.Failure{Mode: idp.Slow, Delay: time.Second})
	before := s.idp.TokenCalls("refresh_token")

	_, set, err := s.load(context.Background())
	if !errors.Is(err, ErrProviderUnavailable) {
		t.Fatalf("first request: %v, want provider unavailable (503, try again)", err)
	}
	if len(set) != 0 {
		t.Fatalf("the 503 touched %d cookies, want every cookie kept", len(set))
	}
	s.idp.FailTokens(idp.Failure{})

	// The user's next requests join the call still running, then get its result.
	deadline := time.Now().Add(10 * time.Second) // a hang guard, not a speed check
	var sess *Session
	for {
		sess, set, err = s.load(context.Background())
		if err == nil || !errors.Is(err, ErrProviderUnavailable) || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		t.Fatalf("next request: %v, want the session served with the tokens the slow call brought", err)
	}
	if !sess.Refreshed || len(set) == 0 {
		t.Fatalf("next request: refreshed %v with %d cookies set, want the new tokens' Set-Cookie", sess.Refreshed, len(set))
	}
	if n := s.idp.TokenCalls("refresh_token") - before; n != 1 {
		t.Fatalf("%d token calls, want exactly 1", n)
	}
	// The rotated refresh token now in the cookie is the live one.
	s.expireAccess()
	if _, _, err := s.load(context.Background()); err != nil {
		t.Fatalf("a later refresh with the rotated token: %v", err)
	}
}

func TestDroppedRefreshAnswerNeedsTheProviderGracePeriod(t *testing.T) {
	// DropAnswer: the stand-in rotates the token, then closes the
	// connection. The app never sees the new token, so it keeps the old
	// cookies and answers "try again". The retry sends the spent token:
	// inside FusionAuth's one-time-use grace period that returns the
	// current token; without it, invalid_grant ends the session.
	for _, tc := range []struct {
		name     string
		grace    time.Duration
		loggedIn bool
	}{
		{"grace period from the kickstart", 0, true},
		{"no grace period", idp.NoGracePeriod, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newLiveStack(t, tc.grace, 2*time.Second)
			s.expireAccess()
			s.idp.FailTokens(idp.Failure{Mode: idp.DropAnswer})
			_, set, err := s.load(context.Background())
			if !errors.Is(err, ErrProviderUnavailable) || len(set) != 0 {
				t.Fatalf("first request: %v, %d cookies set; want try again with every cookie kept", err, len(set))
			}
			s.idp.FailTokens(idp.Failure{})
			s.Advance(time.Second)
			_, _, err = s.load(context.Background())
			if got := err == nil; got != tc.loggedIn {
				t.Fatalf("retry: err = %v, want logged in = %v", err, tc.loggedIn)
			}
			if !tc.loggedIn && !errors.Is(err, ErrNoSession) {
				t.Fatalf("retry: %v, want the session ended", err)
			}
		})
	}
}

func TestRefreshWaitersHonourTheirOwnContext(t *testing.T) {
	s := newLiveStack(t, idp.NoGracePeriod, 5*time.Second)
	s.expireAccess()
	s.idp.FailTokens(idp.Failure{Mode: idp.Slow, Delay: 2 * time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, _, err := s.load(ctx)
		done <- err
	}()
	for s.idp.TokenCalls("refresh_token") == 0 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, ErrProviderUnavailable) || !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled request: %v", err)
		}
	case <-time.After(time.Second): // well under the 2 s the call takes: a hang guard
		t.Fatal("a cancelled request kept waiting for the token call")
	}
	s.idp.FailTokens(idp.Failure{})
	// The call went on without that request; its result serves the next one.
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, _, err := s.load(context.Background())
		if err == nil {
			break
		}
		if !errors.Is(err, ErrProviderUnavailable) || time.Now().After(deadline) {
			t.Fatalf("after the cancelled request: %v", err)
		}
	}
	if n := s.idp.TokenCalls("refresh_token"); n != 1 {
		t.Fatalf("%d token calls, want 1", n)
	}
}

func TestRotatedSigningKeyAfterAMadeUpKidKeepsTheSession(t *testing.T) {
	s := newLiveStack(t, idp.NoGracePeriod, 2*time.Second)
	s.expireAccess()
	// An attacker's made-up kid spends this interval's refetch.
	forged := newTestSigner(t, "made-up").Sign(t, goodClaims(s.Now()), nil)
	if _, err := s.verifier.AccessToken(context.Background(), forged); err == nil {
		t.Fatal("a forged token was accepted")
	}
	// The provider rotates its key; the user's refresh brings tokens under it.
	if _, err := s.idp.RotateKey(); err != nil {
		t.Fatal(err)
	}
	_, set, err := s.load(context.Background())
	if !errors.Is(err, ErrProviderUnavailable) || len(set) != 0 {
		t.Fatalf("within the refetch interval: %v, %d cookies set; want try again with every cookie kept", err, len(set))
	}
	// Once the interval has passed, the refresh that went on is served.
	s.Advance(oidc.RefetchInterval)
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, _, err = s.load(context.Background())
		if err == nil || !errors.Is(err, ErrProviderUnavailable) || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		t.Fatalf("after the interval: %v, want the session served under the new key", err)
	}
	if n := s.idp.TokenCalls("refresh_token"); n != 1 {
		t.Fatalf("%d token calls, want 1", n)
	}
}

package tokens

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/changebank/changebank/tokens/oidc"
)

// introspectionEndpoint answers RFC 7662 from a table of tokens, counting calls.
type introspectionEndpoint struct {
	mu      sync.Mutex
	answers map[string]map[string]any // token: answer; missing: inactive
	status  int                       // when not 0, every answer has this status
	calls   atomic.Int32
	hold    chan struct{}
}

func (e *introspectionEndpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	e.calls.Add(1)
	if e.hold != nil {
		<-e.hold
	}
	if id, secret, ok := r.BasicAuth(); !ok || id != testClient || secret != "s3cret" {
		http.Error(w, "unknown client", http.StatusUnauthorized)
		return
	}
	e.mu.Lock()
	a, ok := e.answers[r.PostFormValue("token")]
	status := e.status
	e.mu.Unlock()
	if status != 0 {
		http.Error(w, "down", status)
		return
	}
	if !ok {
		a = map[string]any{"active": false}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(a)
}

type introspectFixture struct {
	ep     *introspectionEndpoint
	in     *introspector
	issuer string
	manualClock
}

// newIntrospectFixture is an introspector for the test client at a
// provider whose discovery lists the fixture's introspection endpoint.
func newIntrospectFixture(t *testing.T) *introspectFixture {
	f := &introspectFixture{ep: &introspectionEndpoint{answers: map[string]map[string]any{}}, manualClock: manualClock{At: time.Now()}}
	signer := newTestSigner(t, "k1")
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{"issuer": srv.URL, "authorization_endpoint": srv.URL + "/authorize",
			"token_endpoint": srv.URL + "/token", "jwks_uri": srv.URL + "/jwks", "introspection_endpoint": srv.URL + "/introspect"})
	})
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": []any{signer.Pub}})
	})
	mux.Handle("POST /introspect", f.ep)
	cfg, err := testConfig(srv.URL).withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	cfg.Clock = f.Now
	p := startProvider(t, cfg.profile(), cfg.HTTPClient, f.Now)
	f.in = newIntrospector(newClient(p, cfg, nil), cfg)
	f.issuer = srv.URL
	return f
}

func (f *introspectFixture) active(token string, extra ...any) {
	a := map[string]any{"active": true, "sub": "user-1", "client_id": testClient, "aud": []string{testClient},
		"iss": f.issuer, "exp": f.Now().Add(time.Minute).Unix(), "scope": "openid email", "token_type": "Bearer"}
	for i := 0; i < len(extra); i += 2 {
		if extra[i+1] == nil {
			delete(a, extra[i].(string))
			continue
		}
		a[extra[i].(string)] = extra[i+1]
	}
	f.ep.mu.Lock()
	f.ep.answers[token] = a
	f.ep.mu.Unlock()
}

func TestIntrospectionAsksOncePerTokenUntilItExpires(t *testing.T) {
	f := newIntrospectFixture(t)
	ctx := context.Background()
	f.active("opaque-1")
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if c, err := f.in.check(ctx, "opaque-1"); err != nil || c.Subject != "user-1" || c.Scope != "openid email" {
				t.Errorf("an active token: %+v, %v", c, err)
			}
		})
	}
	wg.Wait()
	if n := f.ep.calls.Load(); n != 1 {
		t.Fatalf("20 requests with one token cost %d introspection calls, want 1", n)
	}
	// Past its exp the remembered answer says expired, without a call.
	f.Advance(time.Minute + oidc.Leeway + time.Second)
	if _, err := f.in.check(ctx, "opaque-1"); !errors.Is(err, oidc.ErrExpired) {
		t.Fatalf("past its exp: %v, want expired", err)
	}
	if n := f.ep.calls.Load(); n != 1 {
		t.Fatalf("%d calls, want still 1", n)
	}
}

func TestIntrospectionRefusesWhatIsNotThisAppsLiveToken(t *testing.T) {
	for name, extra := range map[string][]any{
		"inactive":                         {"active", false},
		"no sub":                           {"sub", nil},
		"another issuer":                   {"iss", "https://other.test"},
		"another audience":                 {"aud", []string{"another-api"}},
		"no aud, issued to another client": {"aud", nil, "client_id", "another-client"},
		"expired":                          {"exp", time.Now().Add(-time.Hour).Unix()},
		"a refresh token":                  {"token_type", "refresh_token"},
	} {
		t.Run(name, func(t *testing.T) {
			f := newIntrospectFixture(t)
			f.active("tok", extra...)
			for range 3 {
				if c, err := f.in.check(context.Background(), "tok"); !errors.Is(err, oidc.ErrInvalidToken) || c != nil {
					t.Fatalf("%+v, %v; want refused", c, err)
				}
			}
			if n := f.ep.calls.Load(); n != 1 {
				t.Fatalf("a refused token was sent %d times, want once", n)
			}
		})
	}
	// Without aud, a token issued to this client passes.
	f := newIntrospectFixture(t)
	f.active("tok", "aud", nil)
	if _, err := f.in.check(context.Background(), "tok"); err != nil {
		t.Fatalf("no aud, this client: %v", err)
	}
}

func TestIntrospectionFloodOfMadeUpTokensIsBounded(t *testing.T) {
	f := newIntrospectFixture(t)
	ctx := context.Background()
	throttled := 0
	for i := range 100 {
		_, err := f.in.check(ctx, "made-up-"+string(rune('a'+i%26))+string(rune('a'+i/26)))
		switch {
		case errors.Is(err, errIntrospectionThrottled):
			throttled++
		case !errors.Is(err, oidc.ErrInvalidToken):
			t.Fatalf("a made-up token: %v", err)
		}
	}
	if n := f.ep.calls.Load(); n != exchangeBurst || throttled != 100-exchangeBurst {
		t.Fatalf("100 made-up tokens: %d calls, %d throttled; want %d calls, the rest throttled", n, throttled, exchangeBurst)
	}
	// A genuine token waits for the budget to refill, then passes.
	f.active("genuine")
	if _, err := f.in.check(ctx, "genuine"); !errors.Is(err, ErrProviderUnavailable) {
		t.Fatalf("while the budget is spent: %v, want try again", err)
	}
	f.Advance(2 * exchangeRefill)
	if _, err := f.in.check(ctx, "genuine"); err != nil {
		t.Fatalf("after the refill: %v", err)
	}
}

func TestIntrospectionProviderDownIsTryAgain(t *testing.T) {
	for _, status := range []int{http.StatusServiceUnavailable, http.StatusUnauthorized} {
		f := newIntrospectFixture(t)
		f.active("tok")
		f.ep.status = status
		if _, err := f.in.check(context.Background(), "tok"); !errors.Is(err, ErrProviderUnavailable) || errors.Is(err, oidc.ErrInvalidToken) {
			t.Fatalf("status %d: %v, want try again, not invalid", status, err)
		}
		f.ep.status = 0
		if _, err := f.in.check(context.Background(), "tok"); err != nil {
			t.Fatalf("once the endpoint answers (after %d): %v: a transient failure must not be remembered", status, err)
		}
	}
}

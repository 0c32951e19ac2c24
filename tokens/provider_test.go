package tokens

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/changebank/changebank/idp"
)

var discard = slog.New(slog.DiscardHandler)

func TestCookiesOverHTTPSAreSecureWithHostPrefix(t *testing.T) {
	for appURL, want := range map[string]string{
		"https://bank.example":  "__Host-cb_access_token",
		"http://localhost:8080": "cb_access_token",
	} {
		c := NewCookieStore(appURL, nil)
		rec := httptest.NewRecorder()
		now := time.Now()
		c.set(rec, AccessCookie, "v", now.Add(time.Minute), now)
		set := rec.Result().Cookies()[0]
		secure := strings.HasPrefix(appURL, "https")
		if set.Name != want || set.Secure != secure || !set.HttpOnly || set.Path != "/" || set.Domain != "" || set.SameSite != http.SameSiteLaxMode {
			t.Errorf("%s: %+v", appURL, set)
		}
		// Reading goes by the same name.
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.AddCookie(&http.Cookie{Name: want, Value: "v"})
		if c.Get(req, AccessCookie) != "v" {
			t.Errorf("%s: Get does not find %s", appURL, want)
		}
	}
}

// jwksServer serves a JWKS with the given signers' keys and counts fetches.
func jwksServer(t *testing.T, signers ...*testSigner) (*httptest.Server, *atomic.Int32) {
	var fetches atomic.Int32
	set := jwk.NewSet()
	for _, s := range signers {
		_ = set.AddKey(s.pub)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fetches.Add(1)
		_ = json.NewEncoder(w).Encode(set)
	}))
	t.Cleanup(srv.Close)
	return srv, &fetches
}

func TestUnknownKidRefetchIsSharedAndRateLimited(t *testing.T) {
	signer := newTestSigner(t, "k1")
	srv, fetches := jwksServer(t, signer)
	now := time.Now()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ks, err := NewRemoteKeySet(ctx, srv.URL, &http.Client{Timeout: time.Second}, func() time.Time { return now }, discard)
	if err != nil {
		t.Fatal(err)
	}
	defer ks.Close()
	start := fetches.Load()
	if _, err := ks.LookupKey(ctx, "k1"); err != nil || fetches.Load() != start {
		t.Fatalf("a known kid: %v, %d fetches", err, fetches.Load()-start)
	}
	// The first is judged by a fresh fetch; the rest, within the interval,
	// are "try again": a kid may be a key rotated in since that fetch.
	for i := range 20 {
		want := errKeysUnavailable
		if i == 0 {
			want = errUnknownKey
		}
		if _, err := ks.LookupKey(ctx, "made-up"); !errors.Is(err, want) {
			t.Fatalf("made-up kid %d: %v, want %v", i, err, want)
		}
	}
	if n := fetches.Load() - start; n != 1 {
		t.Fatalf("20 unknown kids caused %d JWKS fetches, want 1 per %s", n, RefetchInterval)
	}
	now = now.Add(RefetchInterval + time.Second)
	_, _ = ks.LookupKey(ctx, "made-up")
	if n := fetches.Load() - start; n != 2 {
		t.Fatalf("after the interval: %d fetches, want 2", n)
	}
}

// standIn runs the FusionAuth stand-in with the project's kickstart.
func standIn(t *testing.T, issuer string) (*idp.Server, *httptest.Server) {
	t.Helper()
	ks, err := idp.LoadKickstart("../kickstart/kickstart.json", func(string) string { return "" }, discard)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(nil)
	if issuer == "" {
		issuer = "http://" + srv.Listener.Addr().String()
	}
	s, err := idp.New(ks, idp.Options{Issuer: issuer})
	if err != nil {
		t.Fatal(err)
	}
	srv.Config.Handler = s.Handler()
	srv.Start()
	t.Cleanup(srv.Close)
	return s, srv
}

func TestDiscoveryThroughTheInternalURL(t *testing.T) {
	// As in compose: tokens say http://localhost:9011, the app reaches FusionAuth elsewhere.
	_, srv := standIn(t, "http://localhost:9011")
	p := NewProvider(Profile{Issuer: "http://localhost:9011", InternalURL: srv.URL}, &http.Client{Timeout: time.Second}, time.Now, discard)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	go p.Start(ctx)
	if err := p.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	m, err := p.metadata()
	if err != nil {
		t.Fatal(err)
	}
	if m.AuthorizationEndpoint != "http://localhost:9011/oauth2/authorize" || m.EndSessionEndpoint != "http://localhost:9011/oauth2/logout" {
		t.Errorf("browser-facing endpoints: %+v", m)
	}
	if m.TokenEndpoint != srv.URL+"/oauth2/token" || m.JWKSURI != srv.URL+"/.well-known/jwks.json" {
		t.Errorf("server-side endpoints: %+v", m)
	}
}

func TestDiscoveryWaitsForTheKickstartIssuer(t *testing.T) {
	// Before the kickstart has set it, FusionAuth's issuer is acme.com.
	_, srv := standIn(t, "acme.com")
	p := NewProvider(Profile{Issuer: "http://localhost:9011", InternalURL: srv.URL}, &http.Client{Timeout: time.Second}, time.Now, discard)
	ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
	defer cancel()
	go p.Start(ctx)
	if err := p.WaitReady(ctx); err == nil || p.Ready() {
		t.Fatal("a provider reporting another issuer was taken as ready")
	}
}

func TestLogoutRevokesAtAnRFC7009Endpoint(t *testing.T) {
	signer := newTestSigner(t, "k1")
	var revoked atomic.Value
	mux := http.NewServeMux()
	var base string
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]string{
			"issuer": base, "authorization_endpoint": base + "/authorize", "token_endpoint": base + "/token",
			"jwks_uri": base + "/jwks", "revocation_endpoint": base + "/revoke",
		})
	})
	jwks, _ := jwksServer(t, signer)
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, jwks.URL, http.StatusFound) })
	mux.HandleFunc("POST /revoke", func(w http.ResponseWriter, r *http.Request) {
		id, secret, _ := r.BasicAuth()
		_ = r.ParseForm()
		revoked.Store(id + "|" + secret + "|" + r.PostForm.Get("token") + "|" + r.PostForm.Get("token_type_hint"))
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	base = srv.URL

	p := NewProvider(Profile{Issuer: base}, &http.Client{Timeout: time.Second}, time.Now, discard)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	go p.Start(ctx)
	if err := p.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	sealer := mustSealer(t, secretA)
	client := NewClient(p, ClientConfig{ID: testClient, Secret: "s3cret", AppURL: "http://app.test"}, &http.Client{Timeout: time.Second})
	m := NewManager(NewCookieStore("http://app.test", sealer), client, NewVerifier(p, Profile{Issuer: base, ClientID: testClient}, time.Now), time.Hour, time.Now, discard)
	plain, _ := json.Marshal(refreshCookie{Token: "the-refresh-token", Subject: "u1", Expires: time.Now().Add(time.Hour).Unix()})
	sealed, _ := sealer.Seal(RefreshCookie, plain)
	req := httptest.NewRequest(http.MethodPost, "/logout", nil)
	req.AddCookie(&http.Cookie{Name: RefreshCookie, Value: sealed})
	rec := httptest.NewRecorder()
	m.Logout(ctx, rec, req)
	end := m.EndAtProvider(rec, req)
	if got, _ := revoked.Load().(string); got != testClient+"|s3cret|the-refresh-token|refresh_token" {
		t.Fatalf("revocation request: %q", got)
	}
	if end != "http://app.test/" {
		t.Fatalf("without an end-session endpoint logout goes home, got %q", end)
	}
	expired := map[string]bool{}
	for _, c := range rec.Result().Cookies() {
		if c.MaxAge < 0 {
			expired[c.Name] = true
		}
	}
	for _, name := range sessionCookies {
		if !expired[name] {
			t.Errorf("logout did not expire %s: %v", name, rec.Result().Header["Set-Cookie"])
		}
	}
}

package oidc

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/changebank/changebank/idp"
)

// jwksServer serves a JWKS with the given signers' keys and counts fetches.
func jwksServer(t *testing.T, signers ...*testSigner) (*httptest.Server, *atomic.Int32) {
	var fetches atomic.Int32
	set := jwk.NewSet()
	for _, s := range signers {
		_ = set.AddKey(s.Pub)
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
	ks, err := newRemoteKeySet(ctx, srv.URL, &http.Client{Timeout: time.Second}, func() time.Time { return now }, discard)
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
		want := ErrKeysUnavailable
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
	ks, err := idp.LoadKickstart("../../kickstart/kickstart.json", func(string) string { return "" }, discard)
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
	m, err := p.Metadata()
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

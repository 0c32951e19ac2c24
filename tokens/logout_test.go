package tokens

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/changebank/changebank/tokens/cookie"
)

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
	set := jwk.NewSet()
	_ = set.AddKey(signer.Pub)
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, _ *http.Request) { _ = json.NewEncoder(w).Encode(set) })
	mux.HandleFunc("POST /revoke", func(w http.ResponseWriter, r *http.Request) {
		id, secret, _ := r.BasicAuth()
		_ = r.ParseForm()
		revoked.Store(id + "|" + secret + "|" + r.PostForm.Get("token") + "|" + r.PostForm.Get("token_type_hint"))
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	base = srv.URL

	ctx := context.Background()
	cfg := testConfig(base)
	cfg.HTTPClient = &http.Client{Timeout: time.Second}
	m := testSessions(t, cfg, startProvider(t, cfg.profile(), cfg.HTTPClient, time.Now), nil)
	sealed, _ := m.cookies.Seal(cookie.Refresh, refreshCookie{Token: "the-refresh-token", Subject: "u1", Expires: time.Now().Add(time.Hour).Unix()})
	req := httptest.NewRequest(http.MethodPost, "/logout", nil)
	req.AddCookie(&http.Cookie{Name: cookie.Refresh, Value: sealed})
	rec := httptest.NewRecorder()
	m.EndSession(ctx, rec, req)
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

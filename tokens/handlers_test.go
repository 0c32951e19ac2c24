package tokens_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/changebank/changebank/internal/oidctest"
	"github.com/changebank/changebank/tokens"
	"github.com/changebank/changebank/tokens/cookie"
)

const kickstartClient = "e9fdb985-9173-4e01-9d73-ac2d60d1dc8e"

// frontDoor is the example's app (the front door's handlers and Require on
// a mux) against the stand-in, on a clock the test moves.
type frontDoor struct {
	app      *httptest.Server
	provider *oidctest.StandIn
	sessions *tokens.Sessions

	mu  sync.Mutex
	now time.Time
}

func newFrontDoor(t *testing.T) *frontDoor {
	t.Helper()
	f := &frontDoor{now: time.Now()}
	f.app = httptest.NewUnstartedServer(nil)
	appURL := "http://" + f.app.Listener.Addr().String()
	f.provider = oidctest.NewStandIn(t, "../kickstart/kickstart.json", kickstartClient, appURL)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	var err error
	f.sessions, err = tokens.New(ctx, tokens.Config{Issuer: f.provider.URL, ClientID: kickstartClient, ClientSecret: f.provider.ClientSecret, AppURL: appURL,
		Secrets: []string{"a secret of 32 bytes or more, for these tests"}, Logger: slog.New(slog.DiscardHandler), Clock: f.clock})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /login", f.sessions.Login)
	mux.HandleFunc("GET /callback", f.sessions.Callback)
	mux.HandleFunc("/logout", f.sessions.Logout)
	mux.Handle("/account", f.sessions.Require(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := tokens.From(r.Context())
		w.Write([]byte("Hello, " + s.User.Name + " csrf=" + s.CSRF + "."))
	})))
	mux.HandleFunc("GET /outside", func(w http.ResponseWriter, r *http.Request) {
		if tokens.From(r.Context()) != nil {
			t.Error("From found a session outside Require")
		}
	})
	f.app.Config.Handler = mux
	f.app.Start()
	t.Cleanup(f.app.Close)
	wait, done := context.WithTimeout(ctx, 10*time.Second)
	defer done()
	if err := f.sessions.Provider().WaitReady(wait); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *frontDoor) clock() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *frontDoor) advance(d time.Duration) {
	f.mu.Lock()
	f.now = f.now.Add(d)
	f.mu.Unlock()
}

// loggedIn returns a browser logged in through the stand-in, and its
// session's CSRF token.
func (f *frontDoor) loggedIn(t *testing.T) (*oidctest.Browser, string) {
	t.Helper()
	b := oidctest.NewBrowser()
	p, err := b.Get(f.app.URL + "/account")
	if err != nil {
		t.Fatal(err)
	}
	if p.Status != http.StatusOK || !strings.Contains(p.Body, "Hello, Richard Hendricks") {
		t.Fatalf("after logging in: %d %q", p.Status, p.Body)
	}
	_, csrf, _ := strings.Cut(p.Body, "csrf=")
	return b, strings.TrimSuffix(csrf, ".")
}

func TestRequireSendsBrowsersToLogInAndProgramsA401(t *testing.T) {
	f := newFrontDoor(t)
	b := oidctest.NewBrowser()
	p, _ := b.Request(http.MethodGet, f.app.URL+"/account?tab=2", nil)
	if p.Status != http.StatusSeeOther || p.Location != "/login?return_to=%2Faccount%3Ftab%3D2" {
		t.Fatalf("a browser without a session: %d %q", p.Status, p.Location)
	}
	if p.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("Cache-Control %q", p.Header.Get("Cache-Control"))
	}
	// A form's POST comes back to the page, not to the POST.
	p, _ = b.Post(f.app.URL+"/account?tab=2", url.Values{"x": {"1"}})
	if p.Status != http.StatusSeeOther || p.Location != "/login?return_to=%2Faccount" {
		t.Fatalf("a POST without a session: %d %q", p.Status, p.Location)
	}
	for name, set := range map[string]func(*http.Request){
		"Authorization":            func(r *http.Request) { r.Header.Set("Authorization", "Bearer x") },
		"Accept: application/json": func(r *http.Request) { r.Header.Set("Accept", "application/json") },
	} {
		t.Run(name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, "/account", nil)
			set(req)
			rec := httptest.NewRecorder()
			f.app.Config.Handler.ServeHTTP(rec, req)
			var body map[string]string
			if rec.Code != http.StatusUnauthorized || json.Unmarshal(rec.Body.Bytes(), &body) != nil || body["error"] != "unauthorized" ||
				rec.Header().Get("WWW-Authenticate") == "" || rec.Header().Get("Location") != "" {
				t.Fatalf("%d %q %q", rec.Code, rec.Body, rec.Header())
			}
		})
	}
	if p, _ := b.Get(f.app.URL + "/outside"); p.Status != http.StatusOK {
		t.Fatalf("/outside: %d", p.Status)
	}
}

func TestRequireKeepsTheCookiesWhileTheProviderIsDown(t *testing.T) {
	f := newFrontDoor(t)
	b, _ := f.loggedIn(t)
	f.provider.Close()
	f.advance(2 * time.Hour) // the access token has expired: the next request refreshes
	p, err := b.Request(http.MethodGet, f.app.URL+"/account", nil)
	if err != nil {
		t.Fatal(err)
	}
	if p.Status != http.StatusServiceUnavailable || p.Header.Get("Retry-After") == "" || !strings.Contains(p.Body, "try again") {
		t.Fatalf("provider down: %d %q", p.Status, p.Body)
	}
	if set := p.Header.Values("Set-Cookie"); len(set) != 0 {
		t.Fatalf("cookies touched while the provider is down: %q", set)
	}
}

func TestLogoutChecksTheFormThenEndsBothSessions(t *testing.T) {
	f := newFrontDoor(t)
	b, csrf := f.loggedIn(t)
	if p, _ := b.Request(http.MethodGet, f.app.URL+"/logout", nil); p.Status != http.StatusMethodNotAllowed {
		t.Fatalf("GET /logout: %d", p.Status)
	}
	if p, _ := b.Post(f.app.URL+"/logout", url.Values{"csrf_token": {"forged"}}); p.Status != http.StatusForbidden || len(p.Header.Values("Set-Cookie")) != 0 {
		t.Fatalf("a forged CSRF token: %d %q", p.Status, p.Header.Values("Set-Cookie"))
	}
	req, _ := http.NewRequest(http.MethodPost, f.app.URL+"/logout", strings.NewReader(url.Values{"csrf_token": {csrf}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "http://evil.example")
	if resp, err := b.Client.Do(req); err != nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("a form from another site: %v %v", resp, err)
	}
	if p, _ := b.Get(f.app.URL + "/account"); p.Status != http.StatusOK {
		t.Fatalf("the refused logouts ended the session: %d", p.Status)
	}

	p, err := b.Post(f.app.URL+"/logout", url.Values{"csrf_token": {csrf}})
	if err != nil {
		t.Fatal(err)
	}
	end, _ := url.Parse(p.Location)
	if p.Status != http.StatusSeeOther || !strings.HasPrefix(p.Location, f.provider.URL+"/oauth2/logout") ||
		end.Query().Get("id_token_hint") == "" || end.Query().Get("post_logout_redirect_uri") != f.app.URL+"/" {
		t.Fatalf("logout: %d %q", p.Status, p.Location)
	}
	expired := map[string]bool{}
	for _, line := range p.Header.Values("Set-Cookie") {
		c, err := http.ParseSetCookie(line)
		if err == nil && c.MaxAge < 0 {
			expired[c.Name] = true
		}
	}
	for _, name := range []string{cookie.Access, cookie.Refresh, cookie.UserInfo} {
		if !expired[name] {
			t.Errorf("logout did not expire %s", name)
		}
	}
	if p, _ := b.Request(http.MethodGet, f.app.URL+"/account", nil); p.Status != http.StatusSeeOther {
		t.Fatalf("after logout: %d", p.Status)
	}
}

func TestLoginAndCallbackAnswerInWords(t *testing.T) {
	f := newFrontDoor(t)
	b := oidctest.NewBrowser()
	// return_to to another site is dropped: the login comes back home.
	p, _ := b.Request(http.MethodGet, f.app.URL+"/login?return_to=//evil.example/x", nil)
	if p.Status != http.StatusFound || !strings.HasPrefix(p.Location, f.provider.URL+"/oauth2/authorize?") {
		t.Fatalf("/login: %d %q", p.Status, p.Location)
	}
	if back, err := b.Get(p.Location); err != nil || back.Status != http.StatusNotFound {
		t.Fatalf("after logging in from /login?return_to=//evil: %v %v (want this app's own 404 for /)", back, err)
	}
	// A callback that matches no login started here; the same once logged
	// in is Back after a login, and goes home.
	for _, q := range []string{"", "state=forged&code=x", "error=access_denied&error_description=%3Cscript%3E"} {
		p, _ := oidctest.NewBrowser().Request(http.MethodGet, f.app.URL+"/callback?"+q, nil)
		if p.Status != http.StatusBadRequest || strings.Contains(p.Body, "script") || strings.Contains(p.Body, "tokens:") {
			t.Errorf("callback?%s: %d %q", q, p.Status, p.Body)
		}
	}
	if p, _ := b.Request(http.MethodGet, f.app.URL+"/callback?state=forged&code=x", nil); p.Status != http.StatusSeeOther || p.Location != "/" {
		t.Errorf("a spent callback while logged in: %d %q", p.Status, p.Location)
	}
	f.provider.Close()
	dead, err := tokens.New(t.Context(), tokens.Config{Issuer: f.provider.URL, ClientID: kickstartClient, ClientSecret: "s", AppURL: f.app.URL,
		Secrets: []string{"a secret of 32 bytes or more, for these tests"}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	dead.Login(rec, httptest.NewRequest(http.MethodGet, "/login", nil))
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" || len(rec.Result().Cookies()) != 0 {
		t.Fatalf("/login before the provider answers: %d %q", rec.Code, rec.Body)
	}
}

func TestNewNamesEveryBadSetting(t *testing.T) {
	_, err := tokens.New(t.Context(), tokens.Config{Issuer: "not a URL", AppURL: "ftp://x", Secrets: []string{"short"},
		Scopes: []string{"email"}, AuthorizeParams: url.Values{"state": {"x"}}})
	if err == nil {
		t.Fatal("a Config with every setting wrong was taken")
	}
	for _, want := range []string{"Issuer", "ClientID", "ClientSecret", "AppURL", "Secrets[0]", "openid", "state"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error does not name %s: %v", want, err)
		}
	}
}

package main

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/changebank/changebank/internal/oidctest"
	"github.com/changebank/changebank/tokens/cookie"
)

const clientID = "e9fdb985-9173-4e01-9d73-ac2d60d1dc8e"

// freeAddr returns a loopback address with a free port. The app must know
// its own URL before it listens (it is the callback), so the port is taken
// and given back: another process could take it in between, which would
// fail the test, never pass it wrongly.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// logInAndOut drives the app at appURL as a person would: /account sends
// the browser to log in at the stand-in, the page greets Richard, and its
// Log out button ends the session here and sends the browser to the
// stand-in's end-session endpoint. between runs after the greeting, with
// the browser.
func logInAndOut(t *testing.T, appURL, issuer string, between func(b *oidctest.Browser)) {
	t.Helper()
	b := oidctest.NewBrowser()
	p, err := b.Get(appURL + "/account")
	if err != nil {
		t.Fatal(err)
	}
	if p.Status != http.StatusOK || !strings.Contains(p.Body, "Hello, Richard Hendricks (richard@example.com)") {
		t.Fatalf("/account after logging in: %d %q", p.Status, p.Body)
	}
	if between != nil {
		between(b)
	}
	csrf := p.Body[strings.Index(p.Body, `name="csrf_token" value="`)+len(`name="csrf_token" value="`):]
	csrf = csrf[:strings.Index(csrf, `"`)]
	out, err := b.Post(appURL+"/logout", url.Values{"csrf_token": {csrf}})
	if err != nil {
		t.Fatal(err)
	}
	if out.Status != http.StatusSeeOther || !strings.HasPrefix(out.Location, issuer+"/oauth2/logout?") {
		t.Fatalf("logout: %d %q, want 303 to %s/oauth2/logout", out.Status, out.Location, issuer)
	}
	if p, _ := b.Request(http.MethodGet, appURL+"/account", nil); p.Status != http.StatusSeeOther || !strings.HasPrefix(p.Location, "/login") {
		t.Fatalf("/account after logout: %d %q", p.Status, p.Location)
	}
}

func TestTheExampleLogsInAndOut(t *testing.T) {
	addr := freeAddr(t)
	appURL := "http://" + addr
	provider := oidctest.NewStandIn(t, "../../kickstart/kickstart.json", clientID, appURL)
	settings := map[string]string{"ISSUER": provider.URL, "CLIENT_SECRET": provider.ClientSecret, "APP_URL": appURL, "LISTEN_ADDR": addr}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, func(name, fallback string) string {
			if v, ok := settings[name]; ok {
				return v
			}
			return fallback
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	waitUntilReady(t, appURL)
	logInAndOut(t, appURL, provider.URL, nil)
}

// waitUntilReady waits until the app at appURL starts logins: it listens,
// and has discovered the provider.
func waitUntilReady(t *testing.T, appURL string) {
	t.Helper()
	b := oidctest.NewBrowser()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if p, err := b.Request(http.MethodGet, appURL+"/login", nil); err == nil && p.Status == http.StatusFound {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the app at %s never started a login", appURL)
		}
	}
}

// TestAnAppOutsideThisRepositoryLogsInRefreshesAndLogsOut: this example
// is written as an app in its own module would be (the standard library
// and tokens only). Copied into a module of its own in a temporary
// directory, with a replace directive to this checkout, it builds with the
// go command (offline: every module it needs is in the module cache
// already), and runs against the stand-in with 8-second access tokens and
// the app's callback added to a copy of the kickstart: Richard logs in and
// is greeted, the page is still served after his access token expired (a
// silent refresh, which the stand-in saw), and he logs out.
func TestAnAppOutsideThisRepositoryLogsInRefreshesAndLogsOut(t *testing.T) {
	checkout, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	src, err := os.ReadFile("main.go")
	if err != nil {
		t.Fatal(err)
	}
	sums, err := os.ReadFile(filepath.Join(checkout, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	goMod := "module example.com/cookiesession\n\ngo 1.26\n\nrequire github.com/changebank/changebank v0.0.0\n\nreplace github.com/changebank/changebank => " + checkout + "\n"
	for name, data := range map[string][]byte{"main.go": src, "go.mod": []byte(goMod), "go.sum": sums} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	bin := filepath.Join(dir, "app")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Dir = dir
	build.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOPROXY=off", "GOWORK=off")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build in its own module: %v\n%s", err, out)
	}

	addr := freeAddr(t)
	appURL := "http://" + addr
	provider := oidctest.NewStandIn(t, shortTokensKickstart(t, dir, appURL), clientID)
	app := exec.Command(bin)
	app.Env = append(os.Environ(), "ISSUER="+provider.URL, "CLIENT_SECRET="+provider.ClientSecret, "APP_URL="+appURL, "LISTEN_ADDR="+addr)
	app.Stderr = os.Stderr
	if err := app.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = app.Process.Kill(); _ = app.Wait() })
	waitUntilReady(t, appURL)

	logInAndOut(t, appURL, provider.URL, func(b *oidctest.Browser) {
		before := provider.IdP.TokenCalls("refresh_token")
		time.Sleep(9 * time.Second) // past the access token's 8 s
		p, err := b.Get(appURL + "/account")
		if err != nil {
			t.Fatal(err)
		}
		refreshed := false
		for _, line := range p.Header.Values("Set-Cookie") {
			refreshed = refreshed || strings.HasPrefix(line, cookie.Access+"=")
		}
		if p.Status != http.StatusOK || !strings.Contains(p.Body, "Hello, Richard Hendricks") || !refreshed ||
			provider.IdP.TokenCalls("refresh_token") != before+1 {
			t.Fatalf("/account after the access token expired: %d, a new access cookie %v, refresh calls %d → %d\n%s",
				p.Status, refreshed, before, provider.IdP.TokenCalls("refresh_token"), p.Body)
		}
	})
}

// shortTokensKickstart writes into dir a copy of the project's kickstart
// whose application also lists appURL's callback and home, and whose
// access tokens live 8 seconds, as testdata/kickstart-short-tokens.json
// sets them. It returns the copy's path.
func shortTokensKickstart(t *testing.T, dir, appURL string) string {
	t.Helper()
	data, err := os.ReadFile("../../kickstart/kickstart.json")
	if err != nil {
		t.Fatal(err)
	}
	var ks map[string]any
	if err := json.Unmarshal(data, &ks); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, r := range ks["requests"].([]any) {
		req := r.(map[string]any)
		if !strings.HasPrefix(req["url"].(string), "/api/application/") {
			continue
		}
		app := req["body"].(map[string]any)["application"].(map[string]any)
		oauth := app["oauthConfiguration"].(map[string]any)
		oauth["authorizedRedirectURLs"] = append(oauth["authorizedRedirectURLs"].([]any), appURL+"/callback", appURL+"/")
		app["jwtConfiguration"].(map[string]any)["timeToLiveInSeconds"] = 8
		found = true
	}
	if !found {
		t.Fatal("the kickstart creates no application")
	}
	out, _ := json.Marshal(ks)
	path := filepath.Join(dir, "kickstart.json")
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

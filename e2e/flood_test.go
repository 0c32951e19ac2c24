package e2e

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/changebank/changebank/idp"
	"github.com/changebank/changebank/internal/app"
	"github.com/changebank/changebank/internal/apptest"
)

// TestForgedCallbackFloodCostsOnlyTheFlooder: one client forges callbacks
// several times a second (each after its own GET /login, as anyone can)
// while another logs in again and again. Every login goes through, and the
// provider is asked to exchange at most the flooder's budget of forged
// codes. The flooder is 127.0.0.2, the other client 127.0.0.1: to the app,
// directly, or behind a proxy listed in TRUSTED_PROXIES that forwards the
// address. Either way the flooder names itself 127.0.0.1 in X-Forwarded-For,
// and the app does not believe it.
func TestForgedCallbackFloodCostsOnlyTheFlooder(t *testing.T) {
	flooderAddr := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}
	if ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: flooderAddr.IP}); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("127.0.0.2 is not a loopback address here: %v", err)
		}
		t.Skipf("127.0.0.2 is not a loopback address here (Linux has all of 127.0.0.0/8; macOS needs `ifconfig lo0 alias 127.0.0.2`): %v", err)
	} else {
		ln.Close()
	}
	for _, behindProxy := range []bool{false, true} {
		name := "direct"
		if behindProxy {
			name = "behind a trusted proxy"
		}
		t.Run(name, func(t *testing.T) {
			stand, issuer, appURL := floodTarget(t, behindProxy)
			flooder := &http.Client{Timeout: 10 * time.Second,
				Transport:     &http.Transport{DialContext: (&net.Dialer{LocalAddr: flooderAddr}).DialContext},
				CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			flooder.Jar, _ = cookiejar.New(nil)

			ctx, stop := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			var forged, refused, throttled int
			start := time.Now()
			wg.Go(func() {
				tick := time.NewTicker(100 * time.Millisecond) // 10 a second
				defer tick.Stop()
				for {
					select {
					case <-ctx.Done():
						return
					case <-tick.C:
					}
					switch status := forgeCallback(t, flooder, appURL); status {
					case http.StatusBadRequest:
						refused++
					case http.StatusServiceUnavailable:
						throttled++
					default:
						t.Errorf("a forged callback answered %d", status)
					}
					forged++
				}
			})
			logins := 0
			for range 8 {
				time.Sleep(400 * time.Millisecond)
				landed, body := logInAt(t, issuer, appURL)
				if landed != appURL+"/account" || !strings.Contains(body, "Richard Hendricks") {
					t.Errorf("a login from 127.0.0.1 during the flood landed on %s:\n%.300s", landed, body)
				} else {
					logins++
				}
			}
			stop()
			wg.Wait()
			elapsed := time.Since(start)

			exchanges := stand.TokenCalls("authorization_code") - logins
			budget := 10 + int(elapsed/time.Second) + 1 // a burst of 10, then one a second
			t.Logf("%s: %d forged callbacks in %s (%d refused by the provider, %d throttled), %d logins; %d forged codes reached the provider (budget %d)",
				name, forged, elapsed.Round(100*time.Millisecond), refused, throttled, logins, exchanges, budget)
			if throttled == 0 {
				t.Errorf("the flooder was never throttled: %d forged callbacks in %s", forged, elapsed)
			}
			if exchanges > budget {
				t.Errorf("the provider exchanged %d forged codes, want at most the flooder's budget, %d", exchanges, budget)
			}
		})
	}
}

// floodTarget starts a stand-in and one app instance, and returns the
// stand-in, its URL and the URL browsers reach the app at: the app itself,
// or a proxy in front of it that appends the peer's address to
// X-Forwarded-For, as nginx's $proxy_add_x_forwarded_for does.
func floodTarget(t *testing.T, behindProxy bool) (*idp.Server, string, string) {
	t.Helper()
	appAddr := apptest.FreePort(t)
	appURL := "http://" + appAddr
	env := map[string]string{"LISTEN_ADDR": appAddr}
	if behindProxy {
		backend := &url.URL{Scheme: "http", Host: appAddr}
		proxy := httptest.NewServer(&httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
			r.Out.Header["X-Forwarded-For"] = r.In.Header["X-Forwarded-For"]
			r.SetXForwarded()
			r.SetURL(backend)
			r.Out.Host = r.In.Host
		}})
		t.Cleanup(proxy.Close)
		appURL = proxy.URL
		env["TRUSTED_PROXIES"] = "127.0.0.1"
	}
	ks, err := idp.LoadKickstart(repo("kickstart/kickstart.json"), func(string) string { return "" }, nil)
	if err != nil {
		t.Fatal(err)
	}
	idpSrv := httptest.NewUnstartedServer(nil)
	issuer := "http://" + idpSrv.Listener.Addr().String()
	stand, err := idp.New(ks, idp.Options{Issuer: issuer, ExtraRedirectURLs: []string{appURL + "/callback", appURL + "/"}})
	if err != nil {
		t.Fatal(err)
	}
	idpSrv.Config.Handler = stand.Handler()
	idpSrv.Start()
	t.Cleanup(idpSrv.Close)

	env["APP_URL"], env["ISSUER"] = appURL, issuer
	for k, v := range apptest.DemoEnv {
		env[k] = v
	}
	logs := &apptest.Logs{}
	ctx, cancel := context.WithCancelCause(context.Background())
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx, nil, apptest.Getenv(env), io.Discard, logs) }()
	t.Cleanup(func() {
		cancel(app.ErrInterrupted)
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	awaitReady(t, "http://"+appAddr, done, 15*time.Second, logs)
	return stand, issuer, appURL
}

// forgeCallback starts a login as anyone can and sends its callback with a
// made-up code; it returns the callback's status.
func forgeCallback(t *testing.T, client *http.Client, appURL string) int {
	req, _ := http.NewRequest(http.MethodGet, appURL+"/login", nil)
	req.Header.Set("X-Forwarded-For", "127.0.0.1") // the other client's address: not believed
	resp, err := client.Do(req)
	if err != nil {
		t.Error(err)
		return 0
	}
	resp.Body.Close()
	authorize, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || authorize.Query().Get("state") == "" {
		t.Errorf("/login answered %d %q", resp.StatusCode, resp.Header.Get("Location"))
		return 0
	}
	req, _ = http.NewRequest(http.MethodGet, appURL+"/callback?"+url.Values{"state": {authorize.Query().Get("state")}, "code": {"forged"}}.Encode(), nil)
	req.Header.Set("X-Forwarded-For", "127.0.0.1")
	resp, err = client.Do(req)
	if err != nil {
		t.Error(err)
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// logInAt logs Richard in at appURL through the stand-in's form, from
// 127.0.0.1, and returns where the browser landed and that page's body.
func logInAt(t *testing.T, issuer, appURL string) (string, string) {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	noFollow := &http.Client{Jar: jar, Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Get(appURL + "/login")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	form, err := idp.LoginForm(noFollow, resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	form.Set("loginId", "richard@example.com")
	form.Set("password", "password")
	resp, err = (&http.Client{Jar: jar, Timeout: 10 * time.Second}).PostForm(issuer+"/oauth2/authorize", form)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.Request.URL.String(), string(body)
}

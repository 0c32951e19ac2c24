package e2e

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/changebank/changebank/idp"
	"github.com/changebank/changebank/internal/app"
	"github.com/changebank/changebank/internal/apptest"
)

type demo struct {
	appURL, issuer string
	base           string // where requests go: APP_URL, or LISTEN_ADDR when set
	logs           *apptest.Logs
	secrets        *secretList
}

// secretList holds the values that must never be logged: the settings'
// secrets and what a test saw in the browser's cookies.
type secretList struct {
	mu     sync.Mutex
	values []string
}

// remember adds values to look for; short ones (an emptied cookie, the
// logout marker's Unix time) are no secrets and are left out.
func (l *secretList) remember(values ...string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, v := range values {
		if len(v) >= 16 && !slices.Contains(l.values, v) {
			l.values = append(l.values, v)
		}
	}
}

// leaked returns the text just before each remembered value found in logs.
func (l *secretList) leaked(logs string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, v := range l.values {
		if i := strings.Index(logs, v); i >= 0 {
			out = append(out, logs[max(0, i-120):i])
		}
	}
	// Tokens and sealed cookies this test did not see still start with "eyJ".
	if i := strings.Index(logs, "eyJ"); i >= 0 {
		out = append(out, logs[max(0, i-120):i])
	}
	return out
}

// rememberJar remembers every cookie value jar holds for the app and the provider.
func (d demo) rememberJar(jar http.CookieJar) {
	for _, base := range []string{d.appURL, d.issuer} {
		u, _ := url.Parse(base)
		for _, c := range jar.Cookies(u) {
			d.secrets.remember(c.Value)
		}
	}
}

// repo is the path of a file of the repository from this package's folder,
// where go test runs the tests.
func repo(name string) string { return filepath.Join("..", name) }

// startDemo calls app.Run with -embedded-idp and the project's kickstart on
// free loopback ports, waits until it is ready, and stops it when the test
// ends.
func startDemo(t testing.TB, extra map[string]string) demo {
	t.Helper()
	appAddr, idpAddr := apptest.FreePort(t), apptest.FreePort(t)
	env := map[string]string{"APP_URL": "http://" + appAddr, "ISSUER": "http://" + idpAddr, "KICKSTART_FILE": repo("kickstart/kickstart.json")}
	for k, v := range apptest.DemoEnv {
		env[k] = v
	}
	for k, v := range extra {
		env[k] = v
	}
	d := demo{appURL: env["APP_URL"], issuer: env["ISSUER"], base: env["APP_URL"], logs: &apptest.Logs{}, secrets: &secretList{}}
	d.secrets.remember(env["CLIENT_SECRET"], env["FUSIONAUTH_API_KEY"])
	for _, secret := range strings.Split(env["APP_SECRET_KEY"], ",") {
		d.secrets.remember(strings.TrimSpace(secret))
	}
	if env["LISTEN_ADDR"] != "" {
		d.base = "http://" + env["LISTEN_ADDR"]
	}
	// Stopped as Ctrl-C stops it, without the drain period.
	ctx, cancel := context.WithCancelCause(context.Background())
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx, []string{"-embedded-idp"}, apptest.Getenv(env), io.Discard, d.logs) }()
	t.Cleanup(func() {
		cancel(app.ErrInterrupted)
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
		for _, before := range d.secrets.leaked(d.logs.String()) {
			t.Errorf("a secret, token or cookie value was logged after ...%s", before)
		}
	})
	awaitReady(t, d.base, done, 15*time.Second, d.logs)
	return d
}

func TestRunServesTheDemoWithTheEmbeddedProvider(t *testing.T) {
	d := startDemo(t, map[string]string{"LOG_LEVEL": "info"})
	landed, body := logInOverHTTP(t, d)
	if landed != d.appURL+"/account" || !strings.Contains(body, "Richard Hendricks") {
		t.Fatalf("landed on %s:\n%s", landed, body)
	}
	if !strings.Contains(d.logs.String(), "for development and tests only") {
		t.Error("the stand-in's startup line does not say what it is")
	}
}

// FusionAuth takes an application id in any case but writes it lower-case
// in the tokens' aud: an upper-case CLIENT_ID must still log people in.
func TestAnUpperCaseClientIDStillLogsIn(t *testing.T) {
	d := startDemo(t, map[string]string{"CLIENT_ID": strings.ToUpper(apptest.DemoEnv["CLIENT_ID"])})
	landed, body := logInOverHTTP(t, d)
	if landed != d.appURL+"/account" || !strings.Contains(body, "Richard Hendricks") {
		t.Fatalf("landed on %s:\n%s", landed, body)
	}
}

// logInOverHTTP logs richard in through the stand-in's form and returns
// where the browser landed and that page's body.
func logInOverHTTP(t *testing.T, d demo) (string, string) {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	return logInWithJar(t, d, jar)
}

// logInWithJar is logInOverHTTP with the browser's cookie jar, which then
// holds the session.
func logInWithJar(t *testing.T, d demo, jar http.CookieJar) (string, string) {
	t.Helper()
	noFollow := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Get(d.appURL + "/login")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	authorize, _ := url.Parse(resp.Header.Get("Location"))
	if !strings.HasPrefix(authorize.String(), d.issuer+"/oauth2/authorize") {
		t.Fatalf("/login sent us to %q", authorize)
	}
	form, err := idp.LoginForm(noFollow, authorize.String())
	if err != nil {
		t.Fatal(err)
	}
	form.Set("loginId", "richard@example.com")
	form.Set("password", "password")
	follow := &http.Client{Jar: jar}
	resp, err = follow.PostForm(d.issuer+"/oauth2/authorize", form)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	d.rememberJar(jar)
	return resp.Request.URL.String(), string(body)
}

// TestRunOverHTTPSWithAnUnusualAppURL runs the app as it sits behind a TLS
// proxy: cookies must be Secure and __Host-, the redirect URI normalised,
// and a form posted from the page (Origin as browsers write it) accepted.
func TestRunOverHTTPSWithAnUnusualAppURL(t *testing.T) {
	for _, appURL := range []string{"HTTPS://Bank.Example", "https://bank.example:443"} {
		t.Run(appURL, func(t *testing.T) {
			env := map[string]string{"APP_URL": appURL, "LISTEN_ADDR": apptest.FreePort(t)}
			for k, v := range apptest.RealSecrets {
				env[k] = v
			}
			d := startDemo(t, env)
			noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			resp, err := noFollow.Get(d.base + "/login")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			authorize, _ := url.Parse(resp.Header.Get("Location"))
			if got := authorize.Query().Get("redirect_uri"); got != "https://bank.example/callback" {
				t.Errorf("redirect_uri %q", got)
			}
			cookies := resp.Cookies()
			if len(cookies) == 0 {
				t.Fatal("/login set no transaction cookie")
			}
			for _, c := range cookies {
				if !c.Secure || !strings.HasPrefix(c.Name, "__Host-") {
					t.Errorf("cookie %s: Secure %v, want Secure and __Host-", c.Name, c.Secure)
				}
			}
			req, _ := http.NewRequest(http.MethodPost, d.base+"/logout", strings.NewReader(""))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Origin", "https://bank.example")
			resp, err = noFollow.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			page, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || refreshTarget(string(page)) == "" {
				t.Fatalf("a form from https://bank.example: %d, want the page that moves on to the provider's logout", resp.StatusCode)
			}
		})
	}
}

// awaitReady polls base's /readyz until it answers 200. It fails the test
// when run, whose result arrives on done (buffered), stops first (then it
// puts nil back for the test's cleanup, which waits on done, so the stop is
// reported once), or when within has passed.
func awaitReady(t testing.TB, base string, done chan error, within time.Duration, logs interface{ String() string }) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		if resp, err := http.Get(base + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case err := <-done:
			done <- nil
			t.Fatalf("run stopped: %v\n%s", err, logs)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never became ready within %s\n%s", base, within, logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

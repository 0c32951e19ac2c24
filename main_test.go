package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/changebank/changebank/idp"
)

// demoEnv is the shipped .env's settings, as tests pass them to run.
var demoEnv = map[string]string{
	"CLIENT_ID":          "e9fdb985-9173-4e01-9d73-ac2d60d1dc8e",
	"CLIENT_SECRET":      "changebank-demo-client-secret-not-for-production",
	"APP_SECRET_KEY":     "main-test-secret-0123456789-abcdefghijklmn",
	"FUSIONAUTH_API_KEY": "changebank-demo-api-key-not-for-production-0000000000",
	"LOG_LEVEL":          "warn",
}

func getenvFrom(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestConfigNamesEveryBadSetting(t *testing.T) {
	env := map[string]string{
		"APP_URL":           "ftp://example.com",
		"ISSUER":            "http://localhost:9011/some/path?tenant=1",
		"APP_SECRET_KEY":    "too-short, also-too-short",
		"AUTHORIZE_PARAMS":  "audience=api&redirect_uri=https%3A%2F%2Fevil.test",
		"SCOPES":            "email profile",
		"REFRESH_TOKEN_TTL": "forever",
		"LOG_LEVEL":         "loud",
	}
	_, err := loadConfig(nil, getenvFrom(env), io.Discard)
	if err == nil {
		t.Fatal("bad settings were accepted")
	}
	for _, name := range []string{"APP_URL", "ISSUER", "CLIENT_ID", "CLIENT_SECRET", "APP_SECRET_KEY: secret #1", "APP_SECRET_KEY: secret #2", "REFRESH_TOKEN_TTL", "LOG_LEVEL", "AUTHORIZE_PARAMS: redirect_uri", "SCOPES"} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("the error does not name %s:\n%v", name, err)
		}
	}
	if strings.Contains(err.Error(), "too-short") {
		t.Error("the error shows a secret")
	}
}

func TestConfigDefaults(t *testing.T) {
	cfg, err := loadConfig([]string{"-embedded-idp"}, getenvFrom(demoEnv), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.AppURL != "http://localhost:8080" || cfg.ListenAddr != ":8080" || cfg.Issuer != "http://localhost:9011" ||
		cfg.issuerAddr != "localhost:9011" || cfg.RefreshTTL != 720*time.Hour || !cfg.EmbeddedIdP || len(cfg.Secrets) != 1 {
		t.Fatalf("defaults: %+v", cfg)
	}
}

func freePort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).AddrPort().String()
}

// syncBuffer is an io.Writer safe for the server's goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type demo struct {
	appURL, issuer string
	base           string // where requests go: APP_URL, or LISTEN_ADDR when set
	logs           *syncBuffer
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

// startDemo calls run with -embedded-idp on free loopback ports, waits
// until it is ready, and stops it when the test ends.
func startDemo(t testing.TB, extra map[string]string) demo {
	t.Helper()
	appAddr, idpAddr := freePort(t), freePort(t)
	env := map[string]string{"APP_URL": "http://" + appAddr, "ISSUER": "http://" + idpAddr}
	for k, v := range demoEnv {
		env[k] = v
	}
	for k, v := range extra {
		env[k] = v
	}
	d := demo{appURL: env["APP_URL"], issuer: env["ISSUER"], base: env["APP_URL"], logs: &syncBuffer{}, secrets: &secretList{}}
	d.secrets.remember(env["CLIENT_SECRET"], env["FUSIONAUTH_API_KEY"])
	for _, secret := range strings.Split(env["APP_SECRET_KEY"], ",") {
		d.secrets.remember(strings.TrimSpace(secret))
	}
	if env["LISTEN_ADDR"] != "" {
		d.base = "http://" + env["LISTEN_ADDR"]
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"-embedded-idp"}, getenvFrom(env), io.Discard, d.logs) }()
	t.Cleanup(func() {
		cancel()
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
	d := startDemo(t, map[string]string{"CLIENT_ID": strings.ToUpper(demoEnv["CLIENT_ID"])})
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

func TestRunStopsOnABadKickstart(t *testing.T) {
	env := map[string]string{"KICKSTART_FILE": "idp/testdata/bad-json.json", "APP_URL": "http://" + freePort(t), "ISSUER": "http://" + freePort(t)}
	for k, v := range demoEnv {
		env[k] = v
	}
	err := run(context.Background(), []string{"-embedded-idp"}, getenvFrom(env), io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "bad-json.json") {
		t.Fatalf("run = %v, want an error naming the kickstart file", err)
	}
}

// realSecrets are settings no file of this repository publishes, for runs over https.
var realSecrets = map[string]string{
	"CLIENT_SECRET":      "main-test-client-secret-0123456789-abcdefgh",
	"FUSIONAUTH_API_KEY": "",
}

// TestConfigKeepsTheIssuerExactly: ISSUER is the iss tokens carry, compared
// exactly (OpenID Connect Discovery 1.0, 4.3): a path (Keycloak, Dex) and a
// trailing slash (Auth0, zitadel) are kept, not normalised away.
func TestConfigKeepsTheIssuerExactly(t *testing.T) {
	for _, issuer := range []string{
		"https://tenant.eu.auth0.com/",
		"https://id.example/realms/bank",
		"http://127.0.0.1:5556/dex",
		"https://Id.Example:443/",
	} {
		t.Run(issuer, func(t *testing.T) {
			env := map[string]string{"ISSUER": issuer}
			for k, v := range demoEnv {
				env[k] = v
			}
			env["ISSUER"] = issuer
			cfg, err := loadConfig(nil, getenvFrom(env), io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Issuer != issuer {
				t.Fatalf("ISSUER %q became %q", issuer, cfg.Issuer)
			}
		})
	}
	// The embedded stand-in serves at its host's root: a path is refused there.
	env := map[string]string{}
	for k, v := range demoEnv {
		env[k] = v
	}
	env["ISSUER"] = "http://localhost:9011/dex"
	if _, err := loadConfig([]string{"-embedded-idp"}, getenvFrom(env), io.Discard); err == nil || !strings.Contains(err.Error(), "embedded stand-in") {
		t.Fatalf("-embedded-idp with an issuer path: %v", err)
	}
}

// TestConfigProviderSettings: AUDIENCE defaults to CLIENT_ID, SCOPES to the
// four FusionAuth needs, and AUTHORIZE_PARAMS may add parameters but not
// replace the flow's own.
func TestConfigProviderSettings(t *testing.T) {
	load := func(extra map[string]string) (config, error) {
		env := map[string]string{}
		for k, v := range demoEnv {
			env[k] = v
		}
		for k, v := range extra {
			env[k] = v
		}
		return loadConfig(nil, getenvFrom(env), io.Discard)
	}
	cfg, err := load(nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Audience != cfg.ClientID || strings.Join(cfg.Scopes, " ") != "openid email profile offline_access" || len(cfg.AuthorizeParams) != 0 {
		t.Fatalf("defaults: audience %q, scopes %q, params %v", cfg.Audience, cfg.Scopes, cfg.AuthorizeParams)
	}
	cfg, err = load(map[string]string{"AUDIENCE": "https://api.example", "SCOPES": " openid  offline_access ",
		"AUTHORIZE_PARAMS": "audience=https%3A%2F%2Fapi.example&resource=https%3A%2F%2Fapi.example%2Fv1"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Audience != "https://api.example" || strings.Join(cfg.Scopes, " ") != "openid offline_access" ||
		cfg.AuthorizeParams.Get("audience") != "https://api.example" || cfg.AuthorizeParams.Get("resource") != "https://api.example/v1" {
		t.Fatalf("set: audience %q, scopes %q, params %v", cfg.Audience, cfg.Scopes, cfg.AuthorizeParams)
	}
	for _, name := range []string{"state", "nonce", "code_challenge", "Code_Challenge_Method", "redirect_uri", "client_id", "response_type", "scope"} {
		if _, err := load(map[string]string{"AUTHORIZE_PARAMS": "prompt=login&" + name + "=x"}); err == nil || !strings.Contains(err.Error(), "AUTHORIZE_PARAMS: "+name) {
			t.Errorf("AUTHORIZE_PARAMS overriding %s: %v", name, err)
		}
	}
	if _, err := load(map[string]string{"AUTHORIZE_PARAMS": "a=%zz"}); err == nil || !strings.Contains(err.Error(), "AUTHORIZE_PARAMS") {
		t.Errorf("AUTHORIZE_PARAMS not in query form: %v", err)
	}
}

// TestConfigRefusesRequestObjectsAndControlCharacters: AUTHORIZE_PARAMS
// may not carry a request object or a response_mode (each would take the
// flow out of the app's hands) nor control characters, and says so at
// start in one line naming each; repeated names pass, every value in order.
func TestConfigRefusesRequestObjectsAndControlCharacters(t *testing.T) {
	env := map[string]string{}
	for k, v := range demoEnv {
		env[k] = v
	}
	env["AUTHORIZE_PARAMS"] = "prompt=consent&request=eyJ9&request_uri=https%3A%2F%2Fevil.test&response_mode=form_post&redirect_uri%00=x&login_hint=a%0D%0AX&scope=all"
	_, err := loadConfig(nil, getenvFrom(env), io.Discard)
	if err == nil {
		t.Fatal("accepted")
	}
	lines := strings.Split(err.Error(), "\n")
	var params []string
	for _, l := range lines {
		if strings.Contains(l, "AUTHORIZE_PARAMS") {
			params = append(params, l)
		}
	}
	if len(params) != 1 {
		t.Fatalf("%d lines about AUTHORIZE_PARAMS, want one:\n%v", len(params), err)
	}
	for _, want := range []string{"request (", "request_uri (", "response_mode (", `"redirect_uri\x00" (`, "login_hint (", "scope ("} {
		if !strings.Contains(params[0], want) {
			t.Errorf("the message does not name %s: %s", want, params[0])
		}
	}
	if strings.Contains(params[0], "prompt") {
		t.Errorf("an allowed parameter is named: %s", params[0])
	}
	env["AUTHORIZE_PARAMS"] = "resource=https%3A%2F%2Fa.example&prompt=consent&resource=https%3A%2F%2Fb.example&access_type=offline"
	cfg, err := loadConfig(nil, getenvFrom(env), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(cfg.AuthorizeParams["resource"], " "); got != "https://a.example https://b.example" {
		t.Fatalf("repeated resource: %q", got)
	}
}

// TestConfigHTTPSAppNeedsHTTPSIssuer: over https, a plain-http ISSUER would
// send the client secret and the tokens across the network unencrypted;
// loopback is this machine and stays allowed.
func TestConfigHTTPSAppNeedsHTTPSIssuer(t *testing.T) {
	for issuer, ok := range map[string]bool{
		"http://id.example":         false,
		"http://10.0.0.5:9011/dex":  false,
		"https://id.example/dex":    true,
		"http://localhost:9011":     true,
		"http://127.0.0.1:5556/dex": true,
		"http://[::1]:4444/":        true,
	} {
		env := map[string]string{"APP_URL": "https://bank.example", "ISSUER": issuer,
			"CLIENT_ID": "app", "CLIENT_SECRET": "a-real-secret-for-this-test", "APP_SECRET_KEY": "an-https-test-secret-0123456789-abcdefg"}
		_, err := loadConfig(nil, getenvFrom(env), io.Discard)
		if got := err == nil; got != ok {
			t.Errorf("ISSUER %s under an https APP_URL: err %v", issuer, err)
		} else if !ok && !strings.Contains(err.Error(), "ISSUER") {
			t.Errorf("ISSUER %s: the error does not name ISSUER: %v", issuer, err)
		}
		env["APP_URL"] = "http://localhost:8080"
		if _, err := loadConfig(nil, getenvFrom(env), io.Discard); err != nil {
			t.Errorf("ISSUER %s under an http APP_URL: %v", issuer, err)
		}
	}
}

func TestConfigNormalisesURLs(t *testing.T) {
	cases := []struct{ in, want, listen string }{
		{"HTTPS://Bank.Example", "https://bank.example", ":443"},
		{"https://bank.example:443/", "https://bank.example", ":443"},
		{"http://localhost:80", "http://localhost", ":80"},
		{"Http://LOCALHOST:8080/", "http://localhost:8080", ":8080"},
		{"https://bank.example:8443", "https://bank.example:8443", ":8443"},
		{"http://[::1]:80", "http://[::1]", ":80"},
		{"http://[::1]:8080", "http://[::1]:8080", ":8080"},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			env := map[string]string{"APP_URL": tc.in, "ISSUER": "https://id.example/realms/bank/", "ISSUER_INTERNAL_URL": tc.in}
			for k, v := range demoEnv {
				env[k] = v
			}
			for k, v := range realSecrets {
				env[k] = v
			}
			cfg, err := loadConfig(nil, getenvFrom(env), io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.AppURL != tc.want || cfg.IssuerInternalURL != tc.want || cfg.ListenAddr != tc.listen {
				t.Fatalf("APP_URL %q, ISSUER %q, ISSUER_INTERNAL_URL %q, listen %q; want %q and %q",
					cfg.AppURL, cfg.Issuer, cfg.IssuerInternalURL, cfg.ListenAddr, tc.want, tc.listen)
			}
		})
	}
}

// TestRunOverHTTPSWithAnUnusualAppURL runs the app as it sits behind a TLS
// proxy: cookies must be Secure and __Host-, the redirect URI normalised,
// and a form posted from the page (Origin as browsers write it) accepted.
func TestRunOverHTTPSWithAnUnusualAppURL(t *testing.T) {
	for _, appURL := range []string{"HTTPS://Bank.Example", "https://bank.example:443"} {
		t.Run(appURL, func(t *testing.T) {
			env := map[string]string{"APP_URL": appURL, "LISTEN_ADDR": freePort(t)}
			for k, v := range realSecrets {
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
			resp.Body.Close()
			if resp.StatusCode != http.StatusSeeOther {
				t.Fatalf("a form from https://bank.example: %d, want 303", resp.StatusCode)
			}
		})
	}
}

func TestPublishedSecretsAreRefusedOverHTTPS(t *testing.T) {
	cases := []struct {
		name, appURL, setting, value string
		refused                      bool
	}{
		{"demo APP_SECRET_KEY over https", "https://bank.example", "APP_SECRET_KEY", "changebank-demo-cookie-secret-not-for-production-0001", true},
		{"demo key second in the list", "https://bank.example", "APP_SECRET_KEY", "main-test-secret-0123456789-abcdefghijklmn,changebank-demo-cookie-secret-not-for-production-0001", true},
		{"demo client secret over https", "HTTPS://bank.example", "CLIENT_SECRET", "changebank-demo-client-secret-not-for-production", true},
		{"demo API key over https", "https://bank.example", "FUSIONAUTH_API_KEY", "changebank-demo-api-key-not-for-production-0000000000", true},
		{"demo APP_SECRET_KEY over http", "http://localhost:8080", "APP_SECRET_KEY", "changebank-demo-cookie-secret-not-for-production-0001", false},
		{"demo client secret over http", "http://localhost:8080", "CLIENT_SECRET", "changebank-demo-client-secret-not-for-production", false},
		{"real secrets over https", "https://bank.example", "APP_SECRET_KEY", "main-test-secret-0123456789-abcdefghijklmn", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{"APP_URL": tc.appURL}
			for k, v := range demoEnv {
				env[k] = v
			}
			for k, v := range realSecrets {
				env[k] = v
			}
			env[tc.setting] = tc.value
			_, err := loadConfig(nil, getenvFrom(env), io.Discard)
			if (err != nil) != tc.refused {
				t.Fatalf("refused = %v, want %v: %v", err != nil, tc.refused, err)
			}
			if tc.refused && (!strings.Contains(err.Error(), tc.setting) || strings.Contains(err.Error(), "changebank-demo")) {
				t.Fatalf("the error must name %s and not show the secret:\n%v", tc.setting, err)
			}
		})
	}
}

// TestPublishedSecretsAreListed reads every file that publishes settings
// and fails when a secret-looking value in one is missing from
// publishedSecrets, which would let it through over https.
func TestPublishedSecretsAreListed(t *testing.T) {
	secretName := `[A-Za-z_]*(?:SECRET|KEY|PASSWORD|[Ss]ecret|[Kk]ey|[Pp]assword)` // a name that ends like a secret's
	patterns := []*regexp.Regexp{
		regexp.MustCompile(`(?m)^\s*` + secretName + `\s*[=:]\s*"?([^\s"#$]+)`), // .env, compose, shell in the README
		regexp.MustCompile(`"` + secretName + `"\s*:\s*"([^"#]+)"`),             // kickstart JSON
		regexp.MustCompile(`\b(changebank-demo-[A-Za-z0-9-]+)`),                 // anything named as a demo value
		regexp.MustCompile(`(?m)^\s*-\s*` + secretName + `=([^\s"$]+)`),         // compose list form
	}
	found := 0
	for _, file := range []string{".env", "docker-compose.yml", "README.md", "kickstart/kickstart.json"} {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, re := range patterns {
			for _, m := range re.FindAllStringSubmatch(string(data), -1) {
				v := strings.Trim(m[1], "`',")
				if v == "" || strings.HasPrefix(v, "#{") || strings.HasPrefix(v, "${") || strings.HasPrefix(v, "/") {
					continue
				}
				found++
				if !slices.Contains(publishedSecrets, v) {
					t.Errorf("%s publishes %q (%q): add it to publishedSecrets", file, v, m[0])
				}
			}
		}
	}
	if found < 5 {
		t.Fatalf("found only %d published secrets: the patterns no longer match the files", found)
	}
}

func TestHelpListsEverySettingAndExitsCleanly(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"-h"}, getenvFrom(nil), &stdout, &stderr); err != nil {
		t.Fatalf("run -h = %v, want nil", err)
	}
	if stderr.Len() != 0 {
		t.Errorf("-h wrote to stderr: %s", stderr.String())
	}
	// Every variable loadConfig reads is listed, with its default.
	var read []string
	if _, err := loadConfig([]string{"-embedded-idp"}, func(k string) string { read = append(read, k); return demoEnv[k] }, io.Discard); err != nil {
		t.Fatal(err)
	}
	help := stdout.String()
	for _, name := range append(read, "-embedded-idp", "http://localhost:8080", "http://localhost:9011", "720h", "kickstart/kickstart.json") {
		if !strings.Contains(help, name) {
			t.Errorf("-h does not list %q:\n%s", name, help)
		}
	}
	if len(read) < len(settings) {
		t.Errorf("loadConfig read %d variables, the table lists %d", len(read), len(settings))
	}
	if err := run(context.Background(), []string{"-nope"}, getenvFrom(nil), io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "-h") {
		t.Errorf("an unknown flag: %v, want an error pointing at -h", err)
	}
}

// TestREADMESettingsMatchTheCode keeps the README's table true: every
// setting the code reads is there with its default, and nothing else.
func TestREADMESettingsMatchTheCode(t *testing.T) {
	data, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, _ := strings.Cut(string(data), "\n## Settings\n")
	section, _, _ = strings.Cut(section, "\n## ")
	rows := map[string]string{}
	for _, m := range regexp.MustCompile("(?m)^\\| `([A-Z_]+)` \\| ([^|]*) \\|").FindAllStringSubmatch(section, -1) {
		rows[m[1]] = strings.TrimSpace(m[2])
	}
	for _, s := range settings {
		row, ok := rows[s.name]
		switch {
		case !ok:
			t.Errorf("README's Settings lack %s", s.name)
		case s.fallback != "" && row != "`"+s.fallback+"`":
			t.Errorf("README gives %s the default %s, the code %q", s.name, row, s.fallback)
		}
		delete(rows, s.name)
	}
	for name := range rows {
		t.Errorf("README lists %s, which the code does not read", name)
	}
}

func TestServeStopsEveryServerWhenOneFails(t *testing.T) {
	listen := func() net.Listener {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		return ln
	}
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {})
	idpLn, appLn := listen(), listen()
	appAddr := appLn.Addr().String()
	done := make(chan error, 1)
	go func() {
		done <- serve(context.Background(), slog.New(slog.DiscardHandler),
			server{name: "embedded identity provider", srv: newServer(ok), ln: idpLn},
			server{name: "app", srv: newServer(ok), ln: appLn})
	}()
	waitServing(t, appAddr)
	idpLn.Close() // the provider's server fails
	err := <-done
	if err == nil || !strings.Contains(err.Error(), "embedded identity provider") {
		t.Fatalf("serve = %v, want the provider's failure", err)
	}
	if c, err := net.Dial("tcp", appAddr); err == nil {
		c.Close()
		t.Fatal("the app server still accepts connections after serve returned")
	}
}

func TestRunNamesTheProviderItCannotReach(t *testing.T) {
	env := map[string]string{"APP_URL": "http://" + freePort(t), "ISSUER": "http://" + freePort(t)}
	for k, v := range demoEnv {
		env[k] = v
	}
	logs := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, nil, getenvFrom(env), io.Discard, logs) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	}()
	want := []string{"cannot reach the identity provider at " + env["ISSUER"], "restart it with the built-in stand-in, `go run . -embedded-idp`", "docker compose up"}
	deadline := time.Now().Add(20 * time.Second)
	for !containsAll(logs.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("the logs never say %q:\n%s", want, logs)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func containsAll(s string, subs []string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

func waitServing(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/")
		if err == nil {
			resp.Body.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never answered: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
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

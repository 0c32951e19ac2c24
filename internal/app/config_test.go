package app

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/changebank/changebank/internal/apptest"
)

func TestConfigNamesEveryBadSetting(t *testing.T) {
	env := map[string]string{
		"APP_URL":           "ftp://example.com",
		"ISSUER":            "http://localhost:9011/some/path?tenant=1",
		"APP_SECRET_KEY":    "too-short, also-too-short",
		"AUTHORIZE_PARAMS":  "audience=api&redirect_uri=https%3A%2F%2Fevil.test",
		"SCOPES":            "email profile",
		"REFRESH_TOKEN_TTL": "forever",
		"DRAIN_PERIOD":      "-15s",
		"LOG_LEVEL":         "loud",
	}
	_, err := LoadConfig(nil, apptest.Getenv(env), io.Discard)
	if err == nil {
		t.Fatal("bad settings were accepted")
	}
	for _, name := range []string{"APP_URL", "ISSUER", "CLIENT_ID", "CLIENT_SECRET", "APP_SECRET_KEY: secret #1", "APP_SECRET_KEY: secret #2", "REFRESH_TOKEN_TTL", "DRAIN_PERIOD", "LOG_LEVEL", "AUTHORIZE_PARAMS: redirect_uri", "SCOPES"} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("the error does not name %s:\n%v", name, err)
		}
	}
	if strings.Contains(err.Error(), "too-short") {
		t.Error("the error shows a secret")
	}
}

func TestConfigDefaults(t *testing.T) {
	cfg, err := LoadConfig([]string{"-embedded-idp"}, apptest.Getenv(apptest.DemoEnv), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.AppURL != "http://localhost:8080" || cfg.ListenAddr != ":8080" || cfg.Issuer != "http://localhost:9011" ||
		cfg.issuerAddr != "localhost:9011" || cfg.RefreshTTL != 720*time.Hour || cfg.DrainPeriod != 15*time.Second || !cfg.EmbeddedIdP || len(cfg.Secrets) != 1 {
		t.Fatalf("defaults: %+v", cfg)
	}
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
			for k, v := range apptest.DemoEnv {
				env[k] = v
			}
			env["ISSUER"] = issuer
			cfg, err := LoadConfig(nil, apptest.Getenv(env), io.Discard)
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
	for k, v := range apptest.DemoEnv {
		env[k] = v
	}
	env["ISSUER"] = "http://localhost:9011/dex"
	if _, err := LoadConfig([]string{"-embedded-idp"}, apptest.Getenv(env), io.Discard); err == nil || !strings.Contains(err.Error(), "embedded stand-in") {
		t.Fatalf("-embedded-idp with an issuer path: %v", err)
	}
}

// TestConfigBearerIntrospection: off unless set to on; anything else is
// named at start rather than read as off.
func TestConfigBearerIntrospection(t *testing.T) {
	for value, want := range map[string]string{"": "off", "off": "off", "on": "on", "ON": "on", "yes": "refused"} {
		env := map[string]string{}
		for k, v := range apptest.DemoEnv {
			env[k] = v
		}
		env["BEARER_INTROSPECTION"] = value
		cfg, err := LoadConfig(nil, apptest.Getenv(env), io.Discard)
		switch got := map[bool]string{false: "off", true: "on"}[cfg.BearerIntrospection]; {
		case want == "refused" && (err == nil || !strings.Contains(err.Error(), "BEARER_INTROSPECTION")):
			t.Errorf("BEARER_INTROSPECTION=%q: %v, want it named", value, err)
		case want != "refused" && (err != nil || got != want):
			t.Errorf("BEARER_INTROSPECTION=%q: %s, %v; want %s", value, got, err, want)
		}
	}
}

// TestConfigProviderSettings: AUDIENCE defaults to CLIENT_ID, SCOPES to the
// four FusionAuth needs, and AUTHORIZE_PARAMS may add parameters but not
// replace the flow's own.
func TestConfigProviderSettings(t *testing.T) {
	load := func(extra map[string]string) (Config, error) {
		env := map[string]string{}
		for k, v := range apptest.DemoEnv {
			env[k] = v
		}
		for k, v := range extra {
			env[k] = v
		}
		return LoadConfig(nil, apptest.Getenv(env), io.Discard)
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
	for k, v := range apptest.DemoEnv {
		env[k] = v
	}
	env["AUTHORIZE_PARAMS"] = "prompt=consent&request=eyJ9&request_uri=https%3A%2F%2Fevil.test&response_mode=form_post&redirect_uri%00=x&login_hint=a%0D%0AX&scope=all"
	_, err := LoadConfig(nil, apptest.Getenv(env), io.Discard)
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
	cfg, err := LoadConfig(nil, apptest.Getenv(env), io.Discard)
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
		_, err := LoadConfig(nil, apptest.Getenv(env), io.Discard)
		if got := err == nil; got != ok {
			t.Errorf("ISSUER %s under an https APP_URL: err %v", issuer, err)
		} else if !ok && !strings.Contains(err.Error(), "ISSUER") {
			t.Errorf("ISSUER %s: the error does not name ISSUER: %v", issuer, err)
		}
		env["APP_URL"] = "http://localhost:8080"
		if _, err := LoadConfig(nil, apptest.Getenv(env), io.Discard); err != nil {
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
			for k, v := range apptest.DemoEnv {
				env[k] = v
			}
			for k, v := range apptest.RealSecrets {
				env[k] = v
			}
			cfg, err := LoadConfig(nil, apptest.Getenv(env), io.Discard)
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
			for k, v := range apptest.DemoEnv {
				env[k] = v
			}
			for k, v := range apptest.RealSecrets {
				env[k] = v
			}
			env[tc.setting] = tc.value
			_, err := LoadConfig(nil, apptest.Getenv(env), io.Discard)
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
		regexp.MustCompile(`(?m)^\s*` + secretName + `\s*[=:]\s*"?([^\s"#$]+)`), // .env, compose, shell in the README and docs/
		regexp.MustCompile(`"` + secretName + `"\s*:\s*"([^"#]+)"`),             // kickstart JSON
		regexp.MustCompile(`\b(changebank-demo-[A-Za-z0-9-]+)`),                 // anything named as a demo value
		regexp.MustCompile(`(?m)^\s*-\s*` + secretName + `=([^\s"$]+)`),         // compose list form
	}
	found := 0
	pages, err := filepath.Glob("../../docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	files := []string{".env", "docker-compose.yml", "README.md", "kickstart/kickstart.json"}
	for _, p := range pages {
		files = append(files, "docs/"+filepath.Base(p))
	}
	for _, file := range files {
		data, err := os.ReadFile(filepath.Join("../..", file))
		if err != nil {
			t.Fatal(err)
		}
		for _, re := range patterns {
			for _, m := range re.FindAllStringSubmatch(string(data), -1) {
				v := strings.Trim(m[1], "`',")
				// "..." is a placeholder, as in the README's code snippet.
				if strings.Trim(v, ".") == "" || strings.HasPrefix(v, "#{") || strings.HasPrefix(v, "${") || strings.HasPrefix(v, "/") {
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
	if err := Run(context.Background(), []string{"-h"}, apptest.Getenv(nil), &stdout, &stderr); err != nil {
		t.Fatalf("run -h = %v, want nil", err)
	}
	if stderr.Len() != 0 {
		t.Errorf("-h wrote to stderr: %s", stderr.String())
	}
	// Every variable LoadConfig reads is listed, with its default.
	var read []string
	if _, err := LoadConfig([]string{"-embedded-idp"}, func(k string) string { read = append(read, k); return apptest.DemoEnv[k] }, io.Discard); err != nil {
		t.Fatal(err)
	}
	help := stdout.String()
	for _, name := range append(read, "-embedded-idp", "http://localhost:8080", "http://localhost:9011", "720h", "kickstart/kickstart.json") {
		if !strings.Contains(help, name) {
			t.Errorf("-h does not list %q:\n%s", name, help)
		}
	}
	if len(read) < len(settings) {
		t.Errorf("LoadConfig read %d variables, the table lists %d", len(read), len(settings))
	}
	if err := Run(context.Background(), []string{"-nope"}, apptest.Getenv(nil), io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "-h") {
		t.Errorf("an unknown flag: %v, want an error pointing at -h", err)
	}
}

// TestREADMESettingsMatchTheCode keeps the README's table true: every
// setting the code reads is there with its default, and nothing else.
func TestREADMESettingsMatchTheCode(t *testing.T) {
	data, err := os.ReadFile("../../README.md")
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

func TestAttackerAddrMustBeAnotherSite(t *testing.T) {
	cases := []struct {
		addr, appURL, problem string
	}{
		{"127.0.0.1:8081", "", ""},
		{"", "", ""},
		{"localhost:8081", "", "same site"},
		{"8081", "", "want host:port"},
		{"0.0.0.0:8081", "", "every interface"},
		{"[::]:8081", "", "every interface"},
		{"app.localhost:8081", "", "same site"},
		{"evil.bank.example:8081", "http://www.bank.example", "same site"},
		{"127.0.0.1:8081", "https://bank.example", "leave ATTACKER_ADDR empty when APP_URL is https"},
	}
	for _, tc := range cases {
		t.Run(tc.addr+" "+tc.appURL, func(t *testing.T) {
			env := map[string]string{"ATTACKER_ADDR": tc.addr}
			for k, v := range apptest.DemoEnv {
				env[k] = v
			}
			if tc.appURL != "" {
				env["APP_URL"] = tc.appURL
			}
			cfg, err := LoadConfig(nil, apptest.Getenv(env), io.Discard)
			switch {
			case tc.problem == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.problem == "" && cfg.AttackerAddr != tc.addr:
				t.Fatalf("AttackerAddr = %q", cfg.AttackerAddr)
			case tc.problem != "" && (err == nil || !strings.Contains(err.Error(), "ATTACKER_ADDR") || !strings.Contains(err.Error(), tc.problem)):
				t.Fatalf("want ATTACKER_ADDR refused (%s), got %v", tc.problem, err)
			}
		})
	}
}

func TestConfigMetricsAddr(t *testing.T) {
	load := func(addr string) (Config, error) {
		env := map[string]string{"METRICS_ADDR": addr, "APP_URL": "http://localhost:8080"}
		for k, v := range apptest.DemoEnv {
			env[k] = v
		}
		return LoadConfig(nil, apptest.Getenv(env), io.Discard)
	}
	for _, ok := range []string{"", ":9090", "127.0.0.1:9090", "[::1]:9090"} {
		if cfg, err := load(ok); err != nil || cfg.MetricsAddr != ok {
			t.Errorf("METRICS_ADDR=%q: %v (%q)", ok, err, cfg.MetricsAddr)
		}
	}
	for bad, says := range map[string]string{
		"9090":           "want host:port",
		"localhost:":     "want host:port",
		":8080":          "the app's own port",
		"0.0.0.0:8080":   "the app's own port",
		"metrics.local":  "want host:port",
		"127.0.0.1:8080": "the app's own port",
	} {
		_, err := load(bad)
		if err == nil || !strings.Contains(err.Error(), "METRICS_ADDR: ") || !strings.Contains(err.Error(), says) {
			t.Errorf("METRICS_ADDR=%q: %v, want it refused with %q", bad, err, says)
		}
	}
}

package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
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
		"ISSUER":            "http://localhost:9011/some/path",
		"APP_SECRET_KEY":    "too-short, also-too-short",
		"REFRESH_TOKEN_TTL": "forever",
		"LOG_LEVEL":         "loud",
	}
	_, err := loadConfig(nil, getenvFrom(env), io.Discard)
	if err == nil {
		t.Fatal("bad settings were accepted")
	}
	for _, name := range []string{"APP_URL", "ISSUER", "CLIENT_ID", "CLIENT_SECRET", "APP_SECRET_KEY: secret #1", "APP_SECRET_KEY: secret #2", "REFRESH_TOKEN_TTL", "LOG_LEVEL"} {
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
	logs           *syncBuffer
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
	d := demo{appURL: env["APP_URL"], issuer: env["ISSUER"], logs: &syncBuffer{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"-embedded-idp"}, getenvFrom(env), io.Discard, d.logs) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
		if strings.Contains(d.logs.String(), "eyJ") {
			t.Errorf("a token or cookie value was logged:\n%s", d.logs)
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get(d.appURL + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return d
			}
		}
		select {
		case err := <-done:
			t.Fatalf("run stopped: %v\n%s", err, d.logs)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the demo never became ready\n%s", d.logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestRunServesTheDemoWithTheEmbeddedProvider(t *testing.T) {
	d := startDemo(t, map[string]string{"LOG_LEVEL": "info"})
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
	form := authorize.Query()
	form.Set("loginId", "richard@example.com")
	form.Set("password", "password")
	follow := &http.Client{Jar: jar}
	resp, err = follow.PostForm(d.issuer+"/oauth2/authorize", form)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.Request.URL.String() != d.appURL+"/account" || !strings.Contains(string(body), "Richard Hendricks") {
		t.Fatalf("landed on %s:\n%s", resp.Request.URL, body)
	}
	if !strings.Contains(d.logs.String(), "for development and tests only") {
		t.Error("the stand-in's startup line does not say what it is")
	}
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

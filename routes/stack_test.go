package routes

import (
	"bytes"
	"context"
	"fmt"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/changebank/changebank/idp"
	"github.com/changebank/changebank/internal/metrics"
	"github.com/changebank/changebank/tokens"
	"github.com/changebank/changebank/tokens/cookie"
)

// The integration tests run the real app against the real stand-in, both
// on loopback, configured from the project's kickstart, with one clock
// they share so that tokens expire without waiting.

const (
	clientID     = "e9fdb985-9173-4e01-9d73-ac2d60d1dc8e"
	clientSecret = "changebank-demo-client-secret-not-for-production"
	apiKey       = "changebank-demo-api-key-not-for-production-0000000000"
)

var testSecret = []byte("routes-test-secret-0123456789-abcdefghij")

// The login transaction's life, how many one browser keeps, and the
// refresh's grace window, as package tokens documents them.
const (
	loginTTL     = 10 * time.Minute
	maxLogins    = 4
	refreshGrace = 20 * time.Second
)

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// syncBuffer collects logs from concurrent handlers.
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

type stack struct {
	t        testing.TB
	idp      *idp.Server
	idpURL   string
	appURL   string
	clock    *fakeClock
	sessions *tokens.Sessions
	sealer   *cookie.Sealer
	logs     *syncBuffer
	handler  http.Handler
	secrets  *secretSet
}

type stackOptions struct {
	refreshPolicy string // overrides the kickstart's; "" keeps it (OneTimeUse)
	noAPIKey      bool
	infoLogs      bool // log at info, as the app does by default; tests log debug too
	quietLogs     bool // log at warn: no line per request, as cmd/load measures (the hot-path benchmark)
	metrics       bool // the Prometheus metrics on, as METRICS_ADDR turns them on in the app
}

func newStack(t testing.TB, o stackOptions) *stack {
	t.Helper()
	logs := &syncBuffer{}
	level := slog.LevelDebug
	switch {
	case o.quietLogs:
		level = slog.LevelWarn
	case o.infoLogs:
		level = slog.LevelInfo
	}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: level}))
	clock := &fakeClock{now: time.Now()}
	secrets := &secretSet{}
	for kind, v := range map[string]string{"client_secret": clientSecret, "api_key": apiKey, "app_secret": string(testSecret)} {
		secrets.add(kind, v)
	}

	ks, err := idp.LoadKickstart("../kickstart/kickstart.json", func(string) string { return "" }, log)
	if err != nil {
		t.Fatal(err)
	}
	if o.refreshPolicy != "" {
		ks.Applications[clientID].RefreshTokenUsage = o.refreshPolicy
	}
	idpSrv := httptest.NewUnstartedServer(nil)
	appSrv := httptest.NewUnstartedServer(nil)
	idpURL := "http://" + idpSrv.Listener.Addr().String()
	appURL := "http://" + appSrv.Listener.Addr().String()
	stand, err := idp.New(ks, idp.Options{Issuer: idpURL, ExtraRedirectURLs: []string{appURL + "/callback", appURL + "/"}, Now: clock.Now, Log: log, Witness: secrets.add})
	if err != nil {
		t.Fatal(err)
	}
	idpSrv.Config.Handler = stand.Handler()
	idpSrv.Start()
	t.Cleanup(idpSrv.Close)

	key := apiKey
	if o.noAPIKey {
		key = ""
	}
	cfg := tokens.Config{Issuer: idpURL, AppURL: appURL, FusionAuthAPIKey: key,
		HTTPClient: &http.Client{Timeout: 2 * time.Second}, RefreshTokenTTL: 720 * time.Hour, Clock: clock.Now}
	var opts []Option
	var meters *metrics.Metrics
	if o.metrics {
		// Wired as internal/app wires them.
		meters = metrics.New()
		cfg.Observer = meters
		cfg.HTTPClient.Transport = meters.ProviderTransport(nil)
		opts = append(opts, WithRequestObserver(meters))
	}
	h, sessions, err := wire(t, log, cfg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if meters != nil {
		meters.Watch(sessions)
	}
	waitCtx, done := context.WithTimeout(context.Background(), 10*time.Second)
	defer done()
	if err := sessions.Provider().WaitReady(waitCtx); err != nil {
		t.Fatalf("provider never ready: %v\n%s", err, logs)
	}
	// The same secret seals as the app does: tests open what it sealed.
	sealer, err := cookie.NewSealer(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	appSrv.Config.Handler = h
	appSrv.Start()
	t.Cleanup(appSrv.Close)

	s := &stack{t: t, idp: stand, idpURL: idpURL, appURL: appURL, clock: clock, sessions: sessions, sealer: sealer, logs: logs, handler: h, secrets: secrets}
	t.Cleanup(s.checkLogs)
	return s
}

// wire builds the app's handler as main.go does, with the test's client
// registration and secret, logging into log. Discovery runs until t ends.
func wire(t testing.TB, log *slog.Logger, cfg tokens.Config, opts ...Option) (http.Handler, *tokens.Sessions, error) {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	cfg.ClientID, cfg.ClientSecret, cfg.Secrets, cfg.Logger = clientID, clientSecret, []string{string(testSecret)}, log
	if cfg.AppURL == "" {
		cfg.AppURL = "http://app.test"
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	sessions, err := tokens.New(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	h, err := New(log, sessions, cfg.Clock, os.DirFS(".."), cfg.AppURL, opts...)
	return h, sessions, err
}

// secretSet holds every secret value the test stack handed out or was
// sent: the stand-in's codes, tokens, SSO session ids, the PKCE verifiers
// and client secret it received, and every cookie value the app set.
type secretSet struct {
	mu     sync.Mutex
	values map[string]string // value -> kind
}

// minSecretLen skips values too short to be a secret: an emptied cookie,
// the logout marker's Unix time.
const minSecretLen = 16

func (s *secretSet) add(kind, value string) {
	if len(value) < minSecretLen {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.values == nil {
		s.values = map[string]string{}
	}
	if _, ok := s.values[value]; !ok {
		s.values[value] = kind
	}
}

// leaks returns, for each secret found in text, its kind and where it is.
func (s *secretSet) leaks(text string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for v, kind := range s.values {
		if i := strings.Index(text, v); i >= 0 {
			out = append(out, fmt.Sprintf("%s at ...%s...", kind, text[max(0, i-120):i]))
		}
	}
	// Tokens and sealed values this stack did not see issued (a forged one,
	// a test's own) still start with "eyJ", base64 of `{"`.
	if i := strings.Index(text, "eyJ"); i >= 0 {
		out = append(out, fmt.Sprintf("a JWT or JWE at ...%s...", text[max(0, i-120):min(len(text), i+20)]))
	}
	sort.Strings(out)
	return out
}

// checkLogs fails the test when the logs hold any secret the stack issued
// or received, or anything shaped like a token or a sealed cookie.
func (s *stack) checkLogs() {
	for _, leak := range s.secrets.leaks(s.logs.String()) {
		s.t.Errorf("the logs hold a secret: %s", leak)
	}
}

// browser is a cookie-keeping client that records every Set-Cookie it gets.
type browser struct {
	t      testing.TB
	s      *stack
	jar    *cookiejar.Jar
	client *http.Client

	mu   sync.Mutex
	sets []*http.Cookie
}

func (s *stack) browser() *browser {
	jar, _ := cookiejar.New(nil)
	b := &browser{t: s.t, s: s, jar: jar}
	b.client = &http.Client{Jar: jar, Transport: b, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return b
}

// RoundTrip records Set-Cookie headers.
func (b *browser) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err == nil {
		set := resp.Cookies()
		for _, c := range set {
			b.s.secrets.add("cookie "+c.Name, c.Value)
		}
		b.mu.Lock()
		b.sets = append(b.sets, set...)
		b.mu.Unlock()
	}
	return resp, err
}

// setCookie returns the last Set-Cookie seen for name, or nil.
func (b *browser) setCookie(name string) *http.Cookie {
	b.mu.Lock()
	defer b.mu.Unlock()
	for i := len(b.sets) - 1; i >= 0; i-- {
		if b.sets[i].Name == name {
			return b.sets[i]
		}
	}
	return nil
}

func (b *browser) forgetSets() {
	b.mu.Lock()
	b.sets = nil
	b.mu.Unlock()
}

// cookie returns the value the browser holds for the app, or "".
func (b *browser) cookie(name string) string {
	u, _ := url.Parse(b.s.appURL)
	for _, c := range b.jar.Cookies(u) {
		if c.Name == name {
			return c.Value
		}
	}
	return ""
}

func (b *browser) setJarCookie(name, value string) {
	u, _ := url.Parse(b.s.appURL)
	b.jar.SetCookies(u, []*http.Cookie{{Name: name, Value: value, Path: "/"}})
}

type response struct {
	status int
	header http.Header
	body   string
}

func (p response) location() string { return p.header.Get("Location") }

// refreshTag finds the meta refresh of 0 seconds the Log out page writes.
var refreshTag = regexp.MustCompile(`<meta http-equiv="refresh" content="0; url='([^']*)'">`)

// next is where the browser goes on from p by itself: a redirect's
// Location, or the URL of a page that refreshes at once (Log out's).
func (p response) next() string {
	if l := p.location(); l != "" {
		return l
	}
	if m := refreshTag.FindStringSubmatch(p.body); m != nil && p.status == http.StatusOK {
		return html.UnescapeString(m[1])
	}
	return ""
}

func (b *browser) do(req *http.Request) response {
	b.t.Helper()
	resp, err := b.client.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, header: resp.Header, body: string(body)}
}

func (b *browser) get(path string) response {
	b.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, b.abs(path), nil)
	return b.do(req)
}

// getFramed loads path as a browser loads an iframe's page.
func (b *browser) getFramed(path string) response {
	b.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, b.abs(path), nil)
	req.Header.Set("Sec-Fetch-Dest", "iframe")
	return b.do(req)
}

// post sends a form the way a browser on the app's page would: with Origin.
func (b *browser) post(path string, form url.Values) response {
	b.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, b.abs(path), strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", b.s.appURL)
	return b.do(req)
}

func (b *browser) abs(path string) string {
	if strings.HasPrefix(path, "http") {
		return path
	}
	return b.s.appURL + path
}

// follow follows redirects from p until a page that is not one.
func (b *browser) follow(p response) (response, []string) {
	b.t.Helper()
	var visited []string
	for i := 0; p.status >= 300 && p.status < 400; i++ {
		if i > 10 {
			b.t.Fatal("redirect loop")
		}
		visited = append(visited, p.location())
		p = b.get(p.location())
	}
	return p, visited
}

// startLogin visits /login and returns the provider's authorize URL.
func (b *browser) startLogin(returnTo string) string {
	b.t.Helper()
	path := "/login"
	if returnTo != "" {
		path += "?return_to=" + url.QueryEscape(returnTo)
	}
	p := b.get(path)
	if p.status != http.StatusFound || !strings.HasPrefix(p.location(), b.s.idpURL+"/oauth2/authorize?") {
		b.t.Fatalf("/login: %d %q", p.status, p.location())
	}
	return p.location()
}

// submitLogin posts the provider's login form for an authorize URL and
// returns the provider's redirect to the callback.
func (b *browser) submitLogin(authorizeURL, email, password string) response {
	b.t.Helper()
	form, err := idp.LoginForm(b.client, authorizeURL)
	if err != nil {
		b.t.Fatal(err)
	}
	form.Set("loginId", email)
	form.Set("password", password)
	req, _ := http.NewRequest(http.MethodPost, b.s.idpURL+"/oauth2/authorize", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

// login logs Richard in and returns the page he lands on.
func (b *browser) login(returnTo string) response {
	b.t.Helper()
	cb := b.submitLogin(b.startLogin(returnTo), "richard@example.com", "password")
	if !strings.HasPrefix(cb.location(), b.s.appURL+"/callback?") {
		b.t.Fatalf("provider did not redirect to the callback: %d %q", cb.status, cb.location())
	}
	p, _ := b.follow(cb)
	return p
}

// csrf extracts the CSRF token from a page.
func csrf(t testing.TB, body string) string {
	t.Helper()
	const marker = `name="csrf_token" value="`
	i := strings.Index(body, marker)
	if i < 0 {
		t.Fatalf("no CSRF token in the page:\n%s", body)
	}
	rest := body[i+len(marker):]
	return rest[:strings.Index(rest, `"`)]
}

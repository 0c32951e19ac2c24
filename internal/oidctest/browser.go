package oidctest

import (
	"fmt"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"

	"github.com/changebank/changebank/idp"
)

// A Browser is an HTTP client with a cookie jar that follows redirects
// itself, and logs in at the FusionAuth stand-in (package idp) as a person
// would: its login form, filled in with an email and a password.
type Browser struct {
	Client *http.Client // with a jar; it follows no redirect on its own
	// Email and Password are what the stand-in's login form gets.
	Email, Password string
}

// NewBrowser returns a Browser that logs in as Richard Hendricks, a user
// of the project's kickstart.
func NewBrowser() *Browser {
	jar, _ := cookiejar.New(nil)
	return &Browser{
		Client: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		Email:  "richard@example.com", Password: "password",
	}
}

// A Page is one answer: its status, body and (for a redirect) Location.
type Page struct {
	Status   int
	Body     string
	Location string
	Header   http.Header
	// Refresh is where a page that refreshes at once (a meta refresh of 0
	// seconds: the app's Log out page) sends the browser on.
	Refresh string
}

// Next is where the browser goes on from the page by itself: a
// redirect's Location, or an immediate refresh's URL; "" when it stays.
func (p *Page) Next() string {
	if p.Location != "" {
		return p.Location
	}
	return p.Refresh
}

// refreshTag finds a meta refresh of 0 seconds, as the app's Log out page writes it.
var refreshTag = regexp.MustCompile(`<meta http-equiv="refresh" content="0; url='([^']*)'">`)

// Get gets target and follows the redirects (and immediate refreshes) of its answers; one to the
// stand-in's /oauth2/authorize shows its login form, which the browser
// fills in and posts. It returns the first answer that is no redirect.
func (b *Browser) Get(target string) (*Page, error) {
	for range 20 {
		u, err := url.Parse(target)
		if err != nil {
			return nil, err
		}
		var p *Page
		if u.Path == "/oauth2/authorize" {
			p, err = b.logIn(target)
		} else {
			p, err = b.Request(http.MethodGet, target, nil)
		}
		if err != nil || p.Next() == "" {
			return p, err
		}
		next, err := u.Parse(p.Next())
		if err != nil {
			return nil, err
		}
		target = next.String()
	}
	return nil, fmt.Errorf("oidctest: more than 20 redirects from %s", target)
}

// Post posts form to target and returns the answer, redirect or not.
func (b *Browser) Post(target string, form url.Values) (*Page, error) {
	return b.Request(http.MethodPost, target, form)
}

// logIn fills in the stand-in's login form for the authorize request
// target and posts it.
func (b *Browser) logIn(target string) (*Page, error) {
	form, err := idp.LoginForm(b.Client, target)
	if err != nil {
		return nil, err
	}
	form.Set("loginId", b.Email)
	form.Set("password", b.Password)
	u, _ := url.Parse(target)
	return b.Request(http.MethodPost, u.Scheme+"://"+u.Host+"/oauth2/authorize", form)
}

// Request sends one request, with form as its body when not nil (from
// the target's own origin), and returns the answer, redirect or not.
func (b *Browser) Request(method, target string, form url.Values) (*Page, error) {
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, target, body)
	if err != nil {
		return nil, err
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if u, err := url.Parse(target); err == nil {
			req.Header.Set("Origin", u.Scheme+"://"+u.Host) // a form of the page's own site
		}
	}
	resp, err := b.Client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	text, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	p := &Page{Status: resp.StatusCode, Body: string(text), Header: resp.Header}
	if resp.StatusCode/100 == 3 {
		p.Location = resp.Header.Get("Location")
	}
	if m := refreshTag.FindStringSubmatch(p.Body); m != nil && resp.StatusCode == http.StatusOK {
		p.Refresh = html.UnescapeString(m[1])
	}
	return p, nil
}

// TB is what NewStandIn needs of a *testing.T.
type TB interface {
	Helper()
	Fatal(...any)
	Cleanup(func())
}

// A StandIn is the FusionAuth stand-in serving on httptest: its URL is
// the issuer.
type StandIn struct {
	*httptest.Server
	IdP          *idp.Server
	ClientSecret string // the application's, as the kickstart sets it
}

// NewStandIn starts the FusionAuth stand-in at a free port with the
// kickstart at path, accepting the callbacks and logout returns of the
// given app URLs besides the kickstart's own, and closes it when t ends.
// clientID names the kickstart's application whose secret it returns.
func NewStandIn(t TB, kickstart, clientID string, appURLs ...string) *StandIn {
	t.Helper()
	ks, err := idp.LoadKickstart(kickstart, func(string) string { return "" }, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	app, ok := ks.Applications[clientID]
	if !ok {
		t.Fatal("oidctest: the kickstart has no application " + clientID)
	}
	var redirects []string
	for _, a := range appURLs {
		redirects = append(redirects, a+"/callback", a+"/")
	}
	srv := httptest.NewUnstartedServer(nil)
	issuer := "http://" + srv.Listener.Addr().String()
	s, err := idp.New(ks, idp.Options{Issuer: issuer, ExtraRedirectURLs: redirects, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	srv.Config.Handler = s.Handler()
	srv.Start()
	t.Cleanup(srv.Close)
	return &StandIn{Server: srv, IdP: s, ClientSecret: app.ClientSecret}
}

package main

import (
	"net/url"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// TestBrowserLogoutElsewhereEndsTheSession: logging out at the provider
// (another application's logout, or the user at FusionAuth) loads the
// app's GET /logout in the provider's hidden iframe, and that must clear
// the app's cookies.
func TestBrowserLogoutElsewhereEndsTheSession(t *testing.T) {
	ctx := newBrowser(t)
	d := startDemo(t, nil)
	run1(t, ctx, chromedp.Navigate(d.appURL+"/account"))
	logIn(t, ctx, "richard@example.com", "password")
	run1(t, ctx, chromedp.WaitVisible(chromedp.CSS("#name")))
	jar := cookies(t, ctx, d.appURL)
	for _, name := range sessionCookies {
		if jar[name] == nil {
			t.Fatalf("%s missing after login", name)
		}
	}
	rememberCookies(t, ctx, d)

	// Straight to the provider's logout, as FusionAuth's own logout link does:
	// the app's cookies can only go through the iframe.
	back := d.appURL + "/"
	logout := d.issuer + "/oauth2/logout?" + url.Values{"client_id": {demoEnv["CLIENT_ID"]}, "post_logout_redirect_uri": {back}}.Encode()
	run1(t, ctx, chromedp.Navigate(logout), chromedp.WaitVisible(chromedp.CSS("#hero-login")))
	if u := location(t, ctx); u != back {
		t.Fatalf("the logout page went on to %s, want %s", u, back)
	}
	jar = cookies(t, ctx, d.appURL)
	for _, name := range sessionCookies {
		if jar[name] != nil {
			t.Errorf("%s survived the provider's logout", name)
		}
	}
	run1(t, ctx, chromedp.Navigate(d.appURL+"/account"), chromedp.WaitVisible(chromedp.CSS("#loginId")))
	if u := location(t, ctx); !strings.HasPrefix(u, d.issuer+"/oauth2/authorize") {
		t.Fatalf("/account after the provider's logout: %s, want the login form", u)
	}
}

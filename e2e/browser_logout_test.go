package e2e

import (
	"context"
	"net/url"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/changebank/changebank/internal/apptest"
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
	logout := d.issuer + "/oauth2/logout?" + url.Values{"client_id": {apptest.DemoEnv["CLIENT_ID"]}, "post_logout_redirect_uri": {back}}.Encode()
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

// TestBrowserLogoutSaysSoOnTheLandingPage: the Log out button, through the
// provider's logout page and its hidden frames, lands on a page that says
// both sessions ended; and they did: the next login asks for the password.
func TestBrowserLogoutSaysSoOnTheLandingPage(t *testing.T) {
	ctx := newBrowser(t)
	d := startDemo(t, nil)
	run1(t, ctx, chromedp.Navigate(d.appURL+"/account"))
	logIn(t, ctx, "richard@example.com", "password")
	run1(t, ctx, chromedp.WaitVisible(chromedp.CSS("#logout")))
	rememberCookies(t, ctx, d)

	run1(t, ctx, chromedp.Click(chromedp.CSS("#logout")), chromedp.WaitVisible(chromedp.CSS("#hero-login")))
	if u := location(t, ctx); u != d.appURL+"/" {
		t.Fatalf("logout landed on %s", u)
	}
	msg := landingNotice(t, ctx)
	if !strings.Contains(msg, "You are logged out of ChangeBank and of the identity provider") {
		t.Fatalf("the page after logout says %q", msg)
	}
	run1(t, ctx, chromedp.Click(chromedp.CSS("#hero-login")), chromedp.WaitVisible(chromedp.CSS("#loginId")))
}

// TestBrowserLogoutTheProviderRefusedIsNotClaimed: a second instance whose
// URL the provider does not authorize serves the first one's session (the
// same secret, cookies shared on one host), but the provider refuses its
// logout. The page the user comes back to must not claim the provider's
// session ended, and indeed it did not: the next login goes straight through.
func TestBrowserLogoutTheProviderRefusedIsNotClaimed(t *testing.T) {
	ctx := newBrowser(t)
	d, second := refusedLogout(t, ctx)
	// The user gives up on the provider and goes back to the app.
	run1(t, ctx, chromedp.Navigate(second.appURL+"/"), chromedp.WaitVisible(chromedp.CSS("#hero-login")))
	msg := landingNotice(t, ctx)
	if !strings.Contains(msg, "You are logged out of ChangeBank") || strings.Contains(msg, "of the identity provider") ||
		!strings.Contains(msg, "may not ask for your password") {
		t.Fatalf("after a refused logout the page says %q", msg)
	}
	if n := get(t, ctx, chromedp.Evaluate[int](`document.querySelectorAll("#end-provider-session").length`)); n != 1 {
		t.Fatal("no way offered to end the provider's session")
	}
	// What the page warned of: the provider's session is alive.
	run1(t, ctx, chromedp.Navigate(d.appURL+"/login"), chromedp.WaitVisible(chromedp.CSS("#name")))
}

// landingNotice returns the notice of the page the browser shows.
func landingNotice(t *testing.T, ctx context.Context) string {
	t.Helper()
	if n := get(t, ctx, chromedp.Evaluate[int](`document.querySelectorAll("#notice").length`)); n != 1 {
		t.Fatalf("the page at %s shows no notice", location(t, ctx))
	}
	return text(t, ctx, "#notice")
}

// TestBrowserLogoutAtTheProviderButton: the button the refused logout's
// notice offers does what it says. A second instance's logout, which the
// provider refuses, leaves the notice; on the first instance, whose URL the
// provider authorizes, the button ends the provider's session: the page
// says both ended, and the next login asks for the password.
func TestBrowserLogoutAtTheProviderButton(t *testing.T) {
	ctx := newBrowser(t)
	d, _ := refusedLogout(t, ctx)

	run1(t, ctx, chromedp.Navigate(d.appURL+"/"), chromedp.WaitVisible(chromedp.CSS("#end-provider-session")))
	if msg := landingNotice(t, ctx); strings.Contains(msg, "of the identity provider") {
		t.Fatalf("before the button the page says %q", msg)
	}
	// This page has a Log in button too: wait for the page the logout lands on.
	run1(t, ctx, chromedp.Click(chromedp.CSS("#end-provider-session")), chromedp.WaitNotPresent(chromedp.CSS("#end-provider-session")),
		chromedp.WaitVisible(chromedp.CSS("#hero-login")))
	if u := location(t, ctx); u != d.appURL+"/" {
		t.Fatalf("the button's logout landed on %s", u)
	}
	if msg := landingNotice(t, ctx); !strings.Contains(msg, "You are logged out of ChangeBank and of the identity provider") {
		t.Fatalf("after the button the page says %q", msg)
	}
	run1(t, ctx, chromedp.Click(chromedp.CSS("#hero-login")), chromedp.WaitVisible(chromedp.CSS("#loginId")))
}

// refusedLogout starts the demo and a second instance on a URL the provider
// does not authorize (same secret, so it serves the demo's session), logs
// richard in on the demo, and presses Log out on the second instance: the
// provider refuses that logout (invalid_post_logout_redirect_uri), and the
// browser is left on its error page. The one-time state of that logout is
// added to both instances' secrets, which their logs must not show.
func refusedLogout(t *testing.T, ctx context.Context) (first, second demo) {
	t.Helper()
	first = startDemo(t, nil)
	env := map[string]string{"APP_URL": "http://" + apptest.FreePort(t), "ISSUER": first.issuer}
	for k, v := range apptest.DemoEnv {
		env[k] = v
	}
	second = startRun(t, env)

	run1(t, ctx, chromedp.Navigate(first.appURL+"/account"))
	logIn(t, ctx, "richard@example.com", "password")
	run1(t, ctx, chromedp.WaitVisible(chromedp.CSS("#name")))
	rememberCookies(t, ctx, first)
	second.secrets.remember(first.secrets.values...)

	run1(t, ctx, chromedp.Navigate(second.appURL+"/account"), chromedp.WaitVisible(chromedp.CSS("#logout")),
		chromedp.Click(chromedp.CSS("#logout")), chromedp.WaitVisible(chromedp.CSS("#error")))
	if msg := text(t, ctx, "#error"); !strings.Contains(msg, "invalid_post_logout_redirect_uri") {
		t.Fatalf("the provider's answer to the second instance's logout: %q", msg)
	}
	end, err := url.Parse(location(t, ctx))
	if err != nil || end.Query().Get("state") == "" {
		t.Fatalf("the end-session URL %s carries no state", location(t, ctx))
	}
	first.secrets.remember(end.Query().Get("state"))
	second.secrets.remember(end.Query().Get("state"))
	return first, second
}

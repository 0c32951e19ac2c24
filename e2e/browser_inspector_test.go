package e2e

import (
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/changebank/changebank/internal/apptest"
)

// crossSiteDemo starts the demo as a learner runs it: the app and the
// provider on localhost, the attacker page on 127.0.0.1, another site.
func crossSiteDemo(t *testing.T) (demo, string) {
	t.Helper()
	port := func() string { return strings.TrimPrefix(apptest.FreePort(t), "127.0.0.1:") }
	attacker := apptest.FreePort(t)
	d := startDemo(t, map[string]string{
		"APP_URL":       "http://localhost:" + port(),
		"ISSUER":        "http://localhost:" + port(),
		"ATTACKER_ADDR": attacker,
	})
	return d, "http://" + attacker
}

// TestBrowserAttackerPage opens the attacker page in a logged-in browser,
// runs its attacks, and checks what it reports for each against what a
// browser and the app really do.
func TestBrowserAttackerPage(t *testing.T) {
	ctx := newBrowser(t)
	d, attacker := crossSiteDemo(t)
	run1(t, ctx, chromedp.Navigate(d.appURL+"/account"))
	logIn(t, ctx, "richard@example.com", "password")
	run1(t, ctx, chromedp.WaitVisible(chromedp.CSS("#name")))

	// The inspector lists FusionAuth's SSO cookie (same host) and links the attacker page.
	run1(t, ctx, chromedp.Navigate(d.appURL+"/session"), chromedp.WaitVisible(chromedp.CSS("#countdown")))
	if n := get(t, ctx, chromedp.Evaluate[int](`document.querySelectorAll('[data-name="fusionauth.sso"]').length`)); n != 1 {
		t.Errorf("the inspector lists fusionauth.sso %d times, want once", n)
	}
	if href := get(t, ctx, chromedp.Evaluate[string](`document.querySelector("#attacker-link a").href`)); href != attacker+"/" {
		t.Fatalf("the inspector links the attacker page at %q, want %q", href, attacker+"/")
	}

	// Expire: the next page says what happened, and agrees with "This request refreshed".
	run1(t, ctx, chromedp.Click(chromedp.CSS("#expire")), chromedp.WaitVisible(chromedp.CSS("#notice")))
	if n, r := text(t, ctx, "#notice"), text(t, ctx, "#refreshed"); !strings.Contains(n, "got a new one from the refresh token") || r != "yes" {
		t.Fatalf("after Expire: notice %q, this request refreshed %q", n, r)
	}
	shoot(t, ctx, "session-expired")
	// The refresh set cb_id_token with Path=/logout: the page that shows the
	// line explains it, and the meter does not count attributes it never saw.
	if lines := text(t, ctx, "#set-cookies"); !strings.Contains(lines, "Path=/logout") {
		t.Fatalf("the refresh's Set-Cookie lines show no cb_id_token on /logout: %q", lines)
	}
	if why := text(t, ctx, ".why"); !strings.Contains(why, "cb_id_token") || !strings.Contains(why, "Path=/logout") {
		t.Errorf("\"Why these attributes\" says every cookie has Path=/ beside a Path=/logout line: %q", why)
	}
	if meter := text(t, ctx, "label[for=cookie-meter]"); !strings.Contains(meter, "name and value as sent") {
		t.Errorf("the largest cookie's meter does not say what it measures: %q", meter)
	}
	run1(t, ctx, chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS("#countdown")))
	if n := get(t, ctx, chromedp.Evaluate[int](`document.querySelectorAll("#notice").length`)); n != 0 {
		t.Fatal("a reload repeats the notice")
	}

	run1(t, ctx, chromedp.Click(chromedp.CSS("#attacker-link a")), chromedp.WaitVisible(chromedp.CSS("#run")))
	if u := location(t, ctx); u != attacker+"/" {
		t.Fatalf("the link led to %s", u)
	}
	run1(t, ctx, chromedp.Click(chromedp.CSS("#run")), chromedp.WaitVisible(chromedp.CSS("#done")))
	shoot(t, ctx, "attacker")

	type result struct{ Stopped, StoppedBy, CookiesSent, Text string }
	results := get(t, ctx, chromedp.Evaluate[map[string]result](`Object.fromEntries([...document.querySelectorAll(".verdict")].map(e =>
	  [e.id.replace("result-", ""), {Stopped: e.dataset.stopped || "", StoppedBy: e.dataset.stoppedBy || "", CookiesSent: e.dataset.cookiesSent || "", Text: e.textContent}]))`))
	cases := []struct {
		attempt, stopped, cookiesSent string
		by                            []string
		says                          []string
	}{
		{"form-post", "yes", "0", []string{"SameSite=Lax"}, []string{"none of ChangeBank's cookies", "Origin check"}},
		{"refresh-post", "yes", "0", []string{"SameSite=Lax"}, []string{"none of ChangeBank's cookies"}},
		{"fetch-api", "yes", "0", []string{"SameSite=Lax", "CORS"}, []string{"no Access-Control-Allow-Origin", "refused to hand over the answer"}},
		{"img-logout", "no", "0", nil, []string{"Nothing in the app stops a GET /logout", "the worst an attacker gets is a logout"}},
		{"frame-account", "yes", "0", []string{"frame-ancestors"}, []string{"frame-ancestors 'none'"}},
		{"navigate-account", "yes", "3", []string{"same-origin policy"}, []string{"answered 200", "SecurityError"}},
	}
	for _, tc := range cases {
		t.Run(tc.attempt, func(t *testing.T) {
			r, ok := results[tc.attempt]
			if !ok {
				t.Fatalf("no report (have %v)", results)
			}
			if r.Stopped != tc.stopped || r.CookiesSent != tc.cookiesSent {
				t.Errorf("stopped %q with %q session cookies sent, want %q with %q: %s", r.Stopped, r.CookiesSent, tc.stopped, tc.cookiesSent, r.Text)
			}
			for _, d := range tc.by {
				if !strings.Contains(r.StoppedBy, d) {
					t.Errorf("stopped by %q, want %s among them", r.StoppedBy, d)
				}
			}
			for _, s := range tc.says {
				if !strings.Contains(r.Text, s) {
					t.Errorf("the report lacks %q: %s", s, r.Text)
				}
			}
		})
	}

	// What the image-logout report promised: the session survived the attacks.
	run1(t, ctx, chromedp.Navigate(d.appURL+"/account"), chromedp.WaitVisible(chromedp.CSS("body")))
	if u := location(t, ctx); u != d.appURL+"/account" {
		t.Fatalf("after the attacks /account is at %s: the session did not survive", u)
	}

	// Both pages fit a phone.
	run1(t, ctx, chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(1), chromedp.EmulatePortrait))
	t.Run("inspector at 390 px", func(t *testing.T) {
		run1(t, ctx, chromedp.Navigate(d.appURL+"/session"), chromedp.WaitVisible(chromedp.CSS("#countdown")))
		checkPhone(t, ctx, "Account", "Make change", "Session", "Log out")
	})
	t.Run("attacker page at 390 px", func(t *testing.T) {
		run1(t, ctx, chromedp.Navigate(attacker+"/"), chromedp.WaitVisible(chromedp.CSS("#run")))
		checkPhone(t, ctx)
	})
}

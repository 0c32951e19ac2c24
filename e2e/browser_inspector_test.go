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

	con := watchConsole(ctx) // from the attacker page's first load: its icon is part of it
	run1(t, ctx, chromedp.Click(chromedp.CSS("#attacker-link a")), chromedp.WaitVisible(chromedp.CSS("#run")))
	if u := location(t, ctx); u != attacker+"/" {
		t.Fatalf("the link led to %s", u)
	}
	// Each card fills in as its attempt ends: the first is filled before
	// the last attempt (the frame) has begun.
	run1(t, ctx, chromedp.Evaluate[chromedp.Void](`window.fills = [];
	  new MutationObserver(() => {
	    for (const e of document.querySelectorAll(".verdict[data-stopped]")) {
	      if (!window.fills.some(f => f.id === e.id)) window.fills.push({id: e.id, frame: document.getElementById("frame").getAttribute("src") || ""});
	    }
	  }).observe(document.getElementById("results"), {subtree: true, attributes: true, childList: true, characterData: true});`))
	run1(t, ctx, chromedp.Click(chromedp.CSS("#run")), chromedp.WaitVisible(chromedp.CSS("#done")))
	shoot(t, ctx, "attacker")
	type fill struct{ ID, Frame string }
	fills := get(t, ctx, chromedp.Evaluate[[]fill](`window.fills`))
	if len(fills) != 6 || fills[0].Frame != "" {
		t.Errorf("the cards filled in as %+v: want each filled as its attempt ends, the first before the frame's attempt began", fills)
	}

	type result struct{ Stopped, StoppedBy, CookiesSent, Text, Class string }
	results := get(t, ctx, chromedp.Evaluate[map[string]result](`Object.fromEntries([...document.querySelectorAll(".verdict")].map(e =>
	  [e.id.replace("result-", ""), {Stopped: e.dataset.stopped || "", StoppedBy: e.dataset.stoppedBy || "", CookiesSent: e.dataset.cookiesSent || "", Text: e.textContent, Class: e.className}]))`))

	// The console holds only the refusals the cards name: the provider's
	// login page refusing the hidden frames (frame-ancestors) and the fetch's
	// CORS refusal; nothing from this page's own policy, no missing file.
	framesRefused, corsRefused := 0, false
	for _, m := range con.errors() {
		switch {
		case strings.Contains(m.Text, "violates the following Content Security Policy directive: \"frame-ancestors 'none'\"") && strings.Contains(m.Text, d.issuer):
			framesRefused++
		case strings.Contains(m.Text, "blocked by CORS policy") && strings.Contains(m.Text, d.appURL+"/api/me?probe="),
			strings.Contains(m.Text, "net::ERR_FAILED") && strings.HasPrefix(m.URL, d.appURL+"/api/me?probe="):
			corsRefused = true
		default:
			t.Errorf("a console error no card accounts for: %s (%s)", m.Text, m.URL)
		}
	}
	naming := 0
	for _, r := range results {
		if strings.Contains(r.Text, "frame-ancestors error in the browser's console") {
			naming++
		}
	}
	if framesRefused > naming {
		t.Errorf("%d refused frames in the console, %d cards that say so", framesRefused, naming)
	}
	if corsRefused && !strings.Contains(results["fetch-api"].Text, "CORS error") {
		t.Errorf("the console shows the fetch's CORS error, its card does not say so: %s", results["fetch-api"].Text)
	}

	cases := []struct {
		attempt, stopped, cookiesSent string
		by                            []string
		says                          []string
	}{
		{"form-post", "yes", "0", []string{"SameSite=Lax"}, []string{"none of ChangeBank's cookies", "Origin check", "frame-ancestors error in the browser's console"}},
		{"refresh-post", "yes", "0", []string{"SameSite=Lax"}, []string{"none of ChangeBank's cookies", "frame-ancestors error in the browser's console"}},
		{"fetch-api", "yes", "0", []string{"SameSite=Lax", "CORS"}, []string{"no Access-Control-Allow-Origin", "refused to hand over the answer", "CORS error"}},
		{"img-logout", "yes", "0", []string{"SameSite=Lax"}, []string{"Nothing in the app refuses a GET /logout", "you are still logged in", "the worst an attacker gets is a logout"}},
		{"frame-account", "yes", "0", []string{"SameSite=Lax", "frame-ancestors"}, []string{"frame-ancestors 'none'", "frame-ancestors error in the browser's console"}},
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
			// The colour and the words agree: green is stopped, red says it was not.
			if green, saysNot := strings.Contains(r.Class, "ok"), strings.Contains(r.Text, "Not stopped"); green != (r.Stopped == "yes") || green == saysNot {
				t.Errorf("the card is %q, stopped %q, and says: %s", r.Class, r.Stopped, r.Text)
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
		// Filled in, the cards' reports still fit.
		run1(t, ctx, chromedp.Click(chromedp.CSS("#run")), chromedp.WaitVisible(chromedp.CSS("#done")))
		checkPhone(t, ctx)
	})
}

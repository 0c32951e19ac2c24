package e2e

import (
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/changebank/changebank/internal/apptest"
)

// TestBrowserThroughThreeInstances is the browser journey through a
// round-robin proxy over three app instances: log in, see the account,
// let the access token expire, fire several requests at once (each may
// land on another instance), and still be logged in.
func TestBrowserThroughThreeInstances(t *testing.T) {
	ctx := newBrowser(t)
	c := newCluster(t, "testdata/kickstart-short-tokens.json", 0)
	for range 3 {
		c.start(t, apptest.DemoEnv["APP_SECRET_KEY"])
	}
	run1(t, ctx, chromedp.Navigate(c.proxyURL+"/account"))
	logIn(t, ctx, "richard@example.com", "password")
	run1(t, ctx, chromedp.WaitVisible(chromedp.CSS("#name")))
	if name := text(t, ctx, "#name"); name != "Richard Hendricks" {
		t.Fatalf("account page shows %q", name)
	}

	// Past the 8-second token's expiry, one page fires requests at once.
	before := c.idp.TokenCalls("refresh_token")
	time.Sleep(9 * time.Second)
	statuses := get(t, ctx, chromedp.Evaluate[[]int](`Promise.all([1,2,3,4,5,6,7,8,9].map(() => fetch("/api/me").then(r => r.status)))`, chromedp.EvalAwaitPromise))
	for _, s := range statuses {
		if s != 200 {
			t.Fatalf("parallel requests after expiry, over three instances: %v", statuses)
		}
	}
	if n := c.idp.TokenCalls("refresh_token") - before; n < 1 || n > 3 {
		t.Fatalf("%d token calls for the burst, want 1 to 3 (one per instance at most)", n)
	}
	// Still logged in, wherever the next requests land.
	for range 3 {
		run1(t, ctx, chromedp.Navigate(c.proxyURL+"/account"), chromedp.WaitVisible(chromedp.CSS("#name")))
		if u := location(t, ctx); u != c.proxyURL+"/account" {
			t.Fatalf("after the burst we are at %s", u)
		}
	}
	for _, name := range sessionCookies {
		if cookies(t, ctx, c.proxyURL)[name] == nil {
			t.Errorf("%s is gone after the burst", name)
		}
	}
}

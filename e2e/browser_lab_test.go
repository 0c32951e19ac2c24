package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// TestBrowserTraceAndLab checks, at desktop width and on a 390 px phone,
// that the inspector's verification trace names the key that verified the
// access token and shows every check passing, and that three attacks of
// the lab are each refused by the check a learner is told about, while the
// browser's real cookies stay as they were.
func TestBrowserTraceAndLab(t *testing.T) {
	ctx := newBrowser(t)
	d := startDemo(t, nil)
	run1(t, ctx, chromedp.Navigate(d.appURL+"/session"))
	logIn(t, ctx, "richard@example.com", "password")
	run1(t, ctx, chromedp.WaitVisible(chromedp.CSS("#trace")))

	widths := []struct {
		name          string
		width, height int64
		shot          string
	}{
		{"desktop", 1200, 900, ""},
		{"phone", 390, 844, "phone-"},
	}
	attacks := []struct{ name, check string }{
		{"alg-none", "algorithm"},
		{"flip-byte", "cb_userinfo opens"},
		{"foreign-key", "signature"},
	}
	for _, w := range widths {
		t.Run(w.name, func(t *testing.T) {
			run1(t, ctx, chromedp.EmulateViewport(w.width, w.height, chromedp.EmulateScale(1)))
			run1(t, ctx, chromedp.Navigate(d.appURL+"/session"), chromedp.WaitVisible(chromedp.CSS("#trace")))
			before := cookies(t, ctx, d.appURL)
			kid := headerKid(t, before["cb_access_token"].Value)
			if got := text(t, ctx, "#trace-kid"); got != kid {
				t.Errorf("the trace names key %q; the access token was signed with %q", got, kid)
			}
			results := get(t, ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll("#trace li.step")].map(li => li.dataset.check + "=" + li.dataset.result)`))
			if len(results) < 15 {
				t.Fatalf("the trace lists %d checks: %v", len(results), results)
			}
			for _, r := range results {
				// The refresh cookie is opened only to refresh.
				if !strings.HasSuffix(r, "=pass") && r != "refresh cookie=not checked" {
					t.Errorf("a genuine session's trace shows %s", r)
				}
			}
			fits(t, ctx, w.width)

			for _, a := range attacks {
				run1(t, ctx, chromedp.Navigate(d.appURL+"/session/lab"), chromedp.WaitVisible(chromedp.CSS("#attack-"+a.name)),
					chromedp.Click(chromedp.CSS("#attack-"+a.name)), chromedp.WaitVisible(chromedp.CSS("#verdict")))
				decided := get(t, ctx, chromedp.Evaluate[string](`document.querySelector("#verdict").dataset.decided`))
				if caught := text(t, ctx, "#caught"); decided != a.check || !strings.Contains(caught, "Caught by the "+a.check+" check") {
					t.Errorf("%s: decided by %q, the page says %q; want %q", a.name, decided, caught, a.check)
				}
				// Every check of the tampered copy, unfolded, fits too.
				run1(t, ctx, chromedp.Evaluate[chromedp.Void](`document.querySelector(".trace-details").open = true`))
				fits(t, ctx, w.width)
				if a.name == "alg-none" {
					shoot(t, ctx, w.shot+"lab")
				}
			}
			after := cookies(t, ctx, d.appURL)
			for _, name := range sessionCookies {
				if after[name] == nil || after[name].Value != before[name].Value {
					t.Errorf("the lab changed the real %s", name)
				}
			}
		})
	}
}

// fits fails when the page scrolls sideways; on a phone it checks all that
// checkPhone checks.
func fits(t *testing.T, ctx context.Context, width int64) {
	t.Helper()
	if width == 390 {
		checkPhone(t, ctx, "Account", "Make change", "Session", "Log out")
		return
	}
	if sw := get(t, ctx, chromedp.Evaluate[float64](`document.documentElement.scrollWidth`)); sw > float64(width) {
		t.Errorf("the page is %v px wide on a %d px screen", sw, width)
	}
}

func headerKid(t *testing.T, jwt string) string {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(strings.Split(jwt, ".")[0])
	var h struct {
		Kid string `json:"kid"`
	}
	if err != nil || json.Unmarshal(b, &h) != nil || h.Kid == "" {
		t.Fatalf("no kid in the access token's header: %v", err)
	}
	return h.Kid
}

package e2e

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// Big sessions: users whose access tokens carry many roles (the stand-in,
// like FusionAuth, puts the registration's roles in the access token).

// chunksOf returns the cookies the browser holds for the app that are
// chunks of name (name.1, name.2...).
func chunksOf(t *testing.T, jar map[string]*network.Cookie, name string) []*network.Cookie {
	t.Helper()
	var out []*network.Cookie
	for i := 1; i < 10; i++ {
		if c := jar[name+"."+string(rune('0'+i))]; c != nil {
			out = append(out, c)
		}
	}
	return out
}

// sessionBytes adds up name=value of every cb_ session cookie and chunk the
// browser holds for the app.
func sessionBytes(jar map[string]*network.Cookie) int {
	n := 0
	for name, c := range jar {
		for _, base := range sessionCookies {
			if name == base || strings.HasPrefix(name, base+".") {
				n += len(name) + 1 + len(c.Value)
			}
		}
	}
	return n
}

// forgetProviderSession deletes FusionAuth's SSO cookie, as when it has
// expired: the next login asks for a password, and may be another user's.
func forgetProviderSession(t *testing.T, ctx context.Context, d demo) {
	t.Helper()
	if _, err := chromedp.Call(ctx, network.DeleteCookies, network.DeleteCookiesParams{Name: "fusionauth.sso", URL: d.issuer}); err != nil {
		t.Fatal(err)
	}
}

// TestBrowserTokenOutgrowsOneCookieAtRefresh: with 50 roles of 40
// characters the access token fits one cookie at login, and the refreshed
// one (gty gains refresh_token) does not. The session goes on in two
// cookies: a form sent at that moment is answered, no login, no notice.
func TestBrowserTokenOutgrowsOneCookieAtRefresh(t *testing.T) {
	ctx := newBrowser(t)
	d := startDemo(t, map[string]string{"KICKSTART_FILE": "testdata/kickstart-many-roles.json", "LOG_LEVEL": "info"})
	run1(t, ctx, chromedp.Navigate(d.appURL+"/make-change"))
	logIn(t, ctx, "richard@example.com", "password")
	run1(t, ctx, chromedp.WaitVisible(chromedp.CSS("#amount")))
	rememberCookies(t, ctx, d)
	jar := cookies(t, ctx, d.appURL)
	t.Logf("login access cookie %d bytes", len(jar["cb_access_token"].Value))
	if n := len(chunksOf(t, jar, "cb_access_token")); n != 0 {
		t.Fatalf("the login token already came in %d extra chunks: the kickstart no longer tests growth at refresh", n)
	}
	logins := strings.Count(d.logs.String(), "path=/login ")

	// Past the 8-second token's life, send the form the page still shows.
	time.Sleep(9 * time.Second)
	run1(t, ctx, chromedp.SetValue(chromedp.CSS("#amount"), "1.23"), chromedp.Click(chromedp.CSS("#convert")),
		chromedp.WaitVisible(chromedp.CSS("#change-result")))
	rememberCookies(t, ctx, d)
	if n, p := text(t, ctx, "#nickels"), text(t, ctx, "#pennies"); n != "24" || p != "3" {
		t.Fatalf("the form sent at refresh shows %s nickels and %s pennies", n, p)
	}
	if strings.Count(d.logs.String(), "path=/login ") != logins {
		t.Fatal("the refresh sent the user round the login again")
	}
	if notice := get(t, ctx, chromedp.Evaluate[string](`document.querySelector("#notice")?.textContent ?? ""`)); notice != "" {
		t.Fatalf("the page shows a notice: %q", notice)
	}
	jar = cookies(t, ctx, d.appURL)
	chunks := chunksOf(t, jar, "cb_access_token")
	t.Logf("access cookie now %d bytes + %d chunks", len(jar["cb_access_token"].Value), len(chunks))
	if jar["cb_access_token"] == nil || len(chunks) == 0 {
		t.Fatalf("the refreshed token is not held in chunks (%d)", len(chunks))
	}
	for _, c := range chunks {
		if !c.HTTPOnly || c.SameSite != network.CookieSameSiteLax || c.Path != "/" {
			t.Errorf("%s: HttpOnly %v SameSite %s Path %s", c.Name, c.HTTPOnly, c.SameSite, c.Path)
		}
	}
	// The inspector's "Refresh now" keeps it too.
	run1(t, ctx, chromedp.Navigate(d.appURL+"/session"), chromedp.WaitVisible(chromedp.CSS("#refresh")),
		chromedp.Click(chromedp.CSS("#refresh")), chromedp.WaitVisible(chromedp.CSS("#notice")))
	rememberCookies(t, ctx, d)
	if code := get(t, ctx, chromedp.AttributeValue(chromedp.CSS("#notice"), "data-code")).Value; code != "refreshed" {
		t.Fatalf("Refresh now ends with the notice %q", code)
	}
}

// TestBrowserSixteenKilobyteToken: a user with 390 roles (an access token
// over 16 KB) logs in, uses the pages and the API, is refreshed silently,
// and logs out leaving no chunk behind; when the next login brings a small
// session, the big one's chunks go; a user whose token is past the limit
// gets a page that says why, once.
func TestBrowserSixteenKilobyteToken(t *testing.T) {
	d := startDemo(t, map[string]string{"KICKSTART_FILE": "testdata/kickstart-huge-roles.json", "LOG_LEVEL": "info"})

	t.Run("a 16 KB token end to end", func(t *testing.T) {
		ctx := newBrowser(t)
		run1(t, ctx, chromedp.Navigate(d.appURL+"/account"))
		logIn(t, ctx, "richard@example.com", "password")
		run1(t, ctx, chromedp.WaitVisible(chromedp.CSS("#name")))
		rememberCookies(t, ctx, d)
		jar := cookies(t, ctx, d.appURL)
		if n := len(jar["cb_access_token"].Value); n < 2000 {
			t.Fatalf("the access cookie's head is %d bytes", n)
		}
		token := get(t, ctx, chromedp.Evaluate[int](`fetch("/api/me").then(r => r.status)`, chromedp.EvalAwaitPromise))
		if token != 200 {
			t.Fatalf("/api/me answers %d", token)
		}
		chunks := chunksOf(t, jar, "cb_access_token")
		if len(chunks) < 4 {
			t.Fatalf("a 16 KB token in %d extra chunks", len(chunks))
		}
		if n := sessionBytes(jar); n < 16<<10 {
			t.Fatalf("the session's cookies are %d bytes, want a token over 16 KB", n)
		}

		run1(t, ctx, chromedp.Navigate(d.appURL+"/make-change"), chromedp.WaitVisible(chromedp.CSS("#amount")),
			chromedp.SetValue(chromedp.CSS("#amount"), "1.23"), chromedp.Click(chromedp.CSS("#convert")),
			chromedp.WaitVisible(chromedp.CSS("#change-result")))
		run1(t, ctx, chromedp.Navigate(d.appURL+"/session"), chromedp.WaitVisible(chromedp.CSS("#session-meter")))
		if s := text(t, ctx, `section[data-name="cb_access_token"] .chunks`); !strings.Contains(s, "chunks") {
			t.Fatalf("the inspector does not show the chunks: %q", s)
		}
		if s := text(t, ctx, `section[data-name="cb_access_token.1"]`); !strings.Contains(s, "Chunk 1 of cb_access_token") {
			t.Fatalf("the inspector's first chunk says %q", s)
		}

		// Refreshed silently past the token's 8 seconds.
		logins := strings.Count(d.logs.String(), "path=/login ")
		before := jar["cb_access_token"].Value
		time.Sleep(9 * time.Second)
		run1(t, ctx, chromedp.Navigate(d.appURL+"/make-change"), chromedp.WaitVisible(chromedp.CSS("#amount")))
		rememberCookies(t, ctx, d)
		jar = cookies(t, ctx, d.appURL)
		if jar["cb_access_token"] == nil || jar["cb_access_token"].Value == before || strings.Count(d.logs.String(), "path=/login ") != logins {
			t.Fatal("the 16 KB token was not refreshed silently")
		}

		// The provider's session is gone, and Monica logs in on this
		// browser: her small session replaces the big one, chunks and all.
		forgetProviderSession(t, ctx, d)
		run1(t, ctx, chromedp.Navigate(d.appURL+"/login?return_to=/account"))
		logIn(t, ctx, "monica@example.com", "password")
		run1(t, ctx, chromedp.WaitVisible(chromedp.CSS("#name")))
		rememberCookies(t, ctx, d)
		if name := text(t, ctx, "#name"); name != "Monica Hall" {
			t.Fatalf("the account shows %q", name)
		}
		jar = cookies(t, ctx, d.appURL)
		if left := chunksOf(t, jar, "cb_access_token"); len(left) != 0 {
			t.Fatalf("%d stale chunks of the big token remain after the small session replaced it", len(left))
		}

		// Richard again, then Log out: no chunk survives.
		forgetProviderSession(t, ctx, d)
		run1(t, ctx, chromedp.Navigate(d.appURL+"/login?return_to=/account"))
		logIn(t, ctx, "richard@example.com", "password")
		run1(t, ctx, chromedp.WaitVisible(chromedp.CSS("#logout")))
		rememberCookies(t, ctx, d)
		if len(chunksOf(t, cookies(t, ctx, d.appURL), "cb_access_token")) == 0 {
			t.Fatal("no chunks after logging in again")
		}
		run1(t, ctx, chromedp.Click(chromedp.CSS("#logout")), chromedp.WaitVisible(chromedp.CSS("#hero-login")))
		for name := range cookies(t, ctx, d.appURL) {
			if strings.HasPrefix(name, "cb_access_token") || strings.HasPrefix(name, "cb_userinfo") || strings.HasPrefix(name, "cb_refresh_token") {
				t.Errorf("%s survived logout", name)
			}
		}
	})

	t.Run("past the limit, a page that says why", func(t *testing.T) {
		ctx := newBrowser(t)
		run1(t, ctx, chromedp.Navigate(d.appURL+"/account"))
		logIn(t, ctx, "gilfoyle@example.com", "password")
		run1(t, ctx, chromedp.WaitVisible(chromedp.CSS("#problem")))
		msg := text(t, ctx, "#problem")
		for _, want := range []string{"access token is too large to keep in cookies", "24,576 bytes it allows", "trimming the token's claims"} {
			if !strings.Contains(msg, want) {
				t.Errorf("the page does not say %q: %q", want, msg)
			}
		}
		if strings.Contains(msg, "did not pass our checks") {
			t.Errorf("the page blames a check: %q", msg)
		}
		if strings.Contains(msg, "a browser can carry") {
			t.Errorf("the page blames the browser for the app's own limit: %q", msg)
		}
		// It stays: no link or redirect takes the user round the login again.
		time.Sleep(time.Second)
		if u := location(t, ctx); !strings.HasPrefix(u, d.appURL+"/callback") {
			t.Fatalf("the page moved on to %s", u)
		}
		if n := get(t, ctx, chromedp.Evaluate[int](`document.querySelectorAll("#retry").length`)); n != 0 {
			t.Error("the page offers to try again, which brings the same token")
		}
		if jar := cookies(t, ctx, d.appURL); jar["cb_access_token"] != nil || jar["cb_userinfo"] != nil {
			t.Error("session cookies were set for a session too large to keep")
		}
		logs := d.logs.String()
		if !regexp.MustCompile(`path=/callback [^\n]*status=400`).MatchString(logs) {
			t.Error("the callback did not answer 400")
		}
		if !regexp.MustCompile(`tokens too large[^\n]*[0-9]+ bytes`).MatchString(logs) {
			t.Error("the log does not name the sizes")
		}
	})
}

// TestBrowserLongDeepLink: a deep link of 900 & (1 KB, which JSON would
// escape to 6 KB) still brings the user back to it after login.
func TestBrowserLongDeepLink(t *testing.T) {
	ctx := newBrowser(t)
	d := startDemo(t, nil)
	link := d.appURL + "/make-change?x=1" + strings.Repeat("&", 900)
	run1(t, ctx, chromedp.Navigate(link))
	logIn(t, ctx, "richard@example.com", "password")
	run1(t, ctx, chromedp.WaitVisible(chromedp.CSS("#amount")))
	if u := location(t, ctx); u != link {
		t.Fatalf("landed on %.80s... (%d bytes), want the %d-byte link", u, len(u), len(link))
	}
}

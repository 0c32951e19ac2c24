package e2e

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/changebank/changebank/internal/app"
	"github.com/changebank/changebank/internal/apptest"
)

// The whole journey in a real headless Chromium, against app.Run with the
// embedded provider on free loopback ports.

var screenshots = flag.String("screenshots", "", "write README screenshots of the main pages to this directory, relative to the repository root (e.g. docs/screenshots)")

const (
	noChromium = "Chromium not found: install it (Debian: apt-get install chromium) to run the browser tests"
	noMermaid  = mermaidJS + " not found: run `npm ci` at the repository's root (needs Node and npm) to render the diagrams of README.md and docs/"
)

// TestMain says what the browser and diagram tests are missing, once, before
// they skip (under CI=true they fail instead).
func TestMain(m *testing.M) {
	flag.Parse()
	if os.Getenv("CI") != "true" {
		if findChromium() == "" {
			tell("changebank: skipping the browser tests: " + noChromium)
		}
		if _, err := os.Stat(mermaidJS); err != nil {
			tell("changebank: skipping the diagram tests: " + noMermaid)
		}
	}
	os.Exit(m.Run())
}

// tell prints a line for the person running the tests. `go test ./...`
// prints nothing of a package that passes, not even why a test skipped, so
// the line goes to the terminal itself when there is one; without one (an
// editor, a pipe in CI) it goes to stderr, which `go test -v` and a failing
// run show.
func tell(line string) {
	if tty, err := os.OpenFile("/dev/tty", os.O_WRONLY, 0); err == nil {
		defer tty.Close()
		if _, err := fmt.Fprintln(tty, line); err == nil {
			return
		}
	}
	fmt.Fprintln(os.Stderr, line)
}

func findChromium() string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// chromiumPath finds Chromium. Under CI (CI=true) a missing browser fails
// the test; elsewhere the test is skipped with the way to install it.
func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := findChromium(); p != "" {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("Chromium is not installed, and CI=true: .ci/run installs it with apt (chromium)")
	}
	t.Skip(noChromium)
	return ""
}

// browserKey holds, in the context newBrowser returns, the tab's context
// without the test's deadline.
type browserKey struct{}

// newBrowser starts a headless Chromium with a fresh profile. Its context
// ends after 90 seconds; a test that fails saves a screenshot of the page it
// failed on (see saveScreenshot).
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1200, 900),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	tab, cancelTab := chromedp.NewContext(allocCtx)
	ctx, cancelTimeout := context.WithTimeout(context.WithValue(tab, browserKey{}, tab), 90*time.Second)
	t.Cleanup(func() {
		if t.Failed() {
			saveScreenshot(t, ctx)
		}
		cancelTimeout()
		cancelTab()
		cancelAlloc()
	})
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting Chromium: %v", err)
	}
	return ctx
}

// saveScreenshot keeps what the page showed when a test failed, under
// $TMPDIR/changebank-test-logs/<test>/failure.png.
func saveScreenshot(t *testing.T, ctx context.Context) {
	png, why := failureShot(ctx)
	if png == nil {
		t.Logf("no screenshot: %s", why)
		return
	}
	dir := filepath.Join(os.TempDir(), "changebank-test-logs", strings.ReplaceAll(t.Name(), "/", "_"))
	if err := os.MkdirAll(dir, 0o755); err == nil && os.WriteFile(filepath.Join(dir, "failure.png"), png, 0o644) == nil {
		t.Logf("screenshot of the page at failure (%s): %s", why, filepath.Join(dir, "failure.png"))
	}
}

// failureShot returns a screenshot of the page ctx's tab shows and its
// address, or nil and why there is none. It works on the tab's own context:
// the test's may have run out of time, which is how most browser tests fail.
// A tab that never left about:blank has nothing to show (the test failed
// before it opened a page), and a blank picture would only mislead.
func failureShot(ctx context.Context) ([]byte, string) {
	tab, ok := ctx.Value(browserKey{}).(context.Context)
	if !ok {
		tab = ctx
	}
	shotCtx, cancel := context.WithTimeout(tab, 10*time.Second)
	defer cancel()
	url, err := chromedp.Run(shotCtx, chromedp.Location())
	switch {
	case err != nil:
		return nil, err.Error()
	case url == "" || url == "about:blank":
		return nil, "the test failed before the browser opened a page"
	}
	png, err := chromedp.Run(shotCtx, chromedp.FullScreenshot(100))
	if err != nil {
		return nil, err.Error()
	}
	return png, url
}

// console collects what pages in one tab write to the browser's console.
type console struct {
	mu   sync.Mutex
	msgs []chromedp.ConsoleMessage
}

// watchConsole starts collecting the console messages of ctx's tab.
func watchConsole(ctx context.Context) *console {
	c := &console{}
	msgs := chromedp.Console(ctx)
	go func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			c.mu.Lock()
			c.msgs = append(c.msgs, m)
			c.mu.Unlock()
		}
	}()
	return c
}

// errors returns the errors and exceptions collected since the last call,
// and forgets them. It waits a moment first: the browser reports a refused
// frame or a failed load a little after the page has moved on.
func (c *console) errors() []chromedp.ConsoleMessage {
	time.Sleep(300 * time.Millisecond)
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []chromedp.ConsoleMessage
	for _, m := range c.msgs {
		if m.Type == chromedp.ConsoleError || m.IsException() {
			out = append(out, m)
		}
	}
	c.msgs = nil
	return out
}

// noConsoleErrors fails the test for each error the tab's pages wrote
// since the last check.
func noConsoleErrors(t *testing.T, c *console, during string) {
	t.Helper()
	for _, m := range c.errors() {
		t.Errorf("console error during %s: %s (%s)", during, m.Text, m.URL)
	}
}

func run1(t *testing.T, ctx context.Context, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatal(err)
	}
}

// get runs one action that returns a value.
func get[T any](t *testing.T, ctx context.Context, a chromedp.Action[T]) T {
	t.Helper()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	return get(t, ctx, chromedp.Text(chromedp.CSS(sel)))
}

func location(t *testing.T, ctx context.Context) string {
	t.Helper()
	return get(t, ctx, chromedp.Location())
}

// logIn fills the provider's form, which the browser must be showing.
func logIn(t *testing.T, ctx context.Context, email, password string) {
	t.Helper()
	run1(t, ctx,
		chromedp.WaitVisible(chromedp.CSS("#loginId")),
		chromedp.SetValue(chromedp.CSS("#loginId"), email),
		chromedp.SetValue(chromedp.CSS("#password"), password),
		chromedp.Click(chromedp.CSS("#submit")),
	)
}

func cookies(t *testing.T, ctx context.Context, url string) map[string]*network.Cookie {
	t.Helper()
	res, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{url}})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*network.Cookie{}
	for _, c := range res.Cookies {
		out[c.Name] = c
	}
	return out
}

// rememberCookies records the values of every cookie the browser holds for
// the app and the provider, which the demo's logs must never show.
func rememberCookies(t *testing.T, ctx context.Context, d demo) {
	t.Helper()
	for _, u := range []string{d.appURL, d.issuer} {
		for _, c := range cookies(t, ctx, u) {
			d.secrets.remember(c.Value)
		}
	}
}

var sessionCookies = []string{"cb_access_token", "cb_refresh_token", "cb_userinfo"}

func TestBrowserJourney(t *testing.T) {
	ctx := newBrowser(t)
	d := startDemo(t, nil)

	con := watchConsole(ctx)

	// 1. Home, Log in, a wrong password, the right one, the account.
	run1(t, ctx, chromedp.Navigate(d.appURL+"/"), chromedp.Click(chromedp.CSS("#hero-login")), chromedp.WaitVisible(chromedp.CSS("#loginId")))
	shoot(t, ctx, "login")
	if u := location(t, ctx); !strings.HasPrefix(u, d.issuer+"/oauth2/authorize") {
		t.Fatalf("Log in led to %s", u)
	}
	logIn(t, ctx, "richard@example.com", "wrong-password")
	run1(t, ctx, chromedp.WaitVisible(chromedp.CSS("#error")))
	if msg := text(t, ctx, "#error"); !strings.Contains(msg, "Invalid login credentials") {
		t.Fatalf("wrong password shows %q", msg)
	}
	// The email is kept, so the cursor waits in Password.
	if focus, email := get(t, ctx, chromedp.Evaluate[string](`document.activeElement.id`)), get(t, ctx, chromedp.Evaluate[string](`document.getElementById("loginId").value`)); focus != "password" || email != "richard@example.com" {
		t.Errorf("after a wrong password the focus is on %q with Email %q, want Password with the email kept", focus, email)
	}
	// The provider's login page loads without a console error (a missing icon was one).
	noConsoleErrors(t, con, "the provider's login page")
	logIn(t, ctx, "richard@example.com", "password")
	run1(t, ctx, chromedp.WaitVisible(chromedp.CSS("#name")))
	if name, email := text(t, ctx, "#name"), text(t, ctx, "#email"); name != "Richard Hendricks" || email != "richard@example.com" {
		t.Fatalf("account shows %q %q", name, email)
	}
	rememberCookies(t, ctx, d)
	shoot(t, ctx, "account")

	// 2. The session cookies: HttpOnly, SameSite=Lax, Path=/, unseen by scripts.
	jar := cookies(t, ctx, d.appURL)
	for _, name := range sessionCookies {
		c := jar[name]
		if c == nil {
			t.Fatalf("%s missing", name)
		}
		if !c.HTTPOnly || c.SameSite != network.CookieSameSiteLax || c.Path != "/" {
			t.Errorf("%s: HttpOnly %v SameSite %s Path %s", name, c.HTTPOnly, c.SameSite, c.Path)
		}
	}
	visible := get(t, ctx, chromedp.Evaluate[string](`document.cookie`))
	for _, name := range sessionCookies {
		if strings.Contains(visible, name) {
			t.Errorf("document.cookie shows %s: %q", name, visible)
		}
	}

	// 3. Make change.
	run1(t, ctx, chromedp.Click(chromedp.CSS("#to-make-change")), chromedp.WaitVisible(chromedp.CSS("#amount")),
		chromedp.SetValue(chromedp.CSS("#amount"), "1.23"), chromedp.Click(chromedp.CSS("#convert")),
		chromedp.WaitVisible(chromedp.CSS("#change-result")))
	if n, p := text(t, ctx, "#nickels"), text(t, ctx, "#pennies"); n != "24" || p != "3" {
		t.Fatalf("1.23 gives %s nickels and %s pennies", n, p)
	}
	shoot(t, ctx, "make-change")
	run1(t, ctx, chromedp.SetValue(chromedp.CSS("#amount"), "12.345"), chromedp.Click(chromedp.CSS("#convert")),
		chromedp.WaitVisible(chromedp.CSS("#change-error")))
	if msg := text(t, ctx, "#change-error"); !strings.Contains(msg, "two decimal places") {
		t.Fatalf("a bad amount shows %q", msg)
	}
	con.errors() // the refused amount's 422, which the browser logs as a failed load

	// The session inspector, for the README.
	run1(t, ctx, chromedp.Navigate(d.appURL+"/session"), chromedp.WaitVisible(chromedp.CSS("#countdown")))
	shoot(t, ctx, "session")

	// 7. Log out: cookies gone, /account leads to login, Back shows nothing private.
	run1(t, ctx, chromedp.Navigate(d.appURL+"/account"), chromedp.WaitVisible(chromedp.CSS("#logout")),
		chromedp.Click(chromedp.CSS("#logout")), chromedp.WaitVisible(chromedp.CSS("#hero-login")))
	shoot(t, ctx, "home")
	jar = cookies(t, ctx, d.appURL)
	for _, name := range sessionCookies {
		if jar[name] != nil {
			t.Errorf("%s survived logout", name)
		}
	}
	// The provider's logout page frames the app's GET /logout: the app lets
	// the provider show it, so no refused frame reaches the console.
	noConsoleErrors(t, con, "the session pages and the logout")
	// The provider's logout page replaced itself with home, so Back goes to
	// the account page: not from a cache (no-store), but asked again, which
	// without a session leads to the provider's login form.
	run1(t, ctx, chromedp.NavigateBack(), chromedp.WaitVisible(chromedp.CSS("#loginId")))
	if u := location(t, ctx); !strings.HasPrefix(u, d.issuer+"/oauth2/authorize") {
		t.Fatalf("Back after logout landed on %s, want the provider's login form", u)
	}
	body := get(t, ctx, chromedp.OuterHTML(chromedp.CSS("html")))
	// The stand-in's login page lists the demo users' emails as a hint, so
	// look for what only the account page shows: the name and the profile.
	if strings.Contains(body, "Richard Hendricks") || strings.Contains(body, `id="email"`) {
		t.Fatalf("Back after logout shows private data at %s", location(t, ctx))
	}
	run1(t, ctx, chromedp.Navigate(d.appURL+"/account"), chromedp.WaitVisible(chromedp.CSS("#loginId")))
	if !strings.HasPrefix(location(t, ctx), d.issuer+"/oauth2/authorize") {
		t.Fatalf("/account after logout: %s", location(t, ctx))
	}
}

func TestBrowserDeepLink(t *testing.T) {
	ctx := newBrowser(t)
	d := startDemo(t, nil)
	run1(t, ctx, chromedp.Navigate(d.appURL+"/make-change"))
	logIn(t, ctx, "richard@example.com", "password")
	run1(t, ctx, chromedp.WaitVisible(chromedp.CSS("#amount")))
	if u := location(t, ctx); u != d.appURL+"/make-change" {
		t.Fatalf("landed on %s", u)
	}
}

func TestBrowserTwoTabsLogInAtOnce(t *testing.T) {
	ctx := newBrowser(t)
	d := startDemo(t, nil)
	tab2, cancel := chromedp.NewContext(ctx)
	defer cancel()
	run1(t, ctx, chromedp.Navigate(d.appURL+"/make-change"), chromedp.WaitVisible(chromedp.CSS("#loginId")))
	run1(t, tab2, chromedp.Navigate(d.appURL+"/session"), chromedp.WaitVisible(chromedp.CSS("#loginId")))
	// Both login pages are open; the second tab finishes first.
	logIn(t, tab2, "richard@example.com", "password")
	run1(t, tab2, chromedp.WaitVisible(chromedp.CSS("#countdown")))
	logIn(t, ctx, "richard@example.com", "password")
	run1(t, ctx, chromedp.WaitVisible(chromedp.CSS("#amount")))
	if a, b := location(t, ctx), location(t, tab2); a != d.appURL+"/make-change" || b != d.appURL+"/session" {
		t.Fatalf("tabs landed on %s and %s", a, b)
	}
}

func TestBrowserSilentRefresh(t *testing.T) {
	ctx := newBrowser(t)
	d := startDemo(t, map[string]string{"KICKSTART_FILE": "testdata/kickstart-short-tokens.json", "LOG_LEVEL": "info"})
	run1(t, ctx, chromedp.Navigate(d.appURL+"/account"))
	logIn(t, ctx, "richard@example.com", "password")
	run1(t, ctx, chromedp.WaitVisible(chromedp.CSS("#name")))
	rememberCookies(t, ctx, d)
	before := cookies(t, ctx, d.appURL)["cb_access_token"].Value
	logins := strings.Count(d.logs.String(), "path=/login ")

	// 4. Wait past the 8-second token's expiry (the browser drops its
	// cookie), then navigate. The sleeps are real: run takes no clock, and
	// Chromium expires cookies by its own.
	time.Sleep(9 * time.Second)
	run1(t, ctx, chromedp.Navigate(d.appURL+"/make-change"), chromedp.WaitVisible(chromedp.CSS("#amount")))
	rememberCookies(t, ctx, d)
	if u := location(t, ctx); u != d.appURL+"/make-change" {
		t.Fatalf("after expiry we are at %s", u)
	}
	if after := cookies(t, ctx, d.appURL)["cb_access_token"].Value; after == before {
		t.Fatal("the access token was not refreshed")
	}
	if strings.Count(d.logs.String(), "path=/login ") != logins {
		t.Fatal("the login page was visited again")
	}

	// 5. Once the new token is within the app's 5-second refresh margin
	// (after 3 s of its 8), one page fires several requests at once (the
	// kickstart's OneTimeUse refresh tokens): all succeed, one refresh.
	refreshes := strings.Count(d.logs.String(), `msg="tokens refreshed"`)
	time.Sleep(3500 * time.Millisecond)
	statuses := get(t, ctx, chromedp.Evaluate[[]int](`Promise.all([1,2,3,4,5,6].map(() => fetch("/api/me").then(r => r.status)))`, chromedp.EvalAwaitPromise))
	if len(statuses) != 6 {
		t.Fatalf("statuses: %v", statuses)
	}
	for _, s := range statuses {
		if s != 200 {
			t.Fatalf("parallel requests after expiry: %v", statuses)
		}
	}
	if n := strings.Count(d.logs.String(), `msg="tokens refreshed"`) - refreshes; n != 1 {
		t.Fatalf("6 parallel requests caused %d refreshes, want 1", n)
	}
	rememberCookies(t, ctx, d)
}

// shoot saves a README screenshot of the whole page when -screenshots is
// given.
func shoot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	saveShot(t, ctx, name, chromedp.FullScreenshot(100))
}

// shootScreen saves what the screen shows, for a phone's tall pages.
func shootScreen(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	saveShot(t, ctx, name, chromedp.CaptureScreenshot())
}

func saveShot(t *testing.T, ctx context.Context, name string, capture chromedp.Action[[]byte]) {
	t.Helper()
	if *screenshots == "" {
		return
	}
	run1(t, ctx, chromedp.Sleep(200*time.Millisecond))
	png := get(t, ctx, capture)
	dir := *screenshots
	if !filepath.IsAbs(dir) {
		dir = repo(dir)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// phoneLayout is what a 390 px wide screen shows of a page.
type phoneLayout struct {
	ScrollWidth, InnerWidth float64
	Nav                     []struct {
		Text        string
		Left, Right float64
	}
	Wide    []string // elements reaching past the right edge, for the failure message
	Clipped []string // pre blocks whose text is cut off sideways
	Narrow  []string // definitions squeezed into a column narrower than 60% of main
}

const phoneProbe = `(() => {
  const vw = window.innerWidth, main = document.querySelector("main");
  const name = el => el.tagName.toLowerCase() + (el.id ? "#" + el.id : "") + (typeof el.className === "string" && el.className ? "." + el.className.trim().split(/\s+/).join(".") : "");
  const out = {ScrollWidth: document.documentElement.scrollWidth, InnerWidth: vw, Nav: [], Wide: [], Clipped: [], Narrow: []};
  for (const el of document.querySelectorAll("header nav a, header nav button")) {
    const r = el.getBoundingClientRect();
    out.Nav.push({Text: el.textContent.trim(), Left: r.left, Right: r.right});
  }
  for (const el of document.body.querySelectorAll("*")) {
    const r = el.getBoundingClientRect();
    if (r.width > 0 && r.right > vw + 0.5) out.Wide.push(name(el) + " right=" + Math.round(r.right));
  }
  // Text that runs out of its box (one long word) widens the page too.
  const walk = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const range = document.createRange();
  for (let n = walk.nextNode(); n; n = walk.nextNode()) {
    range.selectNodeContents(n);
    const r = range.getBoundingClientRect();
    if (r.width > 0 && r.right > vw + 0.5) out.Wide.push("text in " + name(n.parentElement) + " right=" + Math.round(r.right));
  }
  for (const el of document.querySelectorAll("pre")) {
    if (el.scrollWidth > el.clientWidth + 1) out.Clipped.push(name(el) + " " + el.scrollWidth + ">" + el.clientWidth);
  }
  for (const el of document.querySelectorAll("main dd")) {
    if (main && el.getBoundingClientRect().width < 0.6 * main.getBoundingClientRect().width) out.Narrow.push(el.textContent.trim().slice(0, 30));
  }
  return out;
})()`

// checkPhone asserts that the page fits a 390 px screen: no sideways scroll,
// every header link on screen (want lists the ones that must be there),
// token blocks wrapped rather than cut, explanations given the full width.
func checkPhone(t *testing.T, ctx context.Context, want ...string) {
	t.Helper()
	p := get(t, ctx, chromedp.Evaluate[phoneLayout](phoneProbe))
	if p.InnerWidth != 390 {
		t.Fatalf("the window is %v px wide, want 390", p.InnerWidth)
	}
	if p.ScrollWidth > p.InnerWidth {
		wide := p.Wide
		if len(wide) > 8 {
			wide = wide[:8]
		}
		t.Errorf("the page scrolls sideways: %v px of content on a %v px screen; too wide: %v", p.ScrollWidth, p.InnerWidth, wide)
	}
	seen := map[string]bool{}
	for _, n := range p.Nav {
		seen[n.Text] = true
		if n.Left < 0 || n.Right > p.InnerWidth {
			t.Errorf("header link %q is off screen: %v..%v px of %v", n.Text, n.Left, n.Right, p.InnerWidth)
		}
	}
	for _, w := range want {
		if !seen[w] {
			t.Errorf("the header has no %q link (has %v)", w, p.Nav)
		}
	}
	if len(p.Clipped) > 0 {
		t.Errorf("text cut off sideways in %v", p.Clipped)
	}
	if len(p.Narrow) > 0 {
		t.Errorf("explanations squeezed into a narrow column: %q", p.Narrow)
	}
}

// sampleComponents adds a stacked table, a scrolling table and a card list
// with long unbroken values to the page.
const sampleComponents = `(() => {
  const long = "eyJhbGciOiJSUzI1NiIsImtpZCI6IjEyMzQ1Njc4OTAifQ".repeat(3);
  const row = "<tr><td data-label='Check'>signature</td><td data-label='Value'>" + long + "</td><td data-label='Result'>passed</td></tr>";
  const table = cls => "<table class='" + cls + "'><thead><tr><th>Check</th><th>Value</th><th>Result</th></tr></thead><tbody>" + row + row + "</tbody></table>";
  const card = "<li class='card'><h3>alg: none</h3><p>" + long + "</p><form><button type='button'>Try it</button></form><p class='verdict ok'>Refused: " + long + "</p></li>";
  document.querySelector("main").insertAdjacentHTML("beforeend",
    "<section class='panel' id='sample'>" + table("data stack") + "<div class='table-scroll'>" + table("data") + "</div><ul class='card-list'>" + card + card + card + "</ul></section>");
})()`

// TestBrowserPhone opens every page on a 390x844 screen (an iPhone 14's CSS
// pixels, device scale 1) and checks that it fits.
func TestBrowserPhone(t *testing.T) {
	ctx := newBrowser(t)
	d := startDemo(t, nil)
	run1(t, ctx, chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(1), chromedp.EmulatePortrait))
	loggedIn := []string{"Account", "Make change", "Session", "Log out"}
	steps := []struct {
		name string
		open chromedp.Action[chromedp.Void]
		nav  []string
		shot bool // for the README
	}{
		{"home", chromedp.Steps(chromedp.Navigate(d.appURL+"/"), chromedp.WaitVisible(chromedp.CSS("#hero-login"))), []string{"Log in"}, false},
		{"login", chromedp.Steps(chromedp.Click(chromedp.CSS("#hero-login")), chromedp.WaitVisible(chromedp.CSS("#loginId"))), nil, false},
		{"account", chromedp.Steps(
			chromedp.SetValue(chromedp.CSS("#loginId"), "richard@example.com"), chromedp.SetValue(chromedp.CSS("#password"), "password"),
			chromedp.Click(chromedp.CSS("#submit")), chromedp.WaitVisible(chromedp.CSS("#name")),
		), loggedIn, true},
		{"make-change", chromedp.Steps(
			chromedp.Navigate(d.appURL+"/make-change"), chromedp.WaitVisible(chromedp.CSS("#amount")),
			chromedp.SetValue(chromedp.CSS("#amount"), "1234.56"), chromedp.Click(chromedp.CSS("#convert")), chromedp.WaitVisible(chromedp.CSS("#change-result")),
		), loggedIn, true},
		{"session", chromedp.Steps(chromedp.Navigate(d.appURL+"/session"), chromedp.WaitVisible(chromedp.CSS("#countdown"))), loggedIn, true},
		{"not-found", chromedp.Steps(chromedp.Navigate(d.appURL+"/no-such-page"), chromedp.WaitVisible(chromedp.CSS("#problem"))), nil, false},
		// The classes the inspector's tables and card lists are to use, filled
		// with long unbroken values, on the session page.
		{"table-and-cards", chromedp.Steps(
			chromedp.Navigate(d.appURL+"/session"), chromedp.WaitVisible(chromedp.CSS("#countdown")),
			chromedp.Evaluate[chromedp.Void](sampleComponents),
		), loggedIn, false},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			run1(t, ctx, s.open)
			checkPhone(t, ctx, s.nav...)
			if s.shot {
				shootScreen(t, ctx, "phone-"+s.name)
			}
		})
	}
}

// TestBrowserProviderDownPageShowsTheCommands: with no provider to reach,
// Log in answers a page that says how to start one, the commands shown as
// code a reader can copy, not between backticks.
func TestBrowserProviderDownPageShowsTheCommands(t *testing.T) {
	ctx := newBrowser(t)
	appAddr := apptest.FreePort(t)
	env := map[string]string{"APP_URL": "http://" + appAddr, "ISSUER": "http://" + apptest.FreePort(t)}
	for k, v := range apptest.DemoEnv {
		env[k] = v
	}
	// Stopped as Ctrl-C stops it, without the drain period.
	runCtx, cancel := context.WithCancelCause(context.Background())
	done := make(chan error, 1)
	go func() { done <- app.Run(runCtx, nil, apptest.Getenv(env), io.Discard, io.Discard) }()
	t.Cleanup(func() {
		cancel(app.ErrInterrupted)
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	apptest.WaitServing(t, appAddr)
	run1(t, ctx, chromedp.Navigate(env["APP_URL"]+"/login"), chromedp.WaitVisible(chromedp.CSS("#problem")))
	problem := text(t, ctx, "#problem")
	if strings.Contains(problem, "`") {
		t.Errorf("the page shows backticks: %q", problem)
	}
	code := get(t, ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll("#problem code")].map(c => c.textContent)`))
	if !slices.Equal(code, []string{"go run . -embedded-idp", "docker compose up"}) {
		t.Errorf("the commands shown as code: %q, want the stand-in's and compose's; the page says %q", code, problem)
	}
}

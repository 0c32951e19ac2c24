package routes

import (
	"fmt"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/changebank/changebank/routes/inspect"
	"github.com/changebank/changebank/tokens/cookie"
)

// notice returns the page's notice code and text, or "" when it has none.
func notice(body string) (code, text string) {
	m := regexp.MustCompile(`id="notice" data-code="([^"]*)" role="status">([^<]*)<`).FindStringSubmatch(body)
	if m == nil {
		return "", ""
	}
	return m[1], html.UnescapeString(m[2])
}

// refreshedFact is the inspector's "This request refreshed" answer.
func refreshedFact(t *testing.T, body string) string {
	t.Helper()
	m := regexp.MustCompile(`id="refreshed">(yes|no)<`).FindStringSubmatch(body)
	if m == nil {
		t.Fatal("the inspector has no \"This request refreshed\" fact")
	}
	return m[1]
}

// panel returns the text of the inspector's panel for a sent cookie.
func panel(t *testing.T, body, name string) string {
	t.Helper()
	i := strings.Index(body, `data-name="`+name+`"`)
	if i < 0 {
		t.Fatalf("no panel for %s", name)
	}
	rest := body[i:]
	return html.UnescapeString(rest[:strings.Index(rest, "</section>")])
}

func TestInspectorNoticesComeOnceAndAgreeWithTheRequest(t *testing.T) {
	cases := []struct {
		button        string
		code          string
		thisRefreshed string // what "This request refreshed" must say on the page after
		says          string
	}{
		{"/session/expire", "access-dropped", "yes", "got a new one from the refresh token"},
		{"/session/refresh", "refreshed", "no", "did not need to refresh"},
	}
	for _, tc := range cases {
		t.Run(tc.button, func(t *testing.T) {
			s := newStack(t, stackOptions{})
			b := s.browser()
			b.login("")
			p := b.get("/session")
			if code, _ := notice(p.body); code != "" {
				t.Fatalf("a notice before any button: %q", code)
			}
			post := b.post(tc.button, url.Values{"csrf_token": {csrf(t, p.body)}})
			if post.status != http.StatusSeeOther || post.location() != "/session" {
				t.Fatalf("%s: %d %q (the notice must not ride in the URL)", tc.button, post.status, post.location())
			}
			p = b.get(post.location())
			code, text := notice(p.body)
			if code != tc.code || !strings.Contains(text, tc.says) {
				t.Fatalf("after %s the notice is %q %q", tc.button, code, text)
			}
			if got := refreshedFact(t, p.body); got != tc.thisRefreshed {
				t.Fatalf("after %s, \"This request refreshed\" says %s, want %s (notice: %s)", tc.button, got, tc.thisRefreshed, text)
			}
			// A reload is a new request: nothing happened before it.
			p = b.get("/session")
			if code, text := notice(p.body); code != "" {
				t.Fatalf("the reload repeats the notice %q", text)
			}
			if got := refreshedFact(t, p.body); got != "no" {
				t.Fatalf("the reload says it refreshed: %s", got)
			}
		})
	}

	t.Run("a forged notice cookie or a query shows nothing", func(t *testing.T) {
		s := newStack(t, stackOptions{})
		b := s.browser()
		b.login("")
		b.setJarCookie(cookie.Notice, "You have won a prize")
		for _, path := range []string{"/session?did=refresh", "/session"} {
			p := b.get(path)
			if p.status != http.StatusOK || strings.Contains(p.body, `id="notice"`) || strings.Contains(p.body, "prize") {
				t.Fatalf("%s: %d, notice shown", path, p.status)
			}
		}
	})
}

func TestInspectorShowsWhatTheBrowserSentAndThisResponseSets(t *testing.T) {
	s := newStack(t, stackOptions{})
	b := s.browser()
	b.login("")
	p := b.get("/session")
	b.forgetSets()
	b.post("/session/expire", url.Values{"csrf_token": {csrf(t, p.body)}})
	userinfo := b.cookie(cookie.UserInfo)

	req, _ := http.NewRequest(http.MethodGet, s.appURL+"/session", nil)
	resp, err := b.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	sets := resp.Header.Values("Set-Cookie")
	if len(sets) < 3 {
		t.Fatalf("loading the inspector without an access cookie set %d cookies, want the refreshed ones", len(sets))
	}
	// Same again, to read the page: the jar now holds the new cookies, so
	// drop the access cookie once more.
	b.post("/session/expire", url.Values{"csrf_token": {csrf(t, p.body)}})
	page := b.get("/session")
	sets = page.header.Values("Set-Cookie")

	// The panels show what was sent: no access cookie, and the real exp in cb_userinfo.
	if a := panel(t, page.body, cookie.Access); !strings.Contains(a, "not sent") {
		t.Errorf("the access panel does not say it was not sent: %s", a)
	}
	ui := panel(t, page.body, cookie.UserInfo)
	if strings.Contains(ui, `"exp": 0`) || !regexp.MustCompile(`"exp": \d{10}`).MatchString(ui) {
		t.Errorf("cb_userinfo does not show its real exp: %s", ui)
	}
	if !strings.Contains(panel(t, page.body, cookie.Refresh), `"rt": "fingerprint `) {
		t.Error("the refresh panel does not show the token's fingerprint")
	}

	// Every Set-Cookie line of this response, attribute by attribute, no value.
	for _, line := range sets {
		name, rest, _ := strings.Cut(line, "=")
		value, _, _ := strings.Cut(rest, ";")
		if value != "" && strings.Contains(page.body, value) {
			t.Fatalf("the inspector shows the value of %s", name)
		}
		if !strings.Contains(page.body, "<code>"+name+"</code> = ") {
			t.Errorf("the Set-Cookie line for %s is not listed", name)
		}
		if value != "" && !strings.Contains(page.body, fmt.Sprintf("%d bytes, fingerprint %s", len(value), inspect.Fingerprint(value))) {
			t.Errorf("%s: no size and fingerprint", name)
		}
	}
	for _, attr := range []string{"<li>HttpOnly</li>", "<li>SameSite=Lax</li>", "<li>Path=/</li>", "<li>Max-Age="} {
		if !strings.Contains(page.body, attr) {
			t.Errorf("the Set-Cookie attributes lack %s", attr)
		}
	}
	for _, secret := range []string{s.refreshToken(b), b.cookie(cookie.Refresh), b.cookie(cookie.Access), userinfo} {
		if strings.Contains(page.body, secret) {
			t.Fatal("the inspector shows a raw token or cookie value")
		}
	}
	// A reload sets nothing, and says so.
	if p := b.get("/session"); len(p.header.Values("Set-Cookie")) != 0 || !strings.Contains(p.body, `id="no-set-cookie"`) {
		t.Fatalf("a plain reload: %d Set-Cookie lines", len(p.header.Values("Set-Cookie")))
	}
}

func TestInspectorMeasuresTheCookieHeaderAsReceived(t *testing.T) {
	s := newStack(t, stackOptions{})
	b := s.browser()
	b.login("")
	u, _ := url.Parse(s.appURL)
	var parts []string
	for _, c := range b.jar.Cookies(u) {
		parts = append(parts, c.Name+"="+c.Value)
	}
	big := strings.Repeat("x", 3500)
	cases := []struct {
		name    string
		extra   []string
		largest string
	}{
		{"the session's cookies", nil, cookie.Access},
		{"with FusionAuth's and another app's cookies", []string{"fusionauth.sso=abcdef0123456789", "other=" + big}, "other"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			header := strings.Join(append(append([]string{}, parts...), tc.extra...), "; ")
			req, _ := http.NewRequest(http.MethodGet, s.appURL+"/session", nil)
			req.Header.Set("Cookie", header)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body := readAll(t, resp)
			want := strconv.Itoa(len(header))
			if !strings.Contains(body, `id="header-bytes">`+want+` bytes`) || !strings.Contains(body, `id="header-meter" min="0" max="8192"`) ||
				!strings.Contains(body, `value="`+want+`"`) {
				t.Fatalf("the inspector does not give the Cookie header's %s bytes against 8192", want)
			}
			if !strings.Contains(body, "Largest cookie, <code>"+tc.largest+"</code>") {
				t.Errorf("the largest cookie is not %s", tc.largest)
			}
			for _, e := range tc.extra {
				name, _, _ := strings.Cut(e, "=")
				if !strings.Contains(body, `data-name="`+name+`"`) {
					t.Errorf("%s is not listed", name)
				}
			}
			if strings.Contains(body, big) || strings.Contains(body, "abcdef0123456789") {
				t.Error("a cookie value is shown")
			}
		})
	}
}

func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s: %d", resp.Request.URL, resp.StatusCode)
	}
	return b.String()
}

// relogin follows a page's redirect to /login and on through the
// provider, which still has its SSO session, back to the page.
func relogin(t *testing.T, b *browser, path string) response {
	t.Helper()
	p := b.get(path)
	if p.status != http.StatusSeeOther || !strings.HasPrefix(p.location(), "/login") {
		t.Fatalf("%s after the session ended: %d %q", path, p.status, p.location())
	}
	p, visited := b.follow(p)
	if p.status != http.StatusOK || !strings.HasPrefix(visited[len(visited)-1], path) {
		t.Fatalf("the SSO round trip ended at %v: %d", visited, p.status)
	}
	return p
}

func TestSessionEndingsAreExplainedOnce(t *testing.T) {
	cases := []struct {
		name string
		end  func(s *stack, b *browser)
		code string
		why  string
	}{
		{"tampered cookie", func(s *stack, b *browser) { b.setJarCookie(cookie.UserInfo, b.cookie(cookie.Refresh)) },
			"ended-tampered", "failed its check"},
		{"refused refresh", func(s *stack, b *browser) { s.revokeRichard(); s.clock.Advance(3 * time.Minute) },
			"ended-refused", "the identity provider refused to refresh it"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newStack(t, stackOptions{})
			b := s.browser()
			b.login("")
			s.clock.Advance(time.Minute) // FusionAuth's SSO login is now a minute old
			tc.end(s, b)
			p := relogin(t, b, "/account")
			code, text := notice(p.body)
			if code != tc.code || !strings.Contains(text, tc.why) || !strings.Contains(text, "logged you straight back in") {
				t.Fatalf("after the SSO round trip the account says %q %q", code, text)
			}
			if !strings.Contains(p.body, `id="two-sessions-note"`) {
				t.Error("the two sessions are not explained")
			}
			if p := b.get("/account"); strings.Contains(p.body, `id="notice"`) {
				t.Fatal("the reload repeats the notice")
			}
		})
	}

	t.Run("logout confirms both sessions ended, once", func(t *testing.T) {
		s := newStack(t, stackOptions{})
		b := s.browser()
		token := csrf(t, b.login("").body)
		p := b.post("/logout", url.Values{"csrf_token": {token}})
		// The provider's page frames GET /logout, then goes on home.
		page := b.get(p.next())
		if f := b.getFramed("/logout"); f.status != http.StatusOK || f.location() != "" {
			t.Fatalf("the framed GET /logout: %d %q, want a page, not a redirect whose page the frame would load", f.status, f.location())
		}
		// A page loaded in a frame is never shown (frame-ancestors 'none'): it leaves the notice.
		if f := b.getFramed("/"); strings.Contains(f.body, `id="notice"`) {
			t.Fatal("a framed home page took the notice")
		}
		next := regexp.MustCompile(`id="continue" href="([^"]+)"`).FindStringSubmatch(page.body)
		if next == nil {
			t.Fatal("the provider's logout page has no continue link")
		}
		back := html.UnescapeString(next[1])
		home, _ := b.follow(b.get(back))
		code, text := notice(home.body)
		if code != "logged-out-both" || !strings.Contains(text, "You are logged out of ChangeBank and of the identity provider") {
			t.Fatalf("home after logout says %q %q", code, text)
		}
		if p := b.get("/"); strings.Contains(p.body, `id="notice"`) {
			t.Fatal("a reload of home repeats the logout notice")
		}
		if p, _ := b.follow(b.get(back)); strings.Contains(p.body, `id="notice"`) {
			t.Fatal("the logout's state worked twice")
		}
	})

	t.Run("logout the provider never confirmed says what the app knows", func(t *testing.T) {
		s := newStack(t, stackOptions{})
		b := s.browser()
		token := csrf(t, b.login("").body)
		p := b.post("/logout", url.Values{"csrf_token": {token}})
		end, _ := url.Parse(p.next())
		if end.Query().Get("state") == "" {
			t.Fatalf("the end-session URL carries no state: %s", end)
		}
		s.secrets.add("logout state", end.Query().Get("state"))
		// The provider is down, or refuses: the browser comes back by hand,
		// or with a state of someone else's.
		home, _ := b.follow(b.get("/?state=" + url.QueryEscape(end.Query().Get("state")+"x")))
		code, text := notice(home.body)
		if code != "logged-out" || !strings.Contains(text, "You are logged out of ChangeBank") ||
			!strings.Contains(text, "did not confirm") || strings.Contains(text, "of the identity provider") {
			t.Fatalf("home after a logout the provider never confirmed says %q %q", code, text)
		}
		if !strings.Contains(home.body, `id="end-provider-session"`) {
			t.Fatal("no way offered to end the provider's session")
		}
		// The offered button logs out at the provider again, with a fresh state.
		again := b.post("/logout", url.Values{"csrf_token": {csrf(t, home.body)}})
		if !strings.HasPrefix(again.next(), s.idpURL+"/oauth2/logout?") {
			t.Fatalf("the button: %d %q", again.status, again.next())
		}
	})
}

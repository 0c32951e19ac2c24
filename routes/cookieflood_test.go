package routes

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/changebank/changebank/tokens/cookie"
)

// cookieFloods are Cookie headers no browser sends but anyone can: a few
// thousand cookies, each a name the app reads, after a real session's own.
var cookieFloods = []struct {
	name string
	add  func(i int) string
}{
	{"2,900 cb_userinfo", func(int) string { return cookie.UserInfo + "=x" }},
	{"2,500 cb_access_token", func(int) string { return cookie.Access + "=x" }},
	{"2,500 cb_refresh_token", func(int) string { return cookie.Refresh + "=x" }},
	{"2,500 chunks", func(i int) string { return fmt.Sprintf("%s.%d=x", cookie.Access, 1+i%8) }},
	{"2,500 login transactions", func(i int) string { return fmt.Sprintf("%s%06d=x", cookie.LoginPrefix, i) }},
	{"2,900 other cookies", func(i int) string { return fmt.Sprintf("c%d=x", i) }},
}

// floodCount is how many cookies a flood adds: the 45 KB of the largest
// of them stays under the server's 64 KB header limit.
func floodCount(name string) int {
	if strings.HasPrefix(name, "2,900") {
		return 2900
	}
	return 2500
}

// cpuPerRequest is the CPU time this thread spends serving req, the least
// of a few rounds (CPU time, not wall time: other processes on the machine
// do not count), or false where the system does not tell it.
func cpuPerRequest(t *testing.T, h http.Handler, req func() *http.Request, want int) (time.Duration, bool) {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	best := time.Duration(-1)
	for range 3 {
		// The thread's CPU clock ticks in milliseconds: run enough requests
		// to read it well.
		before, ok := threadCPU()
		if !ok {
			return 0, false
		}
		n, spent := 0, time.Duration(0)
		for n < 3 || spent < 30*time.Millisecond {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req())
			if rec.Code != want {
				t.Fatalf("status %d, want %d: %.300s", rec.Code, want, rec.Body)
			}
			n++
			now, _ := threadCPU()
			spent = now - before
		}
		if d := spent / time.Duration(n); best < 0 || d < best {
			best = d
		}
	}
	return best, true
}

// TestThousandsOfCookiesCostLittle: a Cookie header of a few thousand
// cookies (after a real session's own, so the session still works) costs
// every handler that reads cookies at most a few times what the same
// request costs without them, plus one normal inspector request: never the
// hundreds of times the inspector cost when it read the header again for
// each cookie. The inspector lists a bounded number and says how many it
// left out; /login answers a bounded number of Set-Cookie lines. CPU time
// of this thread, the least of three rounds, on Linux; elsewhere only the
// sizes are checked.
func TestThousandsOfCookiesCostLittle(t *testing.T) {
	s := newStack(t, stackOptions{quietLogs: true})
	b := s.browser()
	token := csrf(t, b.login("").body)
	u, _ := url.Parse(s.appURL)
	var session []string
	for _, c := range b.jar.Cookies(u) {
		session = append(session, c.Name+"="+c.Value)
	}
	request := func(method, path string, form url.Values, extra string) func() *http.Request {
		return func() *http.Request {
			r := httptest.NewRequest(method, path, strings.NewReader(form.Encode()))
			if form != nil {
				r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				r.Header.Set("Origin", s.appURL)
			}
			r.Header.Set("Cookie", strings.Join(session, "; ")+extra)
			return r
		}
	}
	floods := map[string]string{}
	for _, f := range cookieFloods {
		var extra strings.Builder
		for i := range floodCount(f.name) {
			extra.WriteString("; " + f.add(i))
		}
		floods[f.name] = extra.String()
	}

	// What the inspector shows and answers.
	normal := serveOnce(s.handler, request(http.MethodGet, "/session", nil, "")())
	for _, f := range cookieFloods {
		p := serveOnce(s.handler, request(http.MethodGet, "/session", nil, floods[f.name])())
		listed := strings.Count(p.Body.String(), `<section class="panel cookie`)
		unlisted := len(session) + floodCount(f.name) - maxListedCookies
		if p.Code != http.StatusOK || listed != maxListedCookies || !strings.Contains(p.Body.String(), fmt.Sprintf(`id="unlisted">%d more cookies`, unlisted)) {
			t.Errorf("/session with %s: %d, %d cookies listed, want %d and %d more counted", f.name, p.Code, listed, maxListedCookies, unlisted)
		}
		if p.Body.Len() > 2*normal.Body.Len() {
			t.Errorf("/session with %s: a page of %d bytes, a normal one is %d", f.name, p.Body.Len(), normal.Body.Len())
		}
	}
	// /login expires old login transactions: a bounded number of them.
	p := serveOnce(s.handler, request(http.MethodGet, "/login", nil, floods["2,500 login transactions"])())
	if n := len(p.Header().Values("Set-Cookie")); p.Code != http.StatusFound || n > 2*4 {
		t.Errorf("/login with 2,500 login transactions: %d, %d Set-Cookie lines", p.Code, n)
	}

	inspectorCost, measured := cpuPerRequest(t, s.handler, request(http.MethodGet, "/session", nil, ""), http.StatusOK)
	if !measured {
		t.Log("no per-thread CPU time on this system: the costs are not measured")
		return
	}
	routes := []struct {
		method, path string
		form         url.Values
		status       int
	}{
		{http.MethodGet, "/session", nil, http.StatusOK},
		{http.MethodGet, "/account", nil, http.StatusOK},
		{http.MethodGet, "/", nil, http.StatusSeeOther},
		{http.MethodGet, "/api/me", nil, http.StatusOK},
		{http.MethodGet, "/session/lab", nil, http.StatusOK},
		{http.MethodPost, "/session/lab", url.Values{"csrf_token": {token}, "attack": {"alg-none"}}, http.StatusOK},
		{http.MethodGet, "/login", nil, http.StatusFound},
		{http.MethodGet, "/callback?state=forged&code=x", nil, http.StatusSeeOther},
		// Last: they end the session (the cookies stay in these requests).
		{http.MethodGet, "/logout", nil, http.StatusSeeOther},
		{http.MethodPost, "/logout", url.Values{"csrf_token": {token}}, http.StatusOK}, // a page that goes on to the provider
	}
	for _, rt := range routes {
		normal, _ := cpuPerRequest(t, s.handler, request(rt.method, rt.path, rt.form, ""), rt.status)
		for _, f := range cookieFloods {
			flooded, _ := cpuPerRequest(t, s.handler, request(rt.method, rt.path, rt.form, floods[f.name]), rt.status)
			t.Logf("%-4s %-29s %-25s %9s, normally %9s", rt.method, rt.path, f.name, flooded.Round(time.Microsecond), normal.Round(time.Microsecond))
			if limit := 4*normal + inspectorCost; flooded > limit {
				t.Errorf("%s %s with %s: %s of CPU, want at most %s (four times the %s it costs without them, plus one inspector request)",
					rt.method, rt.path, f.name, flooded, limit, normal)
			}
		}
	}
}

// serveOnce answers one request in process.
func serveOnce(h http.Handler, r *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	return rec
}

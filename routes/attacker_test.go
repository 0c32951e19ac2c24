package routes

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"
)

// TestAttackerReportsWhatTheAppSaw sends the attacker page's requests the
// way browsers do (and the way an old browser without SameSite would) and
// checks the page's report names the defence that acted.
func TestAttackerReportsWhatTheAppSaw(t *testing.T) {
	s := newStack(t, stackOptions{})
	wt := NewWitness()
	app := httptest.NewServer(wt.Wrap(s.handler))
	t.Cleanup(app.Close)
	atk, err := Attacker(s.appURL, s.idpURL, os.DirFS(".."), wt)
	if err != nil {
		t.Fatal(err)
	}
	attacker := httptest.NewServer(atk)
	t.Cleanup(attacker.Close)
	b := s.browser()
	b.login("")
	u, _ := url.Parse(s.appURL)
	session := b.jar.Cookies(u)

	cases := []struct {
		name, attempt, method, path string
		withCookies                 bool // an old browser, without SameSite
		status                      int
		stopped                     bool
		by                          []string
	}{
		{"form post, cookies withheld", "form-post", http.MethodPost, "/make-change", false, http.StatusSeeOther, true, []string{"SameSite=Lax"}},
		{"form post, cookies sent", "form-post", http.MethodPost, "/make-change", true, http.StatusForbidden, true, []string{"Origin check", "CSRF token"}},
		{"refresh post, cookies sent", "refresh-post", http.MethodPost, "/session/refresh", true, http.StatusForbidden, true, []string{"Origin check", "CSRF token"}},
		{"fetch, cookies sent", "fetch-api", http.MethodGet, "/api/me", true, http.StatusOK, true, []string{"CORS"}},
		{"framed account", "frame-account", http.MethodGet, "/account", false, http.StatusSeeOther, true, []string{"SameSite=Lax", "frame-ancestors"}},
		{"image logout, cookies withheld", "img-logout", http.MethodGet, "/logout", false, http.StatusSeeOther, true, []string{"SameSite=Lax"}},
		{"image logout, cookies sent", "img-logout", http.MethodGet, "/logout", true, http.StatusSeeOther, false, nil}, // last: it ends the session
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			probe := "probe" + strings.Repeat("x", 4) + string(rune('a'+i))
			req, _ := http.NewRequest(tc.method, app.URL+tc.path+"?probe="+probe, strings.NewReader("amount=1000"))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Origin", attacker.URL)
			req.Header.Set("Sec-Fetch-Site", "cross-site")
			if tc.withCookies {
				for _, c := range session {
					req.AddCookie(c)
				}
			}
			client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("the app answered %d, want %d", resp.StatusCode, tc.status)
			}
			v := report(t, attacker.URL, probe, tc.attempt, http.StatusOK)
			if !v.Arrived || v.Stopped != tc.stopped || v.Seen.Status != tc.status || (len(v.Seen.SessionCookies) > 0) != tc.withCookies {
				t.Fatalf("report: %+v", v)
			}
			for _, d := range tc.by {
				if !slices.Contains(v.StoppedBy, d) {
					t.Errorf("stopped by %v, want %s among them: %s", v.StoppedBy, d, v.Text)
				}
			}
			// The card's colour (stopped or not) and its words agree.
			if says := strings.Contains(v.Text, "Not stopped"); says == v.Stopped || (v.Stopped && strings.Contains(v.Text, "ended your ChangeBank session")) {
				t.Errorf("stopped %v, but the report says: %s", v.Stopped, v.Text)
			}
		})
	}
	t.Run("a probe never seen, a bad probe", func(t *testing.T) {
		if v := report(t, attacker.URL, "neverseen123", "form-post", http.StatusOK); v.Arrived {
			t.Fatalf("an unseen probe arrived: %+v", v)
		}
		report(t, attacker.URL, "<script>", "form-post", http.StatusBadRequest)
		report(t, attacker.URL, "neverseen123", "steal-everything", http.StatusBadRequest)
	})
	// The attacker page itself: served with its script, naming the app.
	resp, err := http.Get(attacker.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(resp.Header.Get("Content-Security-Policy"), "form-action "+s.appURL) {
		t.Fatalf("attacker page: %d %q", resp.StatusCode, resp.Header.Get("Content-Security-Policy"))
	}
}

func report(t *testing.T, base, probe, attempt string, status int) verdict {
	t.Helper()
	resp, err := http.Get(base + "/report?" + url.Values{"probe": {probe}, "attempt": {attempt}}.Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != status {
		t.Fatalf("report %s %s: %d, want %d", probe, attempt, resp.StatusCode, status)
	}
	var v verdict
	if status == http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
			t.Fatal(err)
		}
	}
	return v
}

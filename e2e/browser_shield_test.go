package e2e

import (
	"fmt"
	"html/template"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/target"
	"github.com/chromedp/chromedp"

	"github.com/changebank/changebank/internal/apptest"
)

// attackerPages serves, on 127.0.0.1 (another site than localhost), a page
// that posts the attacker's credentials to the provider's login form (login
// CSRF) and a page that frames the provider's login page.
func attackerPages(t *testing.T, d demo) string {
	t.Helper()
	params := url.Values{
		"client_id": {apptest.DemoEnv["CLIENT_ID"]}, "redirect_uri": {d.appURL + "/callback"}, "response_type": {"code"},
		"scope": {"openid email profile offline_access"}, "state": {"attacker-state"}, "nonce": {"attacker-nonce"},
		"code_challenge": {strings.Repeat("A", 43)}, "code_challenge_method": {"S256"},
	}
	post := template.Must(template.New("post").Parse(`<!doctype html><form id="f" method="post" action="{{.Action}}">
{{range $k, $v := .Fields}}<input type="hidden" name="{{$k}}" value="{{index $v 0}}">{{end}}
</form><script>document.getElementById("f").submit()</script>`))
	mux := http.NewServeMux()
	mux.HandleFunc("GET /login-csrf", func(w http.ResponseWriter, _ *http.Request) {
		fields := url.Values{"loginId": {"admin@example.com"}, "password": {"password"}}
		for k, v := range params {
			fields[k] = v
		}
		_ = post.Execute(w, map[string]any{"Action": d.issuer + "/oauth2/authorize", "Fields": fields})
	})
	mux.HandleFunc("GET /frame", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, `<!doctype html><body><iframe id="victim" width="600" height="600" onload="document.body.dataset.loaded=1" src="%s"></iframe>`,
			template.HTMLEscapeString(d.issuer+"/oauth2/authorize?"+params.Encode()))
	})
	srv := httptest.NewServer(mux) // on 127.0.0.1
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestBrowserStandInRefusesLoginCSRFAndFraming: a page on another site
// that posts the attacker's credentials to the stand-in's login form logs
// nobody in (the victim's next login asks for a password instead of
// silently logging them in as the attacker), and a page on another site
// that frames the login form gets no form.
func TestBrowserStandInRefusesLoginCSRFAndFraming(t *testing.T) {
	port := func() string { return strings.TrimPrefix(apptest.FreePort(t), "127.0.0.1:") }
	d := startDemo(t, map[string]string{"APP_URL": "http://localhost:" + port(), "ISSUER": "http://localhost:" + port()})
	attacker := attackerPages(t, d)
	ctx := newBrowser(t)

	run1(t, ctx, chromedp.Navigate(attacker+"/login-csrf"), chromedp.WaitVisible(chromedp.CSS("#error, #name, main")))
	run1(t, ctx, chromedp.Navigate(d.appURL+"/account"), chromedp.WaitVisible(chromedp.CSS("#loginId, #name")))
	if u := location(t, ctx); !strings.HasPrefix(u, d.issuer+"/oauth2/authorize") {
		t.Fatalf("after another site posted the attacker's credentials, /account led to %s (logged in as %q)", u,
			get(t, ctx, chromedp.Evaluate[string](`(document.querySelector("#name") || {}).textContent || ""`)))
	}

	run1(t, ctx, chromedp.Navigate(attacker+"/frame"))
	run1(t, ctx, chromedp.Poll[chromedp.Void](`document.body.dataset.loaded === "1"`, chromedp.WithPollingTimeout(30*time.Second)))
	res, err := chromedp.Call(ctx, target.GetTargets, target.GetTargetsParams{})
	if err != nil {
		t.Fatal(err)
	}
	framed := 0
	for _, ti := range res.TargetInfos {
		if ti.Type != "iframe" || !strings.HasPrefix(ti.URL, d.issuer) {
			continue
		}
		framed++
		// Chromium keeps the frame's URL and shows its error page in it.
		frame, cancel := chromedp.NewContext(ctx, chromedp.WithTargetID(ti.TargetID))
		form := get(t, frame, chromedp.Evaluate[bool](`document.querySelector("#loginId") !== null`))
		cancel()
		if form {
			t.Fatalf("another site framed the stand-in's login form (%q)", ti.Title)
		}
	}
	if framed != 1 {
		t.Fatalf("%d frames of the stand-in, want the attacker page's one", framed)
	}
}

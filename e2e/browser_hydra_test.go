package e2e

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/changebank/changebank/internal/apptest"
)

// hydraShape is Ory Hydra as its quickstart lays it out: id_token_hint
// needed at logout, and the logout page served by the login and consent
// app on another origin than Hydra. Its access tokens are opaque
// (ory_at_..., the default strategy) or, with strategies.access_token: jwt,
// JWTs.
func hydraShape(opaque bool) shape {
	s := shape{
		issuerPath: "",
		endpoints: map[string]string{"discovery": "/.well-known/openid-configuration", "authorize": "/oauth2/auth", "login": "/login",
			"token": "/oauth2/token", "userinfo": "/userinfo", "jwks": "/.well-known/jwks.json", "logout": "/oauth2/sessions/logout", "revoke": "/oauth2/revoke"},
		alg: "RS256", keyAlgInJWKS: true, idTyp: "JWT", accessTyp: "JWT", revocation: true, refreshError: "invalid_grant", logoutNeedsIDTokenHint: true,
		accessAud: func(_, clientID string, _ url.Values) any { return []string{clientID} },
		logoutUI:  true,
	}
	if opaque {
		s.opaqueAccess = func() string { return "ory_at_" + randomString(32) + "." + randomString(32) }
	}
	return s
}

// TestBrowserLogoutThroughALogoutPageOnAnotherOrigin: Hydra sends the
// browser from its end-session endpoint to a logout page on another
// origin. The Log out button must get the user there (the page's content
// security policy limits where a form may send the browser, redirects
// included), and back to the app once they confirm, with the provider's
// session ended.
func TestBrowserLogoutThroughALogoutPageOnAnotherOrigin(t *testing.T) {
	for _, opaque := range []bool{false, true} {
		t.Run(map[bool]string{false: "JWT access tokens", true: "opaque access tokens"}[opaque], func(t *testing.T) {
			hydraLogout(t, opaque)
		})
	}
}

func hydraLogout(t *testing.T, opaque bool) {
	ctx := newBrowser(t)
	clientID, secret := "changebank-hydra", "browser-hydra-client-secret-"+randomString(12)
	op := startHandOP(t, hydraShape(opaque), clientID, secret, time.Minute)
	d := startApp(t, map[string]string{"ISSUER": op.issuerURL(), "CLIENT_ID": clientID, "CLIENT_SECRET": secret,
		"APP_SECRET_KEY": apptest.DemoEnv["APP_SECRET_KEY"]})
	t.Cleanup(func() { d.secrets.remember(op.rec.issuedValues()...) })

	run1(t, ctx, chromedp.Navigate(d.appURL+"/account"),
		chromedp.WaitVisible(chromedp.CSS(`input[name="username"]`)),
		chromedp.SetValue(chromedp.CSS(`input[name="username"]`), opUser.login),
		chromedp.SetValue(chromedp.CSS(`input[name="password"]`), opUser.password),
		chromedp.Click(chromedp.CSS("button")),
		chromedp.WaitVisible(chromedp.CSS("#logout")))
	if got := text(t, ctx, "#name"); got != opUser.name {
		t.Fatalf("the account page greets %q", got)
	}
	rememberCookies(t, ctx, d)
	live := op.liveSessions()

	run1(t, ctx, chromedp.Click(chromedp.CSS("#logout")))
	waitCtx, cancel := context.WithTimeout(ctx, 15*time.Second) // a hang, not a speed check
	defer cancel()
	if err := chromedp.Do(waitCtx, chromedp.WaitVisible(chromedp.CSS("#accept"))); err != nil {
		t.Fatalf("Log out never reached the provider's logout page at %s: the browser is on %s", op.ui, location(t, ctx))
	}
	if u := location(t, ctx); !strings.HasPrefix(u, op.ui+"/logout") {
		t.Fatalf("the logout confirmation is at %s, want %s/logout", u, op.ui)
	}
	run1(t, ctx, chromedp.Click(chromedp.CSS("#accept")), chromedp.WaitVisible(chromedp.CSS("#hero-login")))
	if u := location(t, ctx); u != d.appURL+"/" {
		t.Fatalf("after the provider's logout the browser is on %s, want %s/", u, d.appURL)
	}
	if msg := landingNotice(t, ctx); !strings.Contains(msg, "You are logged out of ChangeBank and of the identity provider") {
		t.Errorf("the page after logout says %q", msg)
	}
	if got := op.liveSessions(); got >= live {
		t.Errorf("the provider still has %d live sessions after Log out (%d before)", got, live)
	}
	jar := cookies(t, ctx, d.appURL)
	for _, name := range sessionCookies {
		if jar[name] != nil {
			t.Errorf("%s survived Log out", name)
		}
	}
}

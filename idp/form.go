package idp

import (
	"fmt"
	"html"
	"io"
	"net/http"
	"net/url"
	"regexp"
)

// hiddenInput matches the login page's hidden fields, as login.html writes them.
var hiddenInput = regexp.MustCompile(`<input type="hidden" name="([^"]*)" value="([^"]*)">`)

// LoginForm gets the stand-in's login form for authorizeURL, as a browser
// would, and returns the form's fields: the authorize request and the
// form's token. Add loginId and password and post them to
// /oauth2/authorize with the same client, whose Jar gets the cookie the
// token is bound to. The form is asked for without the SSO session cookie,
// so that it shows even when the client is logged in at the stand-in
// already (posting it logs in again, with the password). For tests and the
// load script, which log in without a browser.
func LoginForm(client *http.Client, authorizeURL string) (url.Values, error) {
	if client.Jar == nil {
		return nil, fmt.Errorf("idp: LoginForm needs a client with a cookie jar")
	}
	u, err := url.Parse(authorizeURL)
	if err != nil {
		return nil, fmt.Errorf("idp: the authorize URL: %w", err)
	}
	req, err := http.NewRequest(http.MethodGet, authorizeURL, nil)
	if err != nil {
		return nil, fmt.Errorf("idp: the authorize URL: %w", err)
	}
	for _, c := range client.Jar.Cookies(u) {
		if c.Name == csrfCookie {
			req.AddCookie(c)
		}
	}
	bare := *client
	bare.Jar = nil
	bare.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := bare.Do(req)
	if err != nil {
		return nil, fmt.Errorf("idp: getting the login form: %w", err)
	}
	defer resp.Body.Close()
	client.Jar.SetCookies(u, resp.Cookies())
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("idp: reading the login form: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("idp: the login form answered %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	form := url.Values{}
	for _, m := range hiddenInput.FindAllStringSubmatch(string(body), -1) {
		form.Set(html.UnescapeString(m[1]), html.UnescapeString(m[2]))
	}
	if form.Get("csrf_token") == "" {
		return nil, fmt.Errorf("idp: the login page has no form")
	}
	return form, nil
}

package tokens

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"golang.org/x/oauth2"

	"github.com/changebank/changebank/tokens/oidc"
)

// A client is the app as an OAuth client of the provider: the code
// exchange, refresh, revocation, userinfo and end-session URL.
type client struct {
	provider *oidc.Provider
	id       string // the client (FusionAuth application) id
	secret   string
	appURL   string // where the app is served, without a trailing slash: /callback is its redirect URL, / where logout lands
	apiKey   string // FusionAuth API key for refresh-token revocation at FusionAuth; optional (see revocationFor)
	http     *http.Client
}

// newClient returns the client cfg registers at p. Its calls go through
// hc, whose Timeout (tokenCallTimeout when it has none) bounds each one: a
// hung provider must not hang the user's request.
func newClient(p *oidc.Provider, cfg Config, hc *http.Client) *client {
	var hcopy http.Client
	if hc != nil {
		hcopy = *hc
	}
	if hcopy.Timeout == 0 {
		hcopy.Timeout = tokenCallTimeout
	}
	return &client{provider: p, id: cfg.ClientID, secret: cfg.ClientSecret, appURL: strings.TrimSuffix(cfg.AppURL, "/"),
		apiKey: cfg.FusionAuthAPIKey, http: &hcopy}
}

// home is where the browser lands after logout.
func (c *client) home() string { return c.appURL + "/" }

// oauthConfig is built per use: the endpoints are known only after discovery.
func (c *client) oauthConfig() (*oauth2.Config, error) {
	meta, err := c.provider.Metadata()
	if err != nil {
		return nil, err
	}
	return &oauth2.Config{
		ClientID:     c.id,
		ClientSecret: c.secret,
		RedirectURL:  c.appURL + "/callback",
		Scopes:       c.provider.Profile().Scopes,
		Endpoint: oauth2.Endpoint{
			AuthURL:   meta.AuthorizationEndpoint,
			TokenURL:  meta.TokenEndpoint,
			AuthStyle: oauth2.AuthStyleInHeader,
		},
	}, nil
}

// authCodeURL returns the provider's authorization URL for one login: the
// flow's own parameters, and the profile's extra ones, which can never
// replace them. A name the profile repeats is sent with each of its
// values, in order.
func (c *client) authCodeURL(state, pkceVerifier, nonce string) (string, error) {
	conf, err := c.oauthConfig()
	if err != nil {
		return "", err
	}
	raw := conf.AuthCodeURL(state, oauth2.S256ChallengeOption(pkceVerifier), oauth2.SetAuthURLParam("nonce", nonce))
	extra := c.provider.Profile().AuthorizeParams
	if len(extra) == 0 {
		return raw, nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("tokens: the authorization URL: %w", err)
	}
	q := u.Query()
	for name, vals := range extra {
		for _, v := range vals {
			q.Add(name, v)
		}
	}
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// exchange redeems an authorization code. A code the provider refuses
// (invalid_grant: used, expired, or its PKCE verifier differs) is
// ErrBadCallback; any other OAuth error is a *ProviderError; a provider that
// cannot answer is ErrProviderUnavailable.
func (c *client) exchange(ctx context.Context, code, pkceVerifier string) (*oauth2.Token, error) {
	conf, err := c.oauthConfig()
	if err != nil {
		return nil, err
	}
	ctx = context.WithValue(ctx, oauth2.HTTPClient, c.http)
	tok, err := conf.Exchange(ctx, code, oauth2.VerifierOption(pkceVerifier))
	if err != nil {
		return nil, classifyExchange(err)
	}
	return tok, nil
}

// classifyExchange sorts a code-exchange error.
func classifyExchange(err error) error {
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) {
		// Network errors, timeouts, a response that is not a token response.
		return fmt.Errorf("%w: exchanging the authorization code: %w", ErrProviderUnavailable, err)
	}
	var kind error
	switch status := statusOf(re); {
	case re.ErrorCode == "invalid_grant":
		kind = ErrBadCallback
	case re.ErrorCode != "" && status/100 == 4:
		kind = &ProviderError{Code: re.ErrorCode, Description: re.ErrorDescription}
	default:
		kind = ErrProviderUnavailable
	}
	return &tokenEndpointError{grant: "the authorization code", kind: kind, re: re}
}

func statusOf(re *oauth2.RetrieveError) int {
	if re.Response == nil {
		return 0
	}
	return re.Response.StatusCode
}

// refresh redeems a refresh token; errors are classify's. ctx bounds the
// call (the refresher gives it RefreshCallTimeout), not the client's
// Timeout: that bounds only how long a request waits for it.
func (c *client) refresh(ctx context.Context, refreshToken string) (*oauth2.Token, error) {
	conf, err := c.oauthConfig()
	if err != nil {
		return nil, err
	}
	detached := *c.http
	detached.Timeout = 0
	ctx = context.WithValue(ctx, oauth2.HTTPClient, &detached)
	tok, err := conf.TokenSource(ctx, &oauth2.Token{RefreshToken: refreshToken}).Token()
	if err != nil {
		return nil, classify(err)
	}
	return tok, nil
}

// revoke revokes a refresh token the way revocationFor picks: at the RFC
// 7009 revocation endpoint discovery lists, else with FusionAuth's API
// (DELETE /api/jwt/refresh) when an API key is set. FusionAuth's OAuth
// logout does not revoke refresh tokens; without this a stolen refresh
// token would outlive the logout.
func (c *client) revoke(ctx context.Context, token string) error {
	meta, err := c.provider.Metadata()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, revokeTimeout)
	defer cancel()
	var req *http.Request
	switch revocationFor(meta, c.apiKey) {
	case revokeFusionAuthAPI:
		// The token goes in the body, not the query string, to stay out of access logs.
		body := url.Values{"token": {token}}.Encode()
		req, err = http.NewRequestWithContext(ctx, http.MethodDelete, apiBase(c.provider.Profile())+"/api/jwt/refresh", strings.NewReader(body))
		if err == nil {
			req.Header.Set("Authorization", c.apiKey)
		}
	case revokeRFC7009:
		body := url.Values{"token": {token}, "token_type_hint": {"refresh_token"}}.Encode()
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, meta.RevocationEndpoint, strings.NewReader(body))
		if err == nil {
			req.SetBasicAuth(url.QueryEscape(c.id), url.QueryEscape(c.secret))
		}
	default:
		return errNoRevocation
	}
	if err != nil {
		return fmt.Errorf("tokens: revocation request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("tokens: revocation: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("tokens: revocation: status %d", resp.StatusCode)
	}
	return nil
}

// logoutURL returns the provider's end-session URL (OpenID Connect
// RP-Initiated Logout 1.0), which sends the browser back to this app's
// home with state, or the home itself when the provider has none. idToken, when not
// "", goes as id_token_hint: Hydra, Dex and Keycloak need it to end their
// session without asking, or to honour post_logout_redirect_uri at all.
// client_id goes too, which the spec allows beside the hint and FusionAuth
// uses to find the application. state comes back on the redirect home once
// the provider's logout is done.
func (c *client) logoutURL(idToken, state string) string {
	meta, err := c.provider.Metadata()
	if err != nil || meta.EndSessionEndpoint == "" {
		return c.home()
	}
	u, err := url.Parse(meta.EndSessionEndpoint)
	if err != nil {
		return c.home()
	}
	q := u.Query()
	q.Set("client_id", c.id)
	if idToken != "" {
		q.Set("id_token_hint", idToken)
	}
	q.Set("post_logout_redirect_uri", c.home())
	q.Set("state", state)
	u.RawQuery = q.Encode()
	return u.String()
}

// maxUserinfoBytes bounds the userinfo answer read.
const maxUserinfoBytes = 64 << 10

// errNoUserinfo means discovery lists no userinfo endpoint.
var errNoUserinfo = errors.New("tokens: the provider lists no userinfo endpoint")

// userinfo asks the provider's userinfo endpoint (OpenID Connect Core 1.0,
// section 5.3) for the user's claims with the access token. A provider that
// cannot answer is ErrProviderUnavailable; an answer that is not the
// claims, or a refusal, ends the login (ErrNoSession). The caller checks
// that its sub is the ID token's.
func (c *client) userinfo(ctx context.Context, accessToken string) (*oidc.Claims, error) {
	meta, err := c.provider.Metadata()
	if err != nil {
		return nil, err
	}
	if meta.UserinfoEndpoint == "" {
		return nil, errNoUserinfo
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, meta.UserinfoEndpoint, nil)
	if err != nil {
		return nil, fmt.Errorf("tokens: userinfo request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+accessToken)
	req.Header.Set("Accept", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: userinfo: %w", ErrProviderUnavailable, err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests:
		return nil, fmt.Errorf("%w: userinfo: status %d", ErrProviderUnavailable, resp.StatusCode)
	case resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("%w: userinfo refused the access token: status %d", ErrNoSession, resp.StatusCode)
	}
	var claims oidc.Claims
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxUserinfoBytes)).Decode(&claims); err != nil {
		return nil, fmt.Errorf("%w: userinfo: not a JSON object of claims: %w", ErrNoSession, err)
	}
	if claims.Subject == "" {
		return nil, fmt.Errorf("%w: userinfo: no sub", ErrNoSession)
	}
	return &claims, nil
}

// apiBase is the base URL of FusionAuth's own API, reached server to
// server: InternalURL when set, else the issuer's origin.
func apiBase(p oidc.Profile) string {
	if p.InternalURL != "" {
		return strings.TrimSuffix(p.InternalURL, "/")
	}
	u, err := url.Parse(p.Issuer)
	if err != nil {
		return strings.TrimSuffix(p.Issuer, "/")
	}
	return u.Scheme + "://" + u.Host
}

// revocation is how logout revokes a refresh token at this provider.
type revocation int

const (
	revokeNone          revocation = iota // the provider offers no way
	revokeRFC7009                         // POST to discovery's revocation_endpoint
	revokeFusionAuthAPI                   // DELETE /api/jwt/refresh with the API key
)

// errNoRevocation means logout has no way to revoke the refresh token here.
var errNoRevocation = errors.New("tokens: no way to revoke: the provider lists no revocation_endpoint, and no FusionAuth API key is set for a FusionAuth provider")

// revocationFor picks how to revoke: the standard endpoint wherever
// discovery lists one; FusionAuth's API only when discovery lists none (no
// FusionAuth version has an RFC 7009 endpoint), an API key is set, and the
// discovered endpoints are FusionAuth's (fusionAuthShaped). So a FusionAuth
// API key left in .env never sends a refresh token to another provider's
// /api/jwt/refresh: Dex, for one, lists no revocation endpoint either.
func revocationFor(m oidc.Metadata, apiKey string) revocation {
	switch {
	case m.RevocationEndpoint != "":
		return revokeRFC7009
	case apiKey != "" && fusionAuthShaped(m):
		return revokeFusionAuthAPI
	default:
		return revokeNone
	}
}

// fusionAuthShaped reports whether discovery names FusionAuth's endpoint
// paths: the token endpoint at /oauth2/token and the keys at
// /.well-known/jwks.json, at the root of their host.
func fusionAuthShaped(m oidc.Metadata) bool {
	token, err := url.Parse(m.TokenEndpoint)
	if err != nil {
		return false
	}
	keys, err := url.Parse(m.JWKSURI)
	return err == nil && token.Path == "/oauth2/token" && keys.Path == "/.well-known/jwks.json"
}

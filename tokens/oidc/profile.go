package oidc

import (
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// DefaultScopes are the scopes asked for when a Profile names none: an ID
// token (openid) with the user's email and name, and a refresh token
// (offline_access).
var DefaultScopes = []string{"openid", "email", "profile", "offline_access"}

// A Profile is everything that differs between OpenID providers, in one
// place: what the settings say (below) and what discovery tells (the
// methods further down). The rest of this package asks the profile rather
// than naming a provider.
//
// The rules it carries, and why:
//   - Issuer is compared exactly, in the discovery document and in every
//     token's iss (OpenID Connect Discovery 1.0, section 4.3): Auth0's ends
//     in a slash, Keycloak's and Dex's have paths.
//   - Access tokens must name Audience in their aud (Auth0 puts the API
//     identifier there, Authgear the issuer, Keycloak "account"); ID tokens
//     must name ClientID (OpenID Connect Core 1.0, section 3.1.3.7).
//   - Scopes and AuthorizeParams shape the authorization request (Auth0's
//     audience, RFC 8707's resource); the flow's own parameters cannot be
//     replaced (the settings refuse them, and the request sets them last).
//   - Endpoints are used as discovery gives them, unless InternalURL is set:
//     see moveEndpoints.
//   - Revocation at logout: RFC 7009 where discovery lists a
//     revocation_endpoint, else FusionAuth's API where the endpoints are
//     FusionAuth's: package tokens decides, from Metadata.
//   - Token kinds and a JWKS key without alg apply to every provider
//     alike: see Verifier.
type Profile struct {
	// Issuer is the provider's issuer exactly as its tokens carry it.
	Issuer string
	// InternalURL is where this app reaches the provider when the browser's
	// URL does not work from here (FusionAuth inside docker compose); "" to
	// use the discovered endpoints as they are.
	InternalURL string
	// ClientID is this app's client id: every ID token's aud holds it.
	ClientID string
	// Audience is what every access token's aud must hold; "" means ClientID.
	Audience string
	// Scopes are the scopes asked for; nil means DefaultScopes.
	Scopes []string
	// AuthorizeParams are added to the authorization request; they never
	// replace the flow's own parameters (state, nonce, PKCE, redirect_uri,
	// client_id, response_type, scope), nor carry a request object
	// (request, request_uri) or a response_mode: see RefusedParams.
	AuthorizeParams url.Values
	// RequireHTTPS, set when the app is served over https, refuses a
	// provider whose issuer or discovered endpoints are plain http on a
	// host other than loopback: the client secret and the tokens would
	// cross the network unencrypted. Endpoints moved onto InternalURL are
	// the operator's own choice and exempt.
	RequireHTTPS bool
}

// withDefaults returns p with its defaults filled in: Audience is ClientID
// when empty, Scopes DefaultScopes, and AuthorizeParams without the flow's
// own parameters (see FlowParams).
func (p Profile) withDefaults() Profile {
	if p.Audience == "" {
		p.Audience = p.ClientID
	}
	if len(p.Scopes) == 0 {
		p.Scopes = DefaultScopes
	}
	p.AuthorizeParams = p.authorizeParams()
	return p
}

// discoveryURL is where the discovery document is: the issuer without its
// trailing slash, plus /.well-known/openid-configuration (OpenID Connect
// Discovery 1.0, section 4), on InternalURL's host when that is set.
func (p Profile) discoveryURL() (string, error) {
	u, err := url.Parse(strings.TrimSuffix(p.Issuer, "/") + "/.well-known/openid-configuration")
	if err != nil {
		return "", fmt.Errorf("oidc: the issuer %q: %w", p.Issuer, err)
	}
	if p.InternalURL != "" {
		if err := onto(u, p.InternalURL); err != nil {
			return "", err
		}
	}
	return u.String(), nil
}

// moveEndpoints rewrites discovered endpoints when InternalURL is set, and
// only then. FusionAuth builds its discovery document's URLs from the host
// the request came to: asked as http://fusionauth:9011 inside compose, it
// names a host the browser cannot resolve. So the endpoints the browser
// visits (authorize, end session) move onto the issuer's origin, and those
// this app calls (token, userinfo, JWKS, revocation, introspection) onto InternalURL.
// Other providers name their endpoints as they mean them, on hosts that may
// differ from the issuer's: without InternalURL they are used as they are.
func (p Profile) moveEndpoints(m *Metadata) error {
	if p.InternalURL == "" {
		return nil
	}
	for _, e := range []struct {
		u    *string
		base string
	}{
		{&m.AuthorizationEndpoint, p.Issuer},
		{&m.EndSessionEndpoint, p.Issuer},
		{&m.TokenEndpoint, p.InternalURL},
		{&m.UserinfoEndpoint, p.InternalURL},
		{&m.JWKSURI, p.InternalURL},
		{&m.RevocationEndpoint, p.InternalURL},
		{&m.IntrospectionEndpoint, p.InternalURL},
	} {
		if *e.u == "" {
			continue
		}
		u, err := url.Parse(*e.u)
		if err != nil {
			return fmt.Errorf("oidc: discovery document: endpoint %q: %w", *e.u, err)
		}
		if err := onto(u, e.base); err != nil {
			return err
		}
		*e.u = u.String()
	}
	return nil
}

// plainEndpoints names the discovered endpoints (after moveEndpoints) that
// RequireHTTPS refuses: plain http on a host that is not loopback. The
// issuer counts too, for a Profile built in code.
func (p Profile) plainEndpoints(m Metadata) []string {
	if !p.RequireHTTPS {
		return nil
	}
	internal := ""
	if u, err := url.Parse(p.InternalURL); err == nil && p.InternalURL != "" {
		internal = u.Host
	}
	var bad []string
	for _, e := range []struct{ name, u string }{
		{"issuer", p.Issuer},
		{"authorization_endpoint", m.AuthorizationEndpoint},
		{"token_endpoint", m.TokenEndpoint},
		{"userinfo_endpoint", m.UserinfoEndpoint},
		{"jwks_uri", m.JWKSURI},
		{"end_session_endpoint", m.EndSessionEndpoint},
		{"revocation_endpoint", m.RevocationEndpoint},
		{"introspection_endpoint", m.IntrospectionEndpoint},
	} {
		u, err := url.Parse(e.u)
		if e.u == "" || (err == nil && (u.Scheme == "https" || Loopback(u.Hostname()) || (internal != "" && u.Host == internal))) {
			continue
		}
		bad = append(bad, e.name+" "+e.u)
	}
	return bad
}

// Loopback reports whether host (a name or an address, without port) is
// this machine's own: localhost, a name under .localhost, or a loopback
// address. Traffic to it never crosses a network, so plain http is allowed
// there even for an https app.
func Loopback(host string) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

// onto moves u onto base's scheme and host, keeping its path and query.
func onto(u *url.URL, base string) error {
	b, err := url.Parse(base)
	if err != nil || b.Host == "" {
		return fmt.Errorf("oidc: base URL %q: not an absolute URL", base)
	}
	u.Scheme, u.Host = b.Scheme, b.Host
	return nil
}

// authorizeParams returns the profile's extra authorization parameters
// without any CheckAuthorizeParams refuses (the settings refuse those at
// start already; this keeps a Profile built in code as safe).
func (p Profile) authorizeParams() url.Values {
	v := url.Values{}
	for name, vals := range p.AuthorizeParams {
		if refusedParam(name, vals) == "" {
			v[name] = vals
		}
	}
	return v
}

// FlowParams are the authorization request parameters the login flow sets
// itself: a Profile's AuthorizeParams may not replace them, or a setting
// could turn off state, nonce or PKCE, or send the code elsewhere.
var FlowParams = []string{"state", "nonce", "code_challenge", "code_challenge_method", "redirect_uri", "client_id", "response_type", "scope"}

// requestObjectParams would let the authorization request carry its own
// parameters in a request object (OpenID Connect Core 1.0, section 6; RFC
// 9101), which the provider then takes over the query's: redirect_uri,
// state, nonce and the PKCE challenge among them. response_mode would send
// the code back in a form post or a fragment, which the callback does not
// read.
var requestObjectParams = []string{"request", "request_uri", "response_mode"}

// CheckAuthorizeParams returns an error naming, in one message, every
// parameter of v a Profile's AuthorizeParams may not carry: the flow's own
// (FlowParams), request, request_uri and response_mode, an empty name, and
// any name or value holding a control character. Repeated names are fine:
// each value is sent, in order (RFC 8707 allows several resource values).
func CheckAuthorizeParams(v url.Values) error {
	names := make([]string, 0, len(v))
	for name := range v {
		names = append(names, name)
	}
	slices.Sort(names)
	var refused []string
	for _, name := range names {
		if why := refusedParam(name, v[name]); why != "" {
			shown := name
			if name == "" || hasControl(name) {
				shown = strconv.Quote(name)
			}
			refused = append(refused, shown+" ("+why+")")
		}
	}
	if len(refused) == 0 {
		return nil
	}
	return fmt.Errorf("oidc: %s: refused as extra authorization parameters", strings.Join(refused, ", "))
}

// refusedParam says why an extra authorization parameter is refused, or "".
func refusedParam(name string, vals []string) string {
	lower := strings.ToLower(name)
	switch {
	case name == "":
		return "no name"
	case hasControl(name):
		return "control characters in the name"
	case slices.Contains(FlowParams, lower):
		return "the login flow's own parameter"
	case slices.Contains(requestObjectParams, lower):
		if lower == "response_mode" {
			return "the callback reads the code from the query only"
		}
		return "a request object would replace the flow's own redirect_uri, state, nonce and PKCE challenge"
	case slices.ContainsFunc(vals, hasControl):
		return "control characters in a value"
	}
	return ""
}

// hasControl reports whether s holds an ASCII control character (NUL, CR,
// LF, tab, DEL...).
func hasControl(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f })
}

package app

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/changebank/changebank/tokens/cookie"
	"github.com/changebank/changebank/tokens/oidc"
)

// Config is every setting, read once and validated together by LoadConfig.
type Config struct {
	AppURL            string // normalised: see baseURL
	ListenAddr        string
	Issuer            string // exactly as given: every token's iss must equal it
	IssuerInternalURL string // normalised; "" when unset
	ClientID          string
	ClientSecret      string
	Audience          string     // what every access token's aud must hold
	AuthorizeParams   url.Values // extra authorization request parameters
	// BearerIntrospection lets opaque Bearer tokens through the provider's
	// introspection endpoint.
	BearerIntrospection bool
	Scopes              []string
	Secrets             []string
	RefreshTTL          time.Duration
	DrainPeriod         time.Duration // after SIGTERM: /readyz 503, requests still served
	APIKey              string
	KickstartFile       string
	EmbeddedIdP         bool
	LogLevel            slog.Level
	AttackerAddr        string // host:port of the attacker page; "" when off
	MetricsAddr         string // host:port of the Prometheus metrics listener; "" when off

	issuerAddr string // host:port the embedded provider listens on
}

// SettingNames are the environment variables the app reads, in the order
// -h lists them.
func SettingNames() []string {
	names := make([]string, len(settings))
	for i, s := range settings {
		names[i] = s.name
	}
	return names
}

// setting is one environment variable: its default and what it means.
// The table feeds both -h and the defaults LoadConfig applies, so the two
// cannot disagree.
type setting struct {
	name, fallback, meaning string
}

var settings = []setting{
	{"APP_URL", "http://localhost:8080", "where browsers reach the app; https:// turns on Secure, __Host- cookies"},
	{"LISTEN_ADDR", "", "address to listen on (default: \":\" + APP_URL's port)"},
	{"ISSUER", "http://localhost:9011", "the provider's issuer exactly as its tokens' iss carries it (a path and trailing slash are kept); https when APP_URL is, unless on loopback"},
	{"ISSUER_INTERNAL_URL", "", "the provider as the app reaches it, when different (FusionAuth in compose); moves the endpoints the app calls onto this host"},
	{"CLIENT_ID", "", "this app's client id at the provider (FusionAuth: the application id) (required)"},
	{"CLIENT_SECRET", "", "this app's client secret at the provider (required)"},
	{"AUDIENCE", "", "the value every access token's aud must hold (default: CLIENT_ID)"},
	{"AUTHORIZE_PARAMS", "", "extra authorization request parameters in URL query form, such as audience=https%3A%2F%2Fapi.example.com (names may repeat; not the flow's own, request, request_uri or response_mode)"},
	{"SCOPES", "openid email profile offline_access", "space-separated scopes to ask for"},
	{"APP_SECRET_KEY", "", "comma-separated secrets of 32+ bytes: the first seals, all open (required)"},
	{"REFRESH_TOKEN_TTL", "720h", "the refresh token's life at the provider; session cookies live this long"},
	{"DRAIN_PERIOD", "15s", "after SIGTERM: how long /readyz answers 503 while every request is still served, before the graceful shutdown; 0s: shut down at once. Ctrl-C (SIGINT) never waits"},
	{"BEARER_INTROSPECTION", "off", "on: /api/me accepts opaque (non-JWT) Bearer access tokens by asking the provider's introspection endpoint (RFC 7662), where discovery lists one, once per token"},
	{"FUSIONAUTH_API_KEY", "", "FusionAuth API key: lets logout revoke the refresh token at FusionAuth, which has no RFC 7009 endpoint (optional)"},
	{"KICKSTART_FILE", "kickstart/kickstart.json", "the embedded stand-in's configuration (-embedded-idp only)"},
	{"LOG_LEVEL", "info", "debug, info, warn or error"},
	{"ATTACKER_ADDR", "", "host:port of the cross-site attacker page, another site than APP_URL's host (.env: 127.0.0.1:8090); empty: off"},
	{"METRICS_ADDR", "", "host:port of the Prometheus metrics listener (/metrics), apart from the app's port, such as :9090; empty: off"},
}

// publishedSecrets are the secret values this repository publishes in
// .env, docker-compose.yml, the README and the kickstart. Anyone can read
// them, so over https (a real deployment) they protect nothing and the app
// refuses to start with them. TestPublishedSecretsAreListed keeps the list
// complete.
var publishedSecrets = []string{
	"changebank-demo-cookie-secret-not-for-production-0001",
	"changebank-demo-client-secret-not-for-production",
	"changebank-demo-api-key-not-for-production-0000000000",
	"changebank-demo-postgres-password",
	"changebank-demo-fusionauth-db-password",
	"password", // the demo users'
}

// errHelp means -h was given: run prints the usage and exits cleanly.
var errHelp = flag.ErrHelp

// usage writes every flag and every setting with its default and meaning.
func usage(w io.Writer) {
	fmt.Fprint(w, `Usage: changebank [-embedded-idp]

ChangeBank serves a cookie-session demo logged in through an OpenID provider
(FusionAuth by default).

Flags:
  -embedded-idp   also run the embedded FusionAuth stand-in on ISSUER's port
                  (development and tests only)
  -h              show this help

Settings, read from the environment, then from .env (the environment wins):
`)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, s := range settings {
		def := s.fallback
		if def == "" {
			def = "-"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", s.name, def, s.meaning)
	}
	tw.Flush()
	fmt.Fprint(w, `
With no provider running, start one: go run . -embedded-idp, or docker compose up.
`)
}

// LoadConfig reads flags and environment. It reports every bad setting in
// one error, so a user fixes them all in one go. With -h it returns errHelp.
func LoadConfig(args []string, getenv func(string) string, stderr io.Writer) (Config, error) {
	var cfg Config
	fset := flag.NewFlagSet("changebank", flag.ContinueOnError)
	fset.SetOutput(io.Discard) // run prints the usage (-h) or the error
	fset.Usage = func() {}
	fset.BoolVar(&cfg.EmbeddedIdP, "embedded-idp", false, "")
	if err := fset.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return cfg, errHelp
		}
		return cfg, fmt.Errorf("changebank: %w (-h lists every setting)", err)
	}
	if fset.NArg() > 0 {
		return cfg, fmt.Errorf("changebank: unexpected argument %q (-h lists every setting)", fset.Arg(0))
	}

	var problems []string
	bad := func(name, format string, a ...any) {
		problems = append(problems, name+": "+fmt.Sprintf(format, a...))
	}
	get := func(name string) string {
		if v := strings.TrimSpace(getenv(name)); v != "" {
			return v
		}
		i := slices.IndexFunc(settings, func(s setting) bool { return s.name == name })
		return settings[i].fallback
	}

	var appURL, issuer *url.URL
	cfg.AppURL, appURL = baseURL("APP_URL", get("APP_URL"), bad)
	cfg.Issuer, issuer = issuerURL(get("ISSUER"), cfg.EmbeddedIdP, bad)
	if issuer != nil && appURL != nil && appURL.Scheme == "https" && issuer.Scheme != "https" && !oidc.Loopback(issuer.Hostname()) {
		bad("ISSUER", "%q is plain http, but APP_URL is https: the client secret and the tokens would cross the network unencrypted; use the provider's https URL (only loopback hosts may be http)", cfg.Issuer)
	}
	if v := get("ISSUER_INTERNAL_URL"); v != "" {
		cfg.IssuerInternalURL, _ = baseURL("ISSUER_INTERNAL_URL", v, bad)
	}
	cfg.ListenAddr = get("LISTEN_ADDR")
	if cfg.ListenAddr == "" && appURL != nil {
		cfg.ListenAddr = ":" + portOf(appURL)
	}
	if issuer != nil {
		cfg.issuerAddr = net.JoinHostPort(issuer.Hostname(), portOf(issuer))
	}
	overHTTPS := appURL != nil && appURL.Scheme == "https"
	published := func(name, value string) {
		if overHTTPS && slices.Contains(publishedSecrets, value) {
			bad(name, "the demo value published in this repository: anyone can read it, so it protects nothing over https; make a real one (openssl rand -base64 32)")
		}
	}
	if cfg.ClientID = get("CLIENT_ID"); cfg.ClientID == "" {
		bad("CLIENT_ID", "not set: this app's client id at the provider (FusionAuth: the application id)")
	} else if isUUID(cfg.ClientID) {
		// FusionAuth takes an application id in any case but writes it
		// lower-case in the tokens' aud, which is compared exactly.
		cfg.ClientID = strings.ToLower(cfg.ClientID)
	}
	if cfg.ClientSecret = get("CLIENT_SECRET"); cfg.ClientSecret == "" {
		bad("CLIENT_SECRET", "not set: this app's client secret at the provider")
	}
	if cfg.Audience = get("AUDIENCE"); cfg.Audience == "" {
		cfg.Audience = cfg.ClientID
	}
	cfg.Scopes = strings.Fields(get("SCOPES"))
	if !slices.Contains(cfg.Scopes, "openid") {
		bad("SCOPES", "%q lacks openid: without it there is no ID token", get("SCOPES"))
	}
	cfg.AuthorizeParams = authorizeParams(get("AUTHORIZE_PARAMS"), bad)
	published("CLIENT_SECRET", cfg.ClientSecret)
	if raw := get("APP_SECRET_KEY"); raw == "" {
		bad("APP_SECRET_KEY", "not set: comma-separated secrets of at least %d bytes, the first seals, all open (openssl rand -base64 32)", cookie.MinSecretLen)
	} else {
		for i, s := range strings.Split(raw, ",") {
			s = strings.TrimSpace(s)
			if len(s) < cookie.MinSecretLen {
				bad("APP_SECRET_KEY", "secret #%d is %d bytes, want at least %d", i+1, len(s), cookie.MinSecretLen)
				continue
			}
			published(fmt.Sprintf("APP_SECRET_KEY: secret #%d", i+1), s)
			cfg.Secrets = append(cfg.Secrets, s)
		}
	}
	ttl, err := time.ParseDuration(get("REFRESH_TOKEN_TTL"))
	if err != nil || ttl <= 0 {
		bad("REFRESH_TOKEN_TTL", "want a positive duration such as 720h (30 days, the kickstart's refresh token life)")
	}
	cfg.RefreshTTL = ttl
	drain, err := time.ParseDuration(get("DRAIN_PERIOD"))
	if err != nil || drain < 0 {
		bad("DRAIN_PERIOD", "want a duration such as 15s (longer than a balancer takes to notice /readyz failing), or 0s to shut down at once")
	}
	cfg.DrainPeriod = drain
	switch v := strings.ToLower(get("BEARER_INTROSPECTION")); v {
	case "on", "off":
		cfg.BearerIntrospection = v == "on"
	default:
		bad("BEARER_INTROSPECTION", "%q: want on or off", get("BEARER_INTROSPECTION"))
	}
	cfg.APIKey = get("FUSIONAUTH_API_KEY")
	if cfg.APIKey != "" {
		published("FUSIONAUTH_API_KEY", cfg.APIKey)
	}
	cfg.KickstartFile = get("KICKSTART_FILE")
	if err := cfg.LogLevel.UnmarshalText([]byte(get("LOG_LEVEL"))); err != nil {
		bad("LOG_LEVEL", "want debug, info, warn or error")
	}

	if cfg.AttackerAddr = get("ATTACKER_ADDR"); cfg.AttackerAddr != "" {
		host, port, err := net.SplitHostPort(cfg.AttackerAddr)
		switch {
		case err != nil || host == "" || port == "":
			bad("ATTACKER_ADDR", "%q: want host:port, such as 127.0.0.1:8090", cfg.AttackerAddr)
		case overHTTPS:
			// The page is a lesson for the demo on this machine, never part of a deployment.
			bad("ATTACKER_ADDR", "the attacker page is for the local demo: leave ATTACKER_ADDR empty when APP_URL is https")
		case unspecifiedIP(host):
			bad("ATTACKER_ADDR", "%q listens on every interface, which would serve the attacker page to the network: use a loopback address such as 127.0.0.1:8090", cfg.AttackerAddr)
		case appURL != nil && sameSite(host, appURL.Hostname()):
			// Browsers keep cookies apart by site, not by port: on the app's
			// own host, or a host of its site, the attacker page would be the
			// same site and its lesson wrong.
			bad("ATTACKER_ADDR", "%q is the same site as APP_URL's host to a browser: use another loopback name (127.0.0.1 when the app is localhost)", cfg.AttackerAddr)
		}
	}

	if cfg.MetricsAddr = get("METRICS_ADDR"); cfg.MetricsAddr != "" {
		_, port, err := net.SplitHostPort(cfg.MetricsAddr)
		_, appPort, _ := net.SplitHostPort(cfg.ListenAddr)
		switch {
		case err != nil || port == "":
			bad("METRICS_ADDR", "%q: want host:port or :port, such as :9090", cfg.MetricsAddr)
		case port == appPort:
			// Apart from the public port, so that the route in never
			// exposes them and a scrape never competes with a browser.
			bad("METRICS_ADDR", "%q is the app's own port: give the metrics another one, such as :9090", cfg.MetricsAddr)
		}
	}

	if len(problems) > 0 {
		return cfg, errors.New("changebank: bad configuration (see .env and README):\n  " + strings.Join(problems, "\n  "))
	}
	return cfg, nil
}

// issuerURL checks ISSUER and returns it exactly as given: OpenID Connect
// Discovery 1.0 (section 4.3) wants the discovery document's issuer, and
// every token's iss, identical to it, so a path (Keycloak's /realms/x, Dex's
// /dex) and a trailing slash (Auth0's) are the issuer's own. Only a scheme
// and host are required; a query, fragment or user part is no issuer.
// The embedded stand-in serves at its host's root, so with -embedded-idp the
// issuer must be scheme://host[:port] alone.
func issuerURL(raw string, embedded bool, bad func(name, format string, a ...any)) (string, *url.URL) {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		bad("ISSUER", "not a URL")
	case u.Scheme != "http" && u.Scheme != "https":
		bad("ISSUER", "%q: want an http:// or https:// URL, written as the provider's tokens carry it", raw)
	case u.Hostname() == "":
		bad("ISSUER", "%q: no host", raw)
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || u.User != nil || u.Opaque != "":
		bad("ISSUER", "%q: an issuer has no query, fragment or user part", raw)
	case embedded && u.Path != "":
		bad("ISSUER", "%q: the embedded stand-in (-embedded-idp) serves at its host's root: want scheme://host[:port] with no path or trailing slash", raw)
	default:
		return raw, u
	}
	return "", nil
}

// authorizeParams parses AUTHORIZE_PARAMS (URL query form) and refuses,
// in one message, every parameter oidc.CheckAuthorizeParams refuses: the
// flow's own, request objects, response_mode, control characters.
func authorizeParams(raw string, bad func(name, format string, a ...any)) url.Values {
	if raw == "" {
		return nil
	}
	v, err := url.ParseQuery(strings.TrimPrefix(raw, "?"))
	if err != nil {
		bad("AUTHORIZE_PARAMS", "not in URL query form (name=value&name=value, values percent-encoded)")
		return nil
	}
	if err := oidc.CheckAuthorizeParams(v); err != nil {
		bad("AUTHORIZE_PARAMS", "%s (SCOPES sets the scope; the login flow sets state, nonce, PKCE and redirect_uri itself)", strings.TrimPrefix(err.Error(), "oidc: "))
	}
	return v
}

// baseURL checks an http(s) URL with no path, query or fragment and
// returns it normalised: scheme and host in lower case, the scheme's
// default port dropped, no trailing slash. That is how browsers write an
// Origin, so the form every other part of the app uses (cookie prefix,
// Origin check, redirect URI, issuer) compares equal to what arrives.
func baseURL(name, raw string, bad func(name, format string, a ...any)) (string, *url.URL) {
	u, err := url.Parse(raw)
	if err != nil {
		bad(name, "not a URL")
		return "", nil
	}
	u.Scheme = strings.ToLower(u.Scheme)
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		bad(name, "%q: want an http:// or https:// URL", raw)
	case u.Hostname() == "":
		bad(name, "%q: no host", raw)
	case strings.TrimSuffix(u.Path, "/") != "" || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || u.User != nil || u.Opaque != "":
		bad(name, "%q: want scheme://host[:port] only", raw)
	default:
		host, port := strings.ToLower(u.Hostname()), u.Port()
		if (u.Scheme == "http" && port == "80") || (u.Scheme == "https" && port == "443") {
			port = ""
		}
		norm := &url.URL{Scheme: u.Scheme, Host: host}
		switch {
		case port != "":
			norm.Host = net.JoinHostPort(host, port)
		case strings.Contains(host, ":"): // IPv6
			norm.Host = "[" + host + "]"
		}
		return norm.String(), norm
	}
	return "", nil
}

func portOf(u *url.URL) string {
	if p := u.Port(); p != "" {
		return p
	}
	if u.Scheme == "https" {
		return "443"
	}
	return "80"
}

// unspecifiedIP reports whether host is 0.0.0.0 or ::, which listen on
// every interface.
func unspecifiedIP(host string) bool {
	ip := net.ParseIP(host)
	return ip != nil && ip.IsUnspecified()
}

// sameSite reports whether a browser may take hosts a and b for one site:
// the same address, the same name, one a subdomain of the other, or two
// names sharing their last two labels. That last rule stands in for the
// registrable domain (the public suffix list would be a dependency for a
// check of the demo's settings): it errs towards refusing (a.co.uk and
// b.co.uk are two sites, yet refused).
func sameSite(a, b string) bool {
	a, b = strings.ToLower(strings.TrimSuffix(a, ".")), strings.ToLower(strings.TrimSuffix(b, "."))
	ipA, ipB := net.ParseIP(a), net.ParseIP(b)
	if ipA != nil || ipB != nil {
		return ipA != nil && ipB != nil && ipA.Equal(ipB)
	}
	if a == b || strings.HasSuffix(a, "."+b) || strings.HasSuffix(b, "."+a) {
		return true
	}
	lastTwo := func(h string) string {
		labels := strings.Split(h, ".")
		if len(labels) < 2 {
			return ""
		}
		return strings.Join(labels[len(labels)-2:], ".")
	}
	return lastTwo(a) != "" && lastTwo(a) == lastTwo(b)
}

// isUUID reports whether s is a UUID in its 8-4-4-4-12 hex form.
func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, r := range s {
		switch {
		case i == 8 || i == 13 || i == 18 || i == 23:
			if r != '-' {
				return false
			}
		case !strings.ContainsRune("0123456789abcdefABCDEF", r):
			return false
		}
	}
	return true
}

package tokens

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/changebank/changebank/internal/bounded"
	"github.com/changebank/changebank/tokens/cookie"
	"github.com/changebank/changebank/tokens/oidc"
)

// Config is what New needs: the first five fields are required, the others
// optional, and their zero values the documented defaults.
type Config struct {
	// Issuer is the provider's issuer exactly as its tokens' iss carries
	// it (a path and a trailing slash are part of it). Discovery is at
	// Issuer + "/.well-known/openid-configuration".
	Issuer string
	// ClientID and ClientSecret are this app's registration at the
	// provider (FusionAuth: the application's id and client secret).
	ClientID, ClientSecret string
	// AppURL is where browsers reach this app, scheme://host[:port]: the
	// callback is AppURL + "/callback" (register it at the provider), and
	// logout comes back to AppURL + "/". https:// makes every cookie
	// Secure with the __Host- prefix, and refuses a provider whose issuer
	// or endpoints are plain http on a host other than loopback.
	AppURL string
	// Secrets seal the cookies and key the CSRF tokens, newest first: the
	// first seals, every one opens, so a secret is rotated by putting a
	// new one first. Each is at least cookie.MinSecretLen (32) bytes.
	Secrets []string

	// Audience is what every access token's aud must hold; "" means
	// ClientID. (Auth0 puts the API identifier there, Keycloak "account".)
	Audience string
	// Scopes are the scopes asked for; nil means oidc.DefaultScopes
	// (openid email profile offline_access). openid is required.
	Scopes []string
	// AuthorizeParams are added to the authorization request (Auth0's
	// audience, RFC 8707's resource), each value of a repeated name in
	// order; the flow's own parameters, request objects and response_mode
	// are refused (see oidc.CheckAuthorizeParams).
	AuthorizeParams url.Values
	// IssuerInternalURL is where this app reaches the provider when the
	// browser's URL does not work from here (FusionAuth inside docker
	// compose): the endpoints the app calls move onto it. "" uses the
	// discovered endpoints as they are.
	IssuerInternalURL string
	// RefreshTokenTTL is the refresh token's life at the provider: the
	// session's cookies live as long. 0 means 30 days, FusionAuth's default.
	RefreshTokenTTL time.Duration
	// FusionAuthAPIKey lets logout revoke the refresh token at FusionAuth,
	// which has no RFC 7009 endpoint. Used only when discovery names
	// FusionAuth's endpoints; "" means no revocation there.
	FusionAuthAPIKey string
	// HTTPClient makes every call to the provider; its Timeout bounds each
	// one (5 s when it has none). nil means a client of its own.
	HTTPClient *http.Client
	// Logger gets what happens (never a token, code, secret or cookie
	// value); nil means slog.Default().
	Logger *slog.Logger
	// Clock tells the time; nil means time.Now. Tests move it.
	Clock func() time.Time
	// BearerIntrospection lets AccessToken accept an opaque access token
	// (not a JWT) by asking the provider's RFC 7662 introspection
	// endpoint, where discovery lists one, once per token until it
	// expires. Off, such a token is refused with ErrOpaqueBearer.
	BearerIntrospection bool
	// Observer is told what the sessions do, for metrics; nil means no one.
	Observer Observer
}

// defaultRefreshTTL is FusionAuth's default refresh token life.
const defaultRefreshTTL = 30 * 24 * time.Hour

// withDefaults checks c and fills in its defaults. The error names every
// setting that is wrong, at once.
func (c Config) withDefaults() (Config, error) {
	var problems []string
	bad := func(format string, a ...any) { problems = append(problems, fmt.Sprintf(format, a...)) }
	if u, err := url.Parse(c.Issuer); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		bad("Issuer %q is not an http(s) URL", c.Issuer)
	}
	if c.IssuerInternalURL != "" {
		if u, err := url.Parse(c.IssuerInternalURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("IssuerInternalURL %q is not an http(s) URL", c.IssuerInternalURL)
		}
	}
	if c.ClientID == "" {
		bad("ClientID is empty")
	}
	if c.ClientSecret == "" {
		bad("ClientSecret is empty")
	}
	if _, err := appOrigin(c.AppURL); err != nil {
		bad("AppURL %q: %v", c.AppURL, err)
	}
	if len(c.Secrets) == 0 {
		bad("Secrets is empty: give at least one of %d bytes or more", cookie.MinSecretLen)
	}
	for i, s := range c.Secrets {
		if len(s) < cookie.MinSecretLen {
			bad("Secrets[%d] is %d bytes, want at least %d", i, len(s), cookie.MinSecretLen)
		}
	}
	if c.Scopes != nil && !slices.Contains(c.Scopes, "openid") {
		bad("Scopes %q lack openid: without it there is no ID token", c.Scopes)
	}
	if err := oidc.CheckAuthorizeParams(c.AuthorizeParams); err != nil {
		bad("AuthorizeParams: %v", err)
	}
	if c.RefreshTokenTTL < 0 {
		bad("RefreshTokenTTL is negative")
	}
	if len(problems) > 0 {
		return c, errors.New("tokens: bad Config: " + strings.Join(problems, "; "))
	}
	if c.Audience == "" {
		c.Audience = c.ClientID
	}
	if c.RefreshTokenTTL == 0 {
		c.RefreshTokenTTL = defaultRefreshTTL
	}
	var hc http.Client
	if c.HTTPClient != nil {
		hc = *c.HTTPClient
	}
	if hc.Timeout == 0 {
		hc.Timeout = tokenCallTimeout
	}
	c.HTTPClient = &hc
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
	if c.Observer == nil {
		c.Observer = nopObserver{}
	}
	return c, nil
}

// appOrigin returns the origin a browser writes for an app served at
// appURL (lower case, without the scheme's default port), which the
// Logout handler compares with a form's Origin header.
func appOrigin(appURL string) (string, error) {
	u, err := url.Parse(appURL)
	switch {
	case err != nil:
		return "", err
	case u.Scheme != "http" && u.Scheme != "https":
		return "", errors.New("want an http:// or https:// URL")
	case u.Host == "" || strings.TrimSuffix(u.Path, "/") != "" || u.RawQuery != "" || u.Fragment != "":
		return "", errors.New("want scheme://host[:port] only")
	}
	host, port := strings.ToLower(u.Hostname()), u.Port()
	if (u.Scheme == "http" && port == "80") || (u.Scheme == "https" && port == "443") {
		port = ""
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port != "" {
		host += ":" + port
	}
	return u.Scheme + "://" + host, nil
}

// profile is the provider's side of c.
func (c Config) profile() oidc.Profile {
	return oidc.Profile{
		Issuer: c.Issuer, InternalURL: c.IssuerInternalURL, ClientID: c.ClientID,
		Audience: c.Audience, Scopes: c.Scopes, AuthorizeParams: c.AuthorizeParams,
		RequireHTTPS: strings.HasPrefix(c.AppURL, "https://"),
	}
}

// Sessions keeps OpenID Connect login sessions in cookies: it logs users
// in and out, and loads, refreshes and ends their sessions. It keeps no
// session state: any instance holding the same Secrets serves any request.
// Its memory (caches, and what keeps attacker input from costing the
// provider more than one call) is per instance and bounded.
type Sessions struct {
	provider   *oidc.Provider
	cookies    *cookie.Store
	client     *client
	verifier   *oidc.Verifier
	csrf       *csrfGuard
	refresh    *refresher
	refreshTTL time.Duration // the refresh token's life at the provider
	origin     string        // the app's origin, as a browser's Origin header writes it
	now        func() time.Time
	log        *slog.Logger
	observe    Observer
	// users remembers opened cb_userinfo values by the value's hash: the
	// same value arrives on every request of a session, and opening and
	// decoding it cost more than the rest of the cookie work together.
	users *bounded.Map[[sha256.Size]byte, UserInfo]
	// Per-instance memory that keeps attacker input from costing the
	// provider more than one call (see shield.go): the login transactions
	// exchanged, the refresh tokens refused or revoked, by hash.
	spentLogins *hashSet
	deadTokens  *hashSet
	exchanges   *exchangeBudget
	// sessions remembers whole sessions that passed every check, keyed on
	// their cookie values: see sessionCache.
	sessions *sessionCache
	// introspect checks opaque Bearer tokens at the provider; nil unless
	// Config.BearerIntrospection.
	introspect *introspector
	kind       atomic.Int32 // the kind of access token last issued (noteKind)
}

// maxOpenedUsers bounds Sessions.users. A session's entry stays for its
// life; a flood of distinct values (each one genuine, or it is never
// cached) only evicts.
const maxOpenedUsers = 10000

// New returns the Sessions cfg describes, and starts discovering the
// provider in the background, retrying with backoff until it answers or
// ctx ends (which also stops the key set's refresh): under docker compose
// the app starts before FusionAuth has finished its kickstart. Until then
// logins and loads answer ErrProviderUnavailable, and Require "try again".
// Its error names every setting of cfg that is wrong.
func New(ctx context.Context, cfg Config) (*Sessions, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	p := oidc.NewProvider(cfg.profile(), cfg.HTTPClient, cfg.Clock, cfg.Logger)
	s, err := newSessions(cfg, p, p)
	if err != nil {
		return nil, err
	}
	go p.Start(ctx)
	return s, nil
}

// newSessions builds Sessions for cfg (with its defaults) around the
// provider p, trusting the keys of ks: New passes p itself, tests a fixed
// key set.
func newSessions(cfg Config, p *oidc.Provider, ks oidc.KeySet) (*Sessions, error) {
	secrets := make([][]byte, len(cfg.Secrets))
	for i, sec := range cfg.Secrets {
		secrets[i] = []byte(sec)
	}
	sealer, err := cookie.NewSealer(secrets...)
	if err != nil {
		return nil, fmt.Errorf("tokens: %w", err)
	}
	csrf, err := newCSRF(secrets...)
	if err != nil {
		return nil, err
	}
	origin, err := appOrigin(cfg.AppURL)
	if err != nil {
		return nil, fmt.Errorf("tokens: AppURL %q: %w", cfg.AppURL, err)
	}
	client := newClient(p, cfg, cfg.HTTPClient)
	s := &Sessions{
		provider: p, cookies: cookie.NewStore(cfg.AppURL, sealer), client: client,
		verifier: oidc.NewVerifier(ks, cfg.profile(), cfg.Clock), csrf: csrf,
		refresh: newRefresher(cfg.Clock, refreshGrace, client.http.Timeout), refreshTTL: cfg.RefreshTokenTTL,
		origin: origin, now: cfg.Clock, log: cfg.Logger, observe: cfg.Observer,
		users:       bounded.New[[sha256.Size]byte, UserInfo](maxOpenedUsers, bounded.Evict),
		spentLogins: newHashSet(), deadTokens: newHashSet(), exchanges: newExchangeBudget(cfg.Clock()),
		sessions: newSessionCache(),
	}
	s.refresh.dead, s.refresh.observe = s.deadTokens, cfg.Observer
	if cfg.BearerIntrospection {
		s.introspect = newIntrospector(client, cfg)
	}
	return s, nil
}

// Provider returns the provider as discovered: its readiness, issuer,
// endpoints and keys.
func (s *Sessions) Provider() *oidc.Provider { return s.provider }

// Cookies returns the store of the session's cookies: their names on the
// wire, chunks and sealed contents, for apps that show them (the session
// inspector does).
func (s *Sessions) Cookies() *cookie.Store { return s.cookies }

// AccessToken verifies an access token sent as `Authorization: Bearer`,
// with the session's rules (issuer, Audience, the provider's keys, kind);
// errors are oidc.Verifier.AccessToken's, an expired token included. A
// token that is not a JWT is opaque: only the provider can check it, at
// its introspection endpoint when Config.BearerIntrospection is on and
// discovery lists one (errors: oidc.ErrInvalidToken, and
// ErrProviderUnavailable when it could not say); otherwise it is refused
// with ErrOpaqueBearer.
func (s *Sessions) AccessToken(ctx context.Context, raw string) (*Claims, error) {
	if oidc.IsJWT(raw) {
		return s.verifier.AccessToken(ctx, raw)
	}
	if s.introspect == nil {
		return nil, ErrOpaqueBearer
	}
	if m, err := s.provider.Metadata(); err != nil {
		return nil, err
	} else if m.IntrospectionEndpoint == "" {
		return nil, ErrOpaqueBearer
	}
	return s.introspect.check(ctx, raw)
}

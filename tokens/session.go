package tokens

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"golang.org/x/oauth2"
)

var (
	// ErrNoSession means the request carries no usable session: none at all,
	// one that ended (logout, refresh token refused), or one that failed
	// validation. Any session cookies have been expired on the response.
	ErrNoSession = errors.New("tokens: no session")
	// ErrProviderUnavailable means the provider could not be reached to
	// refresh or to fetch keys. Every cookie is kept: try again later.
	ErrProviderUnavailable = errors.New("tokens: the identity provider is unreachable")
)

// RefreshMargin is how long before its exp an access token is refreshed,
// so it does not expire between this app's check and the user's next click.
const RefreshMargin = 5 * time.Second

// A Session is what the cookies of one browser hold, validated.
type Session struct {
	AccessToken  string  // the JWT as issued, from cb_access_token
	Access       *Claims // its validated claims
	RefreshToken string  // from the sealed cb_refresh_token; "" when the provider issued none
	User         UserInfo
	// Refreshed reports whether this request refreshed the tokens.
	Refreshed bool
	// Expires is when the refresh and userinfo cookies expire: the refresh token's end.
	Expires time.Time
}

// UserInfo is the sealed content of cb_userinfo: the validated ID-token
// claims the pages show, and the session's bounds.
type UserInfo struct {
	Subject       string `json:"sub"`
	Name          string `json:"name,omitempty"`
	GivenName     string `json:"given_name,omitempty"`
	FamilyName    string `json:"family_name,omitempty"`
	Email         string `json:"email,omitempty"`
	EmailVerified bool   `json:"email_verified,omitempty"`
	Birthdate     string `json:"birthdate,omitempty"`
	LoginID       string `json:"lid"`      // random per login: CSRF tokens are bound to it
	LoginAt       int64  `json:"login_at"` // when the user logged in: a logout after it ends the session
	Expires       int64  `json:"exp"`      // enforced here, not just by the browser
}

// refreshCookie is the sealed content of cb_refresh_token.
type refreshCookie struct {
	Token   string `json:"rt"`
	Subject string `json:"sub"`
	Expires int64  `json:"exp"`
}

func userInfoFrom(c *Claims) UserInfo {
	return UserInfo{
		Subject: c.Subject, Name: c.Name, GivenName: c.GivenName, FamilyName: c.FamilyName,
		Email: c.Email, EmailVerified: c.EmailVerified, Birthdate: c.Birthdate,
	}
}

// Options configure a Manager.
type Options struct {
	AppURL       string        // where this app is served, e.g. http://localhost:8080
	ClientID     string        // the FusionAuth application id
	ClientSecret string        // its client secret
	RefreshTTL   time.Duration // the refresh token's life at the provider
	APIKey       string        // FusionAuth API key for refresh-token revocation; optional
	Sealer       *Sealer
	Provider     *Provider
	HTTPClient   *http.Client // for calls to the provider; its Timeout (TokenCallTimeout if 0) bounds each, or a request's wait for a refresh
	Now          func() time.Time
	Log          *slog.Logger
}

// A Manager loads, refreshes, writes and ends cookie sessions. It keeps no
// session state: any instance holding the same secrets serves any request.
type Manager struct {
	opts     Options
	cookies  Cookies
	verifier *Verifier
	refresh  *refresher
}

// NewManager returns a Manager.
func NewManager(o Options) *Manager {
	var client http.Client
	if o.HTTPClient != nil {
		client = *o.HTTPClient
	}
	if client.Timeout == 0 {
		client.Timeout = TokenCallTimeout // a hung provider must not hang the user's request
	}
	o.HTTPClient = &client
	m := &Manager{
		opts:     o,
		cookies:  NewCookies(o.AppURL),
		verifier: NewVerifier(o.Provider, o.Provider.Issuer(), o.ClientID, o.Now),
	}
	m.refresh = newRefresher(o.Now, RefreshGrace, client.Timeout)
	return m
}

// Now returns the time as the manager sees it (tests move it).
func (m *Manager) Now() time.Time { return m.opts.Now() }

// Cookies returns the cookie settings.
func (m *Manager) Cookies() Cookies { return m.cookies }

// Verifier returns the token verifier, for bearer tokens.
func (m *Manager) Verifier() *Verifier { return m.verifier }

// oauthConfig is built per use: the endpoints are known only after discovery.
func (m *Manager) oauthConfig() (*oauth2.Config, Metadata, error) {
	meta, err := m.opts.Provider.Metadata()
	if err != nil {
		return nil, meta, err
	}
	return &oauth2.Config{
		ClientID:     m.opts.ClientID,
		ClientSecret: m.opts.ClientSecret,
		RedirectURL:  m.opts.AppURL + "/callback",
		Scopes:       []string{"openid", "email", "profile", "offline_access"},
		Endpoint: oauth2.Endpoint{
			AuthURL:   meta.AuthorizationEndpoint,
			TokenURL:  meta.TokenEndpoint,
			AuthStyle: oauth2.AuthStyleInHeader,
		},
	}, meta, nil
}

// Load returns the request's session, refreshing its tokens when the access
// token is missing or about to expire (new cookies go on w). It returns
// ErrNoSession (cookies expired on w) or ErrProviderUnavailable (cookies kept).
func (m *Manager) Load(ctx context.Context, w http.ResponseWriter, r *http.Request) (*Session, error) {
	s, err := m.load(ctx, w, r)
	if errors.Is(err, ErrNoSession) {
		m.clear(w, r)
	}
	return s, err
}

func (m *Manager) load(ctx context.Context, w http.ResponseWriter, r *http.Request) (*Session, error) {
	now := m.opts.Now()
	access := m.cookies.Get(r, AccessCookie)
	user, ok := m.User(r)
	if !ok {
		// Without it there is nothing to show, nor a login to bind to.
		return nil, fmt.Errorf("%w: userinfo cookie missing, expired, unreadable or from before a logout", ErrNoSession)
	}
	var rc refreshCookie
	if err := m.open(r, RefreshCookie, &rc); err != nil || now.Unix() >= rc.Expires || rc.Subject != user.Subject {
		rc = refreshCookie{}
	}
	s := &Session{AccessToken: access, RefreshToken: rc.Token, User: user, Expires: time.Unix(user.Expires, 0)}

	var claims *Claims
	if access != "" {
		var err error
		claims, err = m.verifier.AccessToken(ctx, access)
		switch {
		case errors.Is(err, ErrKeysUnavailable):
			return nil, fmt.Errorf("%w: %w", ErrProviderUnavailable, err)
		case err != nil && !errors.Is(err, ErrExpired):
			m.opts.Log.Warn("session refused: invalid access token", "err", err)
			return nil, fmt.Errorf("%w: %w", ErrNoSession, err)
		case claims.Subject != user.Subject:
			m.opts.Log.Warn("session refused: access token and userinfo name different users")
			return nil, fmt.Errorf("%w: subject mismatch", ErrNoSession)
		case err == nil && claims.Expiry.Time().Sub(now) > RefreshMargin:
			s.Access = claims
			return s, nil
		}
	}
	if rc.Token == "" {
		return nil, fmt.Errorf("%w: access token expired and no refresh token", ErrNoSession)
	}
	err := m.refreshInto(ctx, w, s)
	switch {
	case err == nil:
		return s, nil
	case errors.Is(err, ErrProviderUnavailable) && claims != nil && now.Before(claims.Expiry.Time()):
		// Refresh was early; the current token still works: serve with it.
		m.opts.Log.Warn("refresh failed, serving with the current access token", "err", err)
		s.Access = claims
		return s, nil
	default:
		return nil, err
	}
}

// Refresh redeems the session's refresh token now, whatever the access
// token's expiry, and writes the new cookies on w. The session inspector's
// "Refresh now" button uses it. Errors are as Load's.
func (m *Manager) Refresh(ctx context.Context, w http.ResponseWriter, s *Session) error {
	err := ErrNoSession
	if s.RefreshToken != "" {
		err = m.refreshInto(ctx, w, s)
	}
	if errors.Is(err, ErrNoSession) {
		m.expireAll(w)
	}
	return err
}

// refreshInto refreshes s in place (once per refresh token, see refresher)
// and writes its cookies.
func (m *Manager) refreshInto(ctx context.Context, w http.ResponseWriter, s *Session) error {
	old, user := s.RefreshToken, s.User
	res, err := m.refresh.do(ctx, old, func(ctx context.Context) (*refreshed, error) {
		return m.redeem(ctx, old, user)
	})
	if err != nil {
		return err
	}
	s.AccessToken, s.Access, s.RefreshToken, s.User, s.Refreshed = res.access, res.claims, res.refreshToken, res.user, true
	if err := m.write(w, s, m.opts.Now()); err != nil {
		m.opts.Log.Error("refreshed tokens cannot be stored", "err", err)
		return fmt.Errorf("%w: %w", ErrNoSession, err)
	}
	return nil
}

// User returns the sealed userinfo cookie's content when it is present,
// genuine, unexpired, and not from before this browser's last logout,
// without looking at the tokens. Logout uses it to check the CSRF token
// without refreshing anything.
func (m *Manager) User(r *http.Request) (UserInfo, bool) {
	var user UserInfo
	if err := m.open(r, UserInfoCookie, &user); err != nil || m.opts.Now().Unix() >= user.Expires {
		return UserInfo{}, false
	}
	// A response that was in flight at logout may have set fresh cookies.
	if out, err := strconv.ParseInt(m.cookies.Get(r, LogoutCookie), 10, 64); err == nil && user.LoginAt <= out {
		return UserInfo{}, false
	}
	return user, true
}

// open reads and opens a sealed cookie into v.
func (m *Manager) open(r *http.Request, base string, v any) error {
	raw := m.cookies.Get(r, base)
	if raw == "" {
		return http.ErrNoCookie
	}
	plain, err := m.opts.Sealer.Open(base, raw)
	if err != nil {
		return err
	}
	return json.Unmarshal(plain, v)
}

// MaxCookieBytes bounds a cookie's name and value together: browsers keep
// at most 4096 bytes of name, value and attributes, and silently drop a
// larger cookie, which would send the user round the login loop forever.
const MaxCookieBytes = 4000

// write sets the session's cookies on w, or none of them when one would be
// too large for a browser to keep.
func (m *Manager) write(w http.ResponseWriter, s *Session, now time.Time) error {
	user := s.User
	user.Expires = s.Expires.Unix()
	values := map[string]string{AccessCookie: s.AccessToken}
	var err error
	if values[UserInfoCookie], err = m.seal(UserInfoCookie, user); err != nil {
		return err
	}
	if s.RefreshToken != "" {
		rc := refreshCookie{Token: s.RefreshToken, Subject: user.Subject, Expires: s.Expires.Unix()}
		if values[RefreshCookie], err = m.seal(RefreshCookie, rc); err != nil {
			return err
		}
	}
	for base, v := range values {
		if n := len(m.cookies.Name(base)) + len(v); n > MaxCookieBytes {
			return fmt.Errorf("tokens: %s would be %d bytes, more than a browser keeps (%d): trim the token's claims at the provider", base, n, MaxCookieBytes)
		}
	}
	m.cookies.Set(w, AccessCookie, s.AccessToken, s.Access.Expiry.Time(), now)
	for _, base := range []string{UserInfoCookie, RefreshCookie} {
		if v, ok := values[base]; ok {
			m.cookies.Set(w, base, v, s.Expires, now)
		}
	}
	return nil
}

// seal marshals v and seals it for the named cookie.
func (m *Manager) seal(base string, v any) (string, error) {
	plain, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("tokens: encoding %s: %w", base, err)
	}
	return m.opts.Sealer.Seal(base, plain)
}

// sessionCookies are the cookies that hold a session.
var sessionCookies = []string{AccessCookie, RefreshCookie, UserInfoCookie}

// expireAll expires every session cookie.
func (m *Manager) expireAll(w http.ResponseWriter) {
	for _, base := range sessionCookies {
		m.cookies.Expire(w, base)
	}
}

// clear expires the session cookies the request carries.
func (m *Manager) clear(w http.ResponseWriter, r *http.Request) {
	for _, base := range sessionCookies {
		if _, err := r.Cookie(m.cookies.Name(base)); err == nil {
			m.cookies.Expire(w, base)
		}
	}
}

// ExpireAccess drops the access cookie, so that the next request refreshes.
// The session inspector's "expire now" button uses it.
func (m *Manager) ExpireAccess(w http.ResponseWriter) {
	m.cookies.Expire(w, AccessCookie)
}

package e2e

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// An Authgear-shaped provider run by the certified zitadel/oidc library
// (pkg/op). The library builds, signs and checks every request and token;
// this file is only its storage, which decides what Authgear decides: the
// scopes are openid and offline_access, the ID token carries no profile,
// name and email come from the userinfo endpoint, and the access token (a
// JWT, as with Authgear's "Issue JWT as access token") has the issuer alone
// as its audience. The library gives both tokens the request's audience and
// adds the client id to the ID token's, so the access token's aud is
// [issuer] and the ID token's [issuer, client id] with azp the client id.

// startAuthgear serves the provider on a free port until the test ends.
func startAuthgear(t *testing.T, clientID, secret string) testProvider {
	t.Helper()
	return startZitadelOP(t, clientID, secret, op.AccessTokenTypeJWT)
}

// startZitadelOpaque is the library with its default kind of access token:
// opaque (op.AccessTokenTypeBearer, the token id and subject encrypted with
// the provider's key), readable only by the provider, at its userinfo and
// introspection endpoints. The tokens' audience is the client.
func startZitadelOpaque(t *testing.T, clientID, secret string) testProvider {
	t.Helper()
	return startZitadelOP(t, clientID, secret, op.AccessTokenTypeBearer)
}

func startZitadelOP(t *testing.T, clientID, secret string, kind op.AccessTokenType) testProvider {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	s := &authgearStorage{
		issuer: "http://" + ln.Addr().String(),
		client: &authgearClient{id: clientID, secret: secret, kind: kind},
		key:    key, kid: randomString(8),
		requests: map[string]*authgearRequest{}, codes: map[string]string{}, access: map[string]authgearAccess{},
		refresh: map[string]*authgearRequest{}, sessions: map[string]bool{},
	}
	cfg := &op.Config{CodeMethodS256: true, AuthMethodPost: true, GrantTypeRefreshToken: true}
	rand.Read(cfg.CryptoKey[:])
	provider, err := op.NewProvider(cfg, s, op.StaticIssuer(s.issuer), op.WithAllowInsecure())
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/login", s.loginPage(s.issuer+"/authorize/callback?id="))
	mux.Handle("/", provider)
	// The browser's session cookie at the provider, for logouts without id_token_hint.
	withSession := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c, err := r.Cookie(authgearCookie); err == nil {
			r = r.WithContext(context.WithValue(r.Context(), authgearSessionKey{}, c.Value))
		}
		mux.ServeHTTP(w, r)
	})
	s.rec = newRecorder(withSession, "/oauth/token")
	srv := &http.Server{Handler: s.rec, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return s
}

const authgearCookie = "authgear_session"

type authgearSessionKey struct{}

// authgearStorage is op.Storage in memory.
type authgearStorage struct {
	issuer string
	client *authgearClient
	key    *rsa.PrivateKey
	kid    string
	rec    *opRecorder

	mu       sync.Mutex
	requests map[string]*authgearRequest // by id
	codes    map[string]string           // code: request id
	access   map[string]authgearAccess   // by access token id
	refresh  map[string]*authgearRequest // live refresh tokens
	sessions map[string]bool             // login session id: alive
	revoked  int

	introspections int // introspection requests answered for known clients
}

// authgearAccess is what an access token stands for.
type authgearAccess struct {
	subject string
	exp     time.Time
	scopes  []string
}

// authgearRequest is an authorization request, and later the grant a
// refresh token stands for.
type authgearRequest struct {
	id, clientID, redirectURI, state, nonce, subject, sid string
	scopes                                                []string
	challenge                                             *oidc.CodeChallenge
	responseType                                          oidc.ResponseType
	responseMode                                          oidc.ResponseMode
	authTime                                              time.Time
	done                                                  bool
	audience                                              []string
}

func (r *authgearRequest) GetID() string                         { return r.id }
func (r *authgearRequest) GetACR() string                        { return "" }
func (r *authgearRequest) GetAMR() []string                      { return []string{"pwd"} }
func (r *authgearRequest) GetAudience() []string                 { return r.audience }
func (r *authgearRequest) GetAuthTime() time.Time                { return r.authTime }
func (r *authgearRequest) GetClientID() string                   { return r.clientID }
func (r *authgearRequest) GetCodeChallenge() *oidc.CodeChallenge { return r.challenge }
func (r *authgearRequest) GetNonce() string                      { return r.nonce }
func (r *authgearRequest) GetRedirectURI() string                { return r.redirectURI }
func (r *authgearRequest) GetResponseType() oidc.ResponseType    { return r.responseType }
func (r *authgearRequest) GetResponseMode() oidc.ResponseMode    { return r.responseMode }
func (r *authgearRequest) GetScopes() []string                   { return r.scopes }
func (r *authgearRequest) GetState() string                      { return r.state }
func (r *authgearRequest) GetSubject() string                    { return r.subject }
func (r *authgearRequest) Done() bool                            { return r.done }
func (r *authgearRequest) SetCurrentScopes(scopes []string)      { r.scopes = scopes }

// loginPage is the provider's login form; on success it hands the request
// back to the library's callback, which redirects to the app with a code.
func (s *authgearStorage) loginPage(callback string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.URL.Query().Get("authRequestID")
		if r.Method != http.MethodPost {
			fmt.Fprint(w, `<form method="post"><input name="username"><input name="password" type="password"><button>Continue</button></form>`)
			return
		}
		if r.PostFormValue("username") != opUser.login || r.PostFormValue("password") != opUser.password {
			http.Error(w, "wrong username or password", http.StatusUnauthorized)
			return
		}
		sid := randomString(12)
		s.mu.Lock()
		req, ok := s.requests[id]
		if ok {
			req.subject, req.authTime, req.done, req.sid = opUser.sub, time.Now(), true, sid
			s.sessions[sid] = true
		}
		s.mu.Unlock()
		if !ok {
			http.Error(w, "no such login", http.StatusBadRequest)
			return
		}
		http.SetCookie(w, &http.Cookie{Name: authgearCookie, Value: sid, Path: "/", HttpOnly: true})
		http.Redirect(w, r, callback+url.QueryEscape(id), http.StatusFound)
	})
}

func (s *authgearStorage) CreateAuthRequest(_ context.Context, ar *oidc.AuthRequest, _ string) (op.AuthRequest, error) {
	audience := []string{s.issuer} // Authgear's
	if s.client.kind == op.AccessTokenTypeBearer {
		audience = []string{ar.ClientID}
	}
	req := &authgearRequest{id: randomString(16), clientID: ar.ClientID, redirectURI: ar.RedirectURI, state: ar.State, nonce: ar.Nonce,
		scopes: ar.Scopes, responseType: ar.ResponseType, responseMode: ar.ResponseMode, audience: audience}
	if ar.CodeChallenge != "" {
		req.challenge = &oidc.CodeChallenge{Challenge: ar.CodeChallenge, Method: ar.CodeChallengeMethod}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests[req.id] = req
	return req, nil
}

func (s *authgearStorage) AuthRequestByID(_ context.Context, id string) (op.AuthRequest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if req, ok := s.requests[id]; ok {
		return req, nil
	}
	return nil, errors.New("authgear: no such request")
}

func (s *authgearStorage) AuthRequestByCode(ctx context.Context, code string) (op.AuthRequest, error) {
	s.mu.Lock()
	id, ok := s.codes[code]
	delete(s.codes, code) // codes are single use
	s.mu.Unlock()
	if !ok {
		return nil, errors.New("authgear: no such code")
	}
	return s.AuthRequestByID(ctx, id)
}

func (s *authgearStorage) SaveAuthCode(_ context.Context, id, code string) error {
	s.rec.remember(code)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.codes[code] = id
	return nil
}

func (s *authgearStorage) DeleteAuthRequest(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.requests, id)
	return nil
}

func (s *authgearStorage) CreateAccessToken(_ context.Context, req op.TokenRequest) (string, time.Time, error) {
	id := randomString(16)
	exp := time.Now().Add(tokenLife)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.access[id] = authgearAccess{subject: req.GetSubject(), exp: exp, scopes: req.GetScopes()}
	return id, exp, nil
}

// CreateAccessAndRefreshTokens rotates the refresh token: the one redeemed is spent.
func (s *authgearStorage) CreateAccessAndRefreshTokens(ctx context.Context, req op.TokenRequest, current string) (string, string, time.Time, error) {
	id, exp, err := s.CreateAccessToken(ctx, req)
	if err != nil {
		return "", "", time.Time{}, err
	}
	grant, ok := req.(*authgearRequest)
	if !ok {
		return "", "", time.Time{}, fmt.Errorf("authgear: unexpected request %T", req)
	}
	rt := randomString(32)
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.refresh, current)
	copied := *grant
	s.refresh[rt] = &copied
	return id, rt, exp, nil
}

func (s *authgearStorage) TokenRequestByRefreshToken(_ context.Context, rt string) (op.RefreshTokenRequest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if grant, ok := s.refresh[rt]; ok {
		return grant, nil
	}
	return nil, op.ErrInvalidRefreshToken
}

func (s *authgearStorage) TerminateSession(_ context.Context, userID, _ string) error {
	return errors.New("authgear: TerminateSessionFromRequest ends sessions")
}

// TerminateSessionFromRequest ends the login session the ID token hint
// names, else the one the browser's cookie at the provider names.
func (s *authgearStorage) TerminateSessionFromRequest(ctx context.Context, req *op.EndSessionRequest) (string, error) {
	sid, _ := ctx.Value(authgearSessionKey{}).(string)
	if req.IDTokenHintClaims != nil && req.IDTokenHintClaims.SessionID != "" {
		sid = req.IDTokenHintClaims.SessionID
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.sessions[sid]; ok {
		s.sessions[sid] = false
	}
	return req.RedirectURI, nil
}

func (s *authgearStorage) RevokeToken(_ context.Context, token, _, clientID string) *oidc.Error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if grant, ok := s.refresh[token]; ok && grant.clientID == clientID {
		delete(s.refresh, token)
		s.revoked++
	}
	return nil
}

func (s *authgearStorage) GetRefreshTokenInfo(_ context.Context, clientID, token string) (string, string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if grant, ok := s.refresh[token]; ok && grant.clientID == clientID {
		return grant.subject, token, nil
	}
	return "", "", op.ErrInvalidRefreshToken
}

type authgearKey struct {
	id  string
	key any
}

func (k authgearKey) SignatureAlgorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (k authgearKey) Algorithm() jose.SignatureAlgorithm          { return jose.RS256 }
func (k authgearKey) Key() any                                    { return k.key }
func (k authgearKey) ID() string                                  { return k.id }
func (k authgearKey) Use() string                                 { return "sig" }

func (s *authgearStorage) SigningKey(context.Context) (op.SigningKey, error) {
	return authgearKey{s.kid, s.key}, nil
}

func (s *authgearStorage) SignatureAlgorithms(context.Context) ([]jose.SignatureAlgorithm, error) {
	return []jose.SignatureAlgorithm{jose.RS256}, nil
}

func (s *authgearStorage) KeySet(context.Context) ([]op.Key, error) {
	return []op.Key{authgearKey{s.kid, &s.key.PublicKey}}, nil
}

func (s *authgearStorage) GetClientByClientID(_ context.Context, id string) (op.Client, error) {
	if id != s.client.id {
		return nil, errors.New("authgear: no such client")
	}
	return s.client, nil
}

func (s *authgearStorage) AuthorizeClientIDSecret(_ context.Context, id, secret string) error {
	if id != s.client.id || secret != s.client.secret {
		return errors.New("authgear: wrong client credentials")
	}
	return nil
}

// SetUserinfoFromScopes fills the ID token: Authgear's carries no profile.
func (s *authgearStorage) SetUserinfoFromScopes(_ context.Context, info *oidc.UserInfo, userID, _ string, _ []string) error {
	info.Subject = userID
	return nil
}

// SetUserinfoFromToken answers the userinfo endpoint, where the profile is.
func (s *authgearStorage) SetUserinfoFromToken(_ context.Context, info *oidc.UserInfo, tokenID, subject, _ string) error {
	s.mu.Lock()
	a, ok := s.access[tokenID]
	s.mu.Unlock()
	if !ok || a.subject != opUser.sub || time.Now().After(a.exp) {
		return errors.New("authgear: unknown or expired access token")
	}
	info.Subject, info.Name, info.Email, info.EmailVerified = opUser.sub, opUser.name, opUser.email, true
	return nil
}

// SetIntrospectionFromToken answers RFC 7662 introspection for a live
// access token: active, with its subject, client, audience, scope and expiry.
func (s *authgearStorage) SetIntrospectionFromToken(_ context.Context, resp *oidc.IntrospectionResponse, tokenID, subject, clientID string) error {
	s.mu.Lock()
	a, ok := s.access[tokenID]
	s.introspections++
	s.mu.Unlock()
	if !ok || a.subject != subject || time.Now().After(a.exp) {
		return errors.New("authgear: unknown or expired access token")
	}
	resp.Active, resp.Subject, resp.ClientID = true, subject, s.client.id
	resp.Issuer, resp.Audience, resp.Scope = s.issuer, []string{s.client.id}, a.scopes
	resp.Expiration, resp.IssuedAt = oidc.FromTime(a.exp), oidc.FromTime(a.exp.Add(-tokenLife))
	resp.TokenType = oidc.BearerToken
	return nil
}

func (s *authgearStorage) GetPrivateClaimsFromScopes(context.Context, string, string, []string) (map[string]any, error) {
	return nil, nil
}

func (s *authgearStorage) GetKeyByIDAndClientID(context.Context, string, string) (*jose.JSONWebKey, error) {
	return nil, errors.New("authgear: no JWT profile clients")
}

func (s *authgearStorage) ValidateJWTProfileScopes(_ context.Context, _ string, scopes []string) ([]string, error) {
	return scopes, nil
}

func (s *authgearStorage) Health(context.Context) error { return nil }

func (s *authgearStorage) issuerURL() string     { return s.issuer }
func (s *authgearStorage) recorder() *opRecorder { return s.rec }

func (s *authgearStorage) liveSessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, alive := range s.sessions {
		if alive {
			n++
		}
	}
	return n
}

func (s *authgearStorage) revocations() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.revoked
}

// authgearClient is the app's registration: a confidential web client.
type authgearClient struct {
	id, secret string
	kind       op.AccessTokenType
}

func (c *authgearClient) GetID() string { return c.id }

// RedirectURIs is empty: RedirectURIGlobs takes the test's free port.
func (c *authgearClient) RedirectURIs() []string           { return nil }
func (c *authgearClient) PostLogoutRedirectURIs() []string { return nil }
func (c *authgearClient) RedirectURIGlobs() []string       { return []string{"http://127.0.0.1:*/callback"} }
func (c *authgearClient) PostLogoutRedirectURIGlobs() []string {
	return []string{"http://127.0.0.1:*/*", "http://127.0.0.1:*"}
}
func (c *authgearClient) ApplicationType() op.ApplicationType { return op.ApplicationTypeWeb }
func (c *authgearClient) AuthMethod() oidc.AuthMethod         { return oidc.AuthMethodBasic }
func (c *authgearClient) ResponseTypes() []oidc.ResponseType {
	return []oidc.ResponseType{oidc.ResponseTypeCode}
}
func (c *authgearClient) LoginURL(id string) string {
	return "/login?authRequestID=" + url.QueryEscape(id)
}
func (c *authgearClient) AccessTokenType() op.AccessTokenType  { return c.kind }
func (c *authgearClient) IDTokenLifetime() time.Duration       { return tokenLife }
func (c *authgearClient) DevMode() bool                        { return true } // http on loopback
func (c *authgearClient) IsScopeAllowed(string) bool           { return false }
func (c *authgearClient) IDTokenUserinfoClaimsAssertion() bool { return false }
func (c *authgearClient) ClockSkew() time.Duration             { return 0 }
func (c *authgearClient) RestrictAdditionalIdTokenScopes() func([]string) []string {
	return func(scopes []string) []string { return scopes }
}
func (c *authgearClient) RestrictAdditionalAccessTokenScopes() func([]string) []string {
	return func(scopes []string) []string { return scopes }
}
func (c *authgearClient) GrantTypes() []oidc.GrantType {
	return []oidc.GrantType{oidc.GrantTypeCode, oidc.GrantTypeRefreshToken}
}

var (
	_ op.Storage                        = (*authgearStorage)(nil)
	_ op.CanTerminateSessionFromRequest = (*authgearStorage)(nil)
	_ op.HasRedirectGlobs               = (*authgearClient)(nil)
)

// Package idp is an embedded stand-in for FusionAuth, for development and
// tests: one process, everything in memory, nothing persisted, no admin UI,
// no hardening. It is not an identity server.
//
// It is configured from the same kickstart file docker compose feeds the
// real FusionAuth (API keys, the signing key, the tenant's issuer, the
// application, the seeded users) and serves FusionAuth's paths with
// FusionAuth's behaviour where this app depends on it: discovery URLs built
// from the request's host, RS256 JWTs with FusionAuth's claims, opaque
// refresh tokens under the Reusable or OneTimeUse policy, RFC 6749 errors,
// an SSO session cookie, and refresh-token revocation by API key.
//
// Tests steer it with RotateKey, FailTokens and TokenCalls, and see the
// secrets it hands out through Options.Witness.
package idp

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
)

// Options adjust a stand-in to where it runs.
type Options struct {
	// Issuer replaces the kickstart's tenant issuer, for a stand-in on
	// another address (tests listen on free ports).
	Issuer string
	// ExtraRedirectURLs are accepted besides the application's
	// authorizedRedirectURLs: the running app's own callback.
	ExtraRedirectURLs []string
	// LogoutURL replaces the applications' logoutURL: the running app's
	// own logout on a free port, which the logout page loads in a frame.
	LogoutURL string
	// RefreshGracePeriod, when positive, replaces every application's
	// one-time-use grace period (gracePeriodInSeconds in the kickstart);
	// NoGracePeriod turns it off. Zero keeps the kickstart's.
	RefreshGracePeriod time.Duration
	Now                func() time.Time // defaults to time.Now
	Log                *slog.Logger
	// Witness, when set, is called with every secret the stand-in issues
	// (kind "code", "access_token", "id_token", "refresh_token",
	// "sso_session") or is sent ("code_verifier", "client_secret"), so that
	// tests can look for them where they must never appear, such as logs.
	Witness func(kind, value string)
}

// NoGracePeriod, as Options.RefreshGracePeriod, makes every reuse of a spent
// one-time-use refresh token invalid_grant, whatever the kickstart says.
const NoGracePeriod time.Duration = -1

// Failure is how the token endpoint misbehaves, for tests.
type Failure struct {
	Mode  FailureMode
	Delay time.Duration // for Slow
}

// FailureMode names a way for the token endpoint to fail.
type FailureMode int

// The token endpoint's failure modes.
const (
	Healthy   FailureMode = iota
	Down                  // the connection is closed before any work is done
	ServerErr             // 503 with a JSON error body, before any work is done
	// Slow does the work (a code is spent, a refresh token rotated) and
	// answers only after Failure.Delay: a client that gives up first never
	// sees the new tokens, as with a real provider that is slow.
	Slow
	// DropAnswer does the work and closes the connection without
	// answering, as when the answer is lost on the way back.
	DropAnswer
)

// String names the mode, for logs and test names.
func (m FailureMode) String() string {
	switch m {
	case Healthy:
		return "Healthy"
	case Down:
		return "Down"
	case ServerErr:
		return "ServerErr"
	case Slow:
		return "Slow"
	case DropAnswer:
		return "DropAnswer"
	}
	return fmt.Sprintf("FailureMode(%d)", int(m))
}

// Server is the stand-in. Its methods are safe for concurrent use.
type Server struct {
	ks             *Kickstart
	issuer         string
	extra          []string
	logoutOverride string
	grace          time.Duration // Options.RefreshGracePeriod
	now            func() time.Time
	log            *slog.Logger
	witness        func(kind, value string)
	users          map[string]*User // by lower-case email
	tenantID       string

	mu       sync.Mutex
	keys     []*signingKey // all published
	rotated  bool          // after RotateKey, the newest key signs everything
	codes    map[string]*grant
	refresh  map[string]*refreshToken
	sessions map[string]*ssoSession
	failure  Failure
	calls    map[string]int
	// limit caps codes, SSO sessions and refresh tokens each; expired ones
	// are swept at least every sweepEvery, and at the cap the oldest go.
	limit     int
	lastSweep time.Time

	csrfKey []byte // signs the login form's tokens (csrfToken)

	// The refused login forms since the last warning about them, and when
	// that was: anyone can post one, so they are warned about once per
	// refusedWarnEvery, with the count.
	refusedForms    int
	refusedWarnedAt time.Time
}

// refusedWarnEvery paces the warning about refused login forms.
const refusedWarnEvery = 10 * time.Second

// refusedForm counts a refused login form and reports whether to warn
// about it, with how many there were since the last warning.
func (s *Server) refusedForm() (int, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refusedForms++
	now := s.now()
	if !s.refusedWarnedAt.IsZero() && now.Sub(s.refusedWarnedAt) < refusedWarnEvery {
		return 0, false
	}
	n := s.refusedForms
	s.refusedForms, s.refusedWarnedAt = 0, now
	return n, true
}

// Bounds on what the stand-in keeps in memory.
const (
	defaultLimit = 10000
	sweepEvery   = time.Minute
	// ssoTTL bounds an SSO session here (the stand-in's choice: FusionAuth's
	// lifetime depends on tenant settings it does not read).
	ssoTTL = 24 * time.Hour
)

type signingKey struct {
	id      string
	private *rsa.PrivateKey
}

// New builds a stand-in from a kickstart. It generates the signing keys.
func New(ks *Kickstart, o Options) (*Server, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		ks: ks, issuer: strings.TrimSuffix(or(o.Issuer, ks.Issuer), "/"), extra: o.ExtraRedirectURLs, logoutOverride: o.LogoutURL,
		grace: o.RefreshGracePeriod, now: o.Now, log: o.Log, witness: o.Witness, users: map[string]*User{}, tenantID: newUUID(),
		codes: map[string]*grant{}, refresh: map[string]*refreshToken{}, sessions: map[string]*ssoSession{},
		calls: map[string]int{}, limit: defaultLimit, csrfKey: make([]byte, 32),
	}
	if _, err := rand.Read(s.csrfKey); err != nil {
		return nil, fmt.Errorf("idp: making the form key: %w", err)
	}
	for _, u := range ks.Users {
		s.users[strings.ToLower(u.Email)] = u
	}
	for _, spec := range ks.SigningKeys {
		k, err := rsa.GenerateKey(rand.Reader, spec.Length)
		if err != nil {
			return nil, fmt.Errorf("idp: generating key %s: %w", spec.ID, err)
		}
		s.keys = append(s.keys, &signingKey{id: spec.ID, private: k})
	}
	return s, nil
}

// witnessed reports a secret to Options.Witness, if set; empty values are
// not secrets.
func (s *Server) witnessed(kind, value string) {
	if s.witness != nil && value != "" {
		s.witness(kind, value)
	}
}

// Issuer returns the issuer the stand-in puts in tokens.
func (s *Server) Issuer() string { return s.issuer }

// Handler serves FusionAuth's paths.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", s.discovery)
	mux.HandleFunc("GET /.well-known/jwks.json", s.jwks)
	mux.HandleFunc("GET /oauth2/authorize", s.authorize)
	mux.HandleFunc("POST /oauth2/authorize", s.authorize)
	mux.HandleFunc("POST /oauth2/token", s.token)
	mux.HandleFunc("GET /oauth2/userinfo", s.userinfo)
	mux.HandleFunc("POST /oauth2/userinfo", s.userinfo)
	mux.HandleFunc("GET /oauth2/logout", s.logout)
	mux.HandleFunc("POST /oauth2/logout", s.logout)
	mux.HandleFunc("DELETE /api/jwt/refresh", s.revoke)
	mux.HandleFunc("GET /api/status", s.status)
	mux.HandleFunc("GET /api/health", s.status)
	mux.HandleFunc("GET /favicon.svg", favicon)
	return mux
}

// RotateKey adds a new signing key and signs every later token with it.
// The old keys stay in the JWKS, as FusionAuth keeps them.
func (s *Server) RotateKey() (kid string, err error) {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return "", fmt.Errorf("idp: generating key: %w", err)
	}
	kid = newUUID()
	s.mu.Lock()
	s.keys = append(s.keys, &signingKey{id: kid, private: k})
	s.rotated = true
	s.mu.Unlock()
	return kid, nil
}

// FailTokens makes the token endpoint fail as f says, until called with
// Failure{} (Healthy).
func (s *Server) FailTokens(f Failure) {
	s.mu.Lock()
	s.failure = f
	s.mu.Unlock()
}

// TokenCalls returns how many token requests came with the grant type.
// Grant types the stand-in does not know are counted together under
// "other", so that a client cannot grow the counter without bound.
func (s *Server) TokenCalls(grantType string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[callBucket(grantType)]
}

// callBucket is the counter a grant type is counted under.
func callBucket(grantType string) string {
	switch grantType {
	case "authorization_code", "refresh_token", "client_credentials", "password":
		return grantType
	}
	return "other"
}

// makeRoomLocked sweeps expired codes, sessions and refresh tokens when a
// minute has passed or a map is full, then drops the oldest entries of
// any map still at the limit. The caller holds s.mu and is about to add.
func (s *Server) makeRoomLocked() {
	now := s.now()
	full := len(s.codes) >= s.limit || len(s.sessions) >= s.limit || len(s.refresh) >= s.limit
	if !full && now.Sub(s.lastSweep) < sweepEvery {
		return
	}
	s.lastSweep = now
	sweep(s.codes, func(g *grant) time.Time { return g.expires }, now, s.limit)
	sweep(s.sessions, func(ss *ssoSession) time.Time { return ss.expires }, now, s.limit)
	sweep(s.refresh, func(rt *refreshToken) time.Time {
		if !rt.spent.IsZero() {
			return rt.spent.Add(s.maxGracePeriod())
		}
		return rt.expires
	}, now, s.limit)
}

// sweep deletes the entries of m that have ended, then the ones ending
// soonest until m has room for one more.
func sweep[V any](m map[string]V, ends func(V) time.Time, now time.Time, limit int) {
	for k, v := range m {
		if !now.Before(ends(v)) {
			delete(m, k)
		}
	}
	for len(m) >= limit {
		var oldest string
		var at time.Time
		for k, v := range m {
			if e := ends(v); oldest == "" || e.Before(at) {
				oldest, at = k, e
			}
		}
		delete(m, oldest)
	}
}

// maxGracePeriod is the longest any application's spent tokens are kept.
func (s *Server) maxGracePeriod() time.Duration {
	var longest time.Duration
	for _, app := range s.ks.Applications {
		longest = max(longest, s.gracePeriod(app))
	}
	return longest
}

// baseURL is how FusionAuth builds discovery URLs: from the request's host.
func baseURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil || r.Header.Get("X-Forwarded-Proto") == "https" {
		scheme = "https"
	}
	host := r.Host
	if fh := r.Header.Get("X-Forwarded-Host"); fh != "" {
		host = fh
	}
	return scheme + "://" + host
}

func (s *Server) discovery(w http.ResponseWriter, r *http.Request) {
	base := baseURL(r)
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                s.issuer,
		"authorization_endpoint":                base + "/oauth2/authorize",
		"token_endpoint":                        base + "/oauth2/token",
		"userinfo_endpoint":                     base + "/oauth2/userinfo",
		"jwks_uri":                              base + "/.well-known/jwks.json",
		"end_session_endpoint":                  base + "/oauth2/logout",
		"response_types_supported":              []string{"code"},
		"grant_types_supported":                 []string{"authorization_code", "refresh_token"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"scopes_supported":                      []string{"openid", "email", "profile", "offline_access"},
		"code_challenge_methods_supported":      []string{"S256"},
		"token_endpoint_auth_methods_supported": []string{"client_secret_basic", "client_secret_post"},
	})
}

func (s *Server) jwks(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	keys := slices.Clone(s.keys)
	s.mu.Unlock()
	set := jwk.NewSet()
	for _, k := range keys {
		pub, err := jwk.Import(&k.private.PublicKey)
		if err == nil {
			err = errors.Join(pub.Set(jwk.KeyIDKey, k.id), pub.Set(jwk.AlgorithmKey, "RS256"), pub.Set(jwk.KeyUsageKey, "sig"))
		}
		if err == nil {
			err = set.AddKey(pub)
		}
		if err != nil {
			s.log.Error("idp: publishing a key", "err", err)
			http.Error(w, "key error", http.StatusInternalServerError)
			return
		}
	}
	writeJSON(w, http.StatusOK, set)
}

func (s *Server) status(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// revoke is DELETE /api/jwt/refresh: revoke one refresh token (token=, in
// the query or a form body) or all of a user's (userId=). Auth: an API key.
func (s *Server) revoke(w http.ResponseWriter, r *http.Request) {
	if !s.validAPIKey(r.Header.Get("Authorization")) {
		writeJSON(w, http.StatusUnauthorized, map[string]any{})
		return
	}
	params := r.URL.Query()
	if body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10)); err == nil && len(body) > 0 {
		if form, err := url.ParseQuery(string(body)); err == nil {
			for k, v := range form {
				params[k] = v
			}
		}
	}
	token, userID := params.Get("token"), params.Get("userId")
	if token == "" && userID == "" {
		writeJSON(w, http.StatusBadRequest, fieldError("token", "[missing]token"))
		return
	}
	s.mu.Lock()
	n := 0
	for t, rt := range s.refresh {
		if t == token || (userID != "" && rt.userID == userID) {
			delete(s.refresh, t)
			if rt.spent.IsZero() {
				n++
			}
		}
	}
	s.mu.Unlock()
	if n == 0 {
		writeJSON(w, http.StatusNotFound, map[string]any{})
		return
	}
	w.WriteHeader(http.StatusOK)
}

func (s *Server) validAPIKey(got string) bool {
	for _, k := range s.ks.APIKeys {
		if got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(k)) == 1 {
			return true
		}
	}
	return false
}

func fieldError(field, code string) map[string]any {
	return map[string]any{"fieldErrors": map[string]any{field: []map[string]string{{"code": code}}}}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// oauthError writes an RFC 6749 section 5.2 error.
func oauthError(w http.ResponseWriter, status int, code, description string) {
	writeJSON(w, status, map[string]string{"error": code, "error_description": description})
}

func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

package idp

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jws"
)

type refreshToken struct {
	id       string
	clientID string
	userID   string
	scope    string
	authTime time.Time
	expires  time.Time
	// A one-time-use token, once redeemed, stays behind as spent (until its
	// grace period ends) with the token that replaced it.
	spent time.Time
	next  string
}

// answer is a token endpoint response, computed before it is written so
// that the failure modes can do the work and then delay or drop it.
type answer struct {
	status int
	body   map[string]any
	header http.Header
}

func errorAnswer(status int, code, description string) answer {
	return answer{status: status, body: map[string]any{"error": code, "error_description": description}}
}

// token is POST /oauth2/token: authorization_code (with PKCE) and refresh_token.
func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", "the request body could not be read")
		return
	}
	grantType := r.PostForm.Get("grant_type")
	s.mu.Lock()
	s.calls[callBucket(grantType)]++
	failure := s.failure
	s.mu.Unlock()
	// Down and ServerErr fail before any work; Slow and DropAnswer after it,
	// as a provider that is slow or loses the answer on the way back.
	switch failure.Mode {
	case Down:
		dropConnection(w)
		return
	case ServerErr:
		oauthError(w, http.StatusServiceUnavailable, "server_error", "the stand-in was told to fail")
		return
	}
	a := s.grant(r, grantType)
	switch failure.Mode {
	case Slow:
		select {
		case <-time.After(failure.Delay):
		case <-r.Context().Done():
			return // the client gave up; what was done stays done
		}
	case DropAnswer:
		dropConnection(w)
		return
	}
	for k, v := range a.header {
		w.Header()[k] = v
	}
	writeJSON(w, a.status, a.body)
}

// dropConnection closes the connection without an answer.
func dropConnection(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			conn.Close()
			return
		}
	}
	panic(http.ErrAbortHandler)
}

// grant authenticates the client and redeems the grant.
func (s *Server) grant(r *http.Request, grantType string) answer {
	app, ok := s.authenticateClient(r)
	if !ok {
		a := errorAnswer(http.StatusUnauthorized, "invalid_client", "client authentication failed")
		a.header = http.Header{"Www-Authenticate": {`Basic realm="fusionauth"`}}
		return a
	}
	if !slices.Contains(app.EnabledGrants, grantType) {
		if grantType == "authorization_code" || grantType == "refresh_token" {
			return errorAnswer(http.StatusBadRequest, "unauthorized_client", "grant type not enabled for this application")
		}
		return errorAnswer(http.StatusBadRequest, "unsupported_grant_type", "unsupported grant_type")
	}
	if grantType == "authorization_code" {
		return s.exchangeCode(r, app)
	}
	return s.redeemRefresh(r, app)
}

// authenticateClient checks client_secret_basic or client_secret_post.
func (s *Server) authenticateClient(r *http.Request) (*Application, bool) {
	id, secret, basic := r.BasicAuth()
	if basic {
		// RFC 6749 section 2.3.1: both are form-encoded inside the header.
		id, _ = url.QueryUnescape(id)
		secret, _ = url.QueryUnescape(secret)
	} else {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	s.witnessed("client_secret", secret)
	app := s.application(id)
	if app == nil {
		return nil, false
	}
	if app.ClientAuthPolicy == "NotRequired" && secret == "" {
		return app, true
	}
	return app, secret != "" && subtle.ConstantTimeCompare([]byte(secret), []byte(app.ClientSecret)) == 1
}

func (s *Server) exchangeCode(r *http.Request, app *Application) answer {
	code := r.PostForm.Get("code")
	s.witnessed("code_verifier", r.PostForm.Get("code_verifier"))
	s.mu.Lock()
	g := s.codes[code]
	delete(s.codes, code) // one use, whatever happens next
	s.mu.Unlock()
	switch {
	case g == nil || s.now().After(g.expires):
		return errorAnswer(http.StatusBadRequest, "invalid_grant", "the code is unknown, used or expired")
	case g.clientID != app.ID:
		return errorAnswer(http.StatusBadRequest, "invalid_grant", "the code was issued to another client")
	case g.redirectURI != r.PostForm.Get("redirect_uri"):
		return errorAnswer(http.StatusBadRequest, "invalid_grant", "redirect_uri differs from the authorization request's")
	}
	if g.challenge != "" {
		sum := sha256.Sum256([]byte(r.PostForm.Get("code_verifier")))
		if subtle.ConstantTimeCompare([]byte(base64.RawURLEncoding.EncodeToString(sum[:])), []byte(g.challenge)) != 1 {
			return errorAnswer(http.StatusBadRequest, "invalid_grant", "code_verifier does not match the code_challenge")
		}
	}
	user := s.userByID(g.userID)
	if user == nil {
		return errorAnswer(http.StatusBadRequest, "invalid_grant", "the user no longer exists")
	}
	rt := &refreshToken{id: newUUID(), clientID: app.ID, userID: user.ID, scope: g.scope,
		authTime: g.authTime, expires: s.now().Add(app.RefreshTokenTTL)}
	token := ""
	if app.GenerateRefreshTokens && slices.Contains(app.EnabledGrants, "refresh_token") && slices.Contains(strings.Fields(g.scope), "offline_access") {
		token = randomToken()
		s.mu.Lock()
		s.makeRoomLocked()
		s.refresh[token] = rt
		s.mu.Unlock()
	}
	return s.issue(app, user, rt, token, []string{"authorization_code"}, "PASSWORD", g.nonce, code)
}

// redeemRefresh is the refresh_token grant. Under OneTimeUse the token is
// rotated; reusing the previous token within the application's grace
// period answers with the current one (not rotated again), as FusionAuth
// does for clustered clients whose requests race.
func (s *Server) redeemRefresh(r *http.Request, app *Application) answer {
	token := r.PostForm.Get("refresh_token")
	now := s.now()
	s.mu.Lock()
	rt := s.refresh[token]
	current := token
	if rt != nil && !rt.spent.IsZero() {
		next := s.refresh[rt.next]
		if now.Before(rt.spent.Add(s.gracePeriod(app))) && next != nil && next.spent.IsZero() {
			rt, current = next, rt.next
		} else {
			rt = nil // spent: reuse outside the grace period is invalid_grant
		}
	} else if rt != nil && rt.clientID == app.ID && now.Before(rt.expires) && app.RefreshTokenUsage == "OneTimeUse" {
		next := *rt
		next.id = newUUID() // Fixed expiration: the rotated token keeps its predecessor's end
		current = randomToken()
		s.makeRoomLocked()
		s.refresh[current] = &next
		rt.spent, rt.next = now, current
		rt = &next
	}
	s.mu.Unlock()
	switch {
	case rt == nil:
		return errorAnswer(http.StatusBadRequest, "invalid_grant", "the refresh token is unknown, revoked or spent")
	case rt.clientID != app.ID:
		return errorAnswer(http.StatusBadRequest, "invalid_grant", "the refresh token was issued to another client")
	case !now.Before(rt.expires):
		return errorAnswer(http.StatusBadRequest, "invalid_grant", "the refresh token has expired")
	}
	user := s.userByID(rt.userID)
	if user == nil {
		return errorAnswer(http.StatusBadRequest, "invalid_grant", "the user no longer exists")
	}
	return s.issue(app, user, rt, current, []string{"authorization_code", "refresh_token"}, "REFRESH_TOKEN", "", "")
}

// gracePeriod is how long a spent one-time-use token of app may be reused.
func (s *Server) gracePeriod(app *Application) time.Duration {
	switch {
	case s.grace < 0:
		return 0
	case s.grace > 0:
		return s.grace
	}
	return app.RefreshGracePeriod
}

// issue mints the tokens and builds the token response. refreshToken is
// the refresh token to hand back ("" for none); code is the authorization
// code being exchanged, for c_hash.
func (s *Server) issue(app *Application, user *User, rt *refreshToken, refreshToken string, gty []string, authType, nonce, code string) answer {
	now := s.now()
	scopes := strings.Fields(rt.scope)
	base := map[string]any{
		"aud": app.ID, "iss": s.issuer, "sub": user.ID, "iat": now.Unix(),
		"exp": now.Add(app.AccessTokenTTL).Unix(), "auth_time": rt.authTime.Unix(),
		"tid": s.tenantID, "sid": rt.id, "scope": rt.scope,
		"authenticationType": authType,
	}
	// applicationId and roles are the access token's only (FusionAuth has
	// left them out of ID tokens since 1.24); sid is the refresh token's id.
	access := clone(base)
	access["jti"], access["applicationId"] = newUUID(), app.ID
	if roles := user.Registrations[app.ID]; len(roles) > 0 {
		access["roles"] = roles
	}
	accessJWT, err := s.sign(access, app.AccessTokenKeyID, gty)
	if err != nil {
		s.log.Error("idp: signing an access token", "err", err)
		return errorAnswer(http.StatusInternalServerError, "server_error", "signing failed")
	}
	s.witnessed("access_token", accessJWT)
	resp := map[string]any{
		"access_token": accessJWT, "expires_in": int(app.AccessTokenTTL.Seconds()),
		"token_type": "Bearer", "userId": user.ID, "scope": rt.scope,
	}
	if slices.Contains(scopes, "openid") {
		id := clone(base)
		id["jti"] = newUUID()
		if nonce != "" {
			id["nonce"] = nonce
		}
		id["at_hash"] = halfHash(accessJWT)
		if code != "" {
			id["c_hash"] = halfHash(code)
		}
		for k, v := range profileClaims(user, scopes) {
			id[k] = v
		}
		idJWT, err := s.sign(id, app.IDTokenKeyID, gty)
		if err != nil {
			s.log.Error("idp: signing an ID token", "err", err)
			return errorAnswer(http.StatusInternalServerError, "server_error", "signing failed")
		}
		s.witnessed("id_token", idJWT)
		resp["id_token"] = idJWT
	}
	if refreshToken != "" {
		s.witnessed("refresh_token", refreshToken)
		resp["refresh_token"], resp["refresh_token_id"] = refreshToken, rt.id
	}
	return answer{status: http.StatusOK, body: resp}
}

// halfHash is OIDC's at_hash and c_hash for RS256: the left half of the
// SHA-256 of the value, base64url without padding.
func halfHash(v string) string {
	sum := sha256.Sum256([]byte(v))
	return base64.RawURLEncoding.EncodeToString(sum[:len(sum)/2])
}

// profileClaims are the ID token's and userinfo's claims by scope.
func profileClaims(u *User, scopes []string) map[string]any {
	c := map[string]any{}
	if slices.Contains(scopes, "email") {
		c["email"], c["email_verified"] = u.Email, true
	}
	if slices.Contains(scopes, "profile") {
		// FusionAuth's name is the stored fullName, never first + last.
		if u.FullName != "" {
			c["name"] = u.FullName
		}
		if u.FirstName != "" {
			c["given_name"] = u.FirstName
		}
		if u.LastName != "" {
			c["family_name"] = u.LastName
		}
		if u.BirthDate != "" {
			c["birthdate"] = u.BirthDate
		}
	}
	return c
}

// sign makes an RS256 JWT with FusionAuth's header: alg, typ, kid, gty.
// keyID "" or unknown signs with the newest key.
func (s *Server) sign(claims map[string]any, keyID string, gty []string) (string, error) {
	s.mu.Lock()
	key := s.keys[len(s.keys)-1]
	if !s.rotated {
		for _, k := range s.keys {
			if k.id == keyID {
				key = k
			}
		}
	}
	s.mu.Unlock()
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	hdr := jws.NewHeaders()
	for k, v := range map[string]any{"typ": "JWT", "kid": key.id, "gty": gty} {
		if err := hdr.Set(k, v); err != nil {
			return "", err
		}
	}
	out, err := jws.Sign(payload, jws.WithKey(jwa.RS256(), key.private, jws.WithProtectedHeaders(hdr)))
	return string(out), err
}

// userinfo is /oauth2/userinfo: the profile claims for a valid access token.
func (s *Server) userinfo(w http.ResponseWriter, r *http.Request) {
	raw, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	claims := s.verifyOwn(raw)
	exp, _ := claims["exp"].(float64)
	if !ok || claims == nil || s.now().Unix() >= int64(exp) {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		oauthError(w, http.StatusUnauthorized, "invalid_token", "the access token is invalid or expired")
		return
	}
	sub, _ := claims["sub"].(string)
	scope, _ := claims["scope"].(string)
	user := s.userByID(sub)
	if user == nil || !slices.Contains(strings.Fields(scope), "openid") {
		oauthError(w, http.StatusUnauthorized, "invalid_token", "no openid scope")
		return
	}
	out := profileClaims(user, strings.Fields(scope))
	out["sub"] = user.ID
	writeJSON(w, http.StatusOK, out)
}

// verifyOwn returns the claims of a token this stand-in signed, or nil.
// It does not look at exp.
func (s *Server) verifyOwn(raw string) map[string]any {
	if raw == "" {
		return nil
	}
	s.mu.Lock()
	var opts []jws.VerifyOption
	for _, k := range s.keys {
		opts = append(opts, jws.WithKey(jwa.RS256(), &k.private.PublicKey))
	}
	s.mu.Unlock()
	payload, err := jws.Verify([]byte(raw), opts...)
	if err != nil {
		return nil
	}
	var claims map[string]any
	if json.Unmarshal(payload, &claims) != nil {
		return nil
	}
	return claims
}

func clone(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

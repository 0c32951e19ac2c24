package e2e

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// This file is a small OpenID provider written for the provider journeys
// (providers_test.go). It takes the token shapes that the certified library
// (providers_zitadel_test.go) cannot: an access token shaped like the ID
// token (Dex), one audience for the access token and another for the ID token
// (Auth0, Keycloak), keys published without alg, opaque access tokens unless
// the authorization request names an API. Each shape follows the provider's
// documentation; only what the app can observe is modelled.

// opUser is the one person every test provider knows.
var opUser = struct{ sub, name, email, login, password string }{
	sub: "8c1e2a55-user-ada", name: "Ada Lovelace", email: "ada@example.com", login: "ada", password: "analytical-engine",
}

// shape is what one provider does differently from the others.
type shape struct {
	issuerPath   string // "/" (Auth0), "/realms/demo" (Keycloak), "/dex" (Dex)
	endpoints    map[string]string
	alg          string   // RS256 or ES256
	idTokenAlgs  []string // what discovery lists besides alg
	keyAlgInJWKS bool     // whether the JWKS names each key's alg
	// accessJWTWith, when set, is the authorize parameter without which the
	// access token is opaque (Auth0's audience).
	accessJWTWith          string
	accessAud              func(issuer, clientID string, authorize url.Values) any
	accessTyp              string // the access token's typ header; "" for none
	accessLikeID           bool   // Dex: the access token carries the ID token's claims, nonce and at_hash included
	idTyp                  string // the ID token's typ header; "" for none
	claimTyp               bool   // Keycloak's typ claim: Bearer in access tokens, ID in ID tokens
	revocation             bool   // discovery lists an RFC 7009 revocation endpoint
	logoutNeedsIDTokenHint bool
	refreshError           string // the OAuth error for a spent, revoked or superseded refresh token
	supersede              bool   // Dex: a new login of the same user and client ends the older refresh tokens
	// Google: opaque access tokens always; a refresh answer without a
	// refresh token (the one redeemed stays valid); no end-session
	// endpoint; token, userinfo, keys and revocation on another host than
	// the issuer; a refresh token only when the authorization request
	// carries refreshWith; and scopes it refuses with invalid_scope.
	opaqueAccess  func() string // makes an opaque access token (Google's ya29..., Hydra's ory_at_...); nil for JWTs
	noRotation    bool
	noEndSession  bool
	apiHost       bool
	refreshWith   string // "access_type=offline"
	refusedScopes []string
	// logoutUI: Hydra's layout. The end-session endpoint sends the browser
	// to a logout page on another origin (the login and consent app),
	// which asks, then sends it back to the end-session endpoint with a
	// verifier; only then does the provider end its session and return to
	// the app.
	logoutUI bool
}

// handOP is a running provider of one shape, with what it counted.
type handOP struct {
	shape
	issuer, clientID, secret string
	api                      string // the base URL of the endpoints the app calls, when on another host (apiHost)
	ui                       string // the base URL of the logout page, when on another origin (logoutUI)
	signer                   crypto.Signer
	kid                      string
	ttl                      time.Duration // access and ID token life
	rec                      *opRecorder

	mu        sync.Mutex
	pending   map[string]url.Values // login request id: its authorize query
	codes     map[string]*grant
	refresh   map[string]*grant     // refresh token: its grant
	spent     map[string]bool       // refresh tokens redeemed, revoked or superseded
	access    map[string]*grant     // access token: its grant (userinfo)
	idTokens  map[string]string     // ID token: its OP session
	sessions  map[string]bool       // OP session id: alive
	revoked   int                   // refresh tokens revoked at the revocation endpoint
	confirmed int                   // logouts that stopped at a confirmation page
	logouts   map[string]url.Values // logout challenge or verifier: the end-session request it stands for
}

// grant is one login's lasting state.
type grant struct {
	authorize url.Values
	sid       string
	authTime  time.Time
}

func (o *handOP) url(path string) string {
	return strings.TrimSuffix(o.issuer, "/") + path
}

// startHandOP serves a provider of shape s on a free port until the test ends.
func startHandOP(t *testing.T, s shape, clientID, secret string, ttl time.Duration) *handOP {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	o := &handOP{shape: s, clientID: clientID, secret: secret, ttl: ttl,
		issuer:  "http://" + ln.Addr().String() + s.issuerPath,
		pending: map[string]url.Values{}, codes: map[string]*grant{}, refresh: map[string]*grant{}, spent: map[string]bool{},
		access: map[string]*grant{}, idTokens: map[string]string{}, sessions: map[string]bool{}, logouts: map[string]url.Values{}}
	if s.alg == "ES256" {
		o.signer, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	} else {
		o.signer, err = rsa.GenerateKey(rand.Reader, 2048)
	}
	if err != nil {
		t.Fatal(err)
	}
	o.kid = randomString(8)
	mux := http.NewServeMux()
	ep := func(name string) string {
		u, _ := url.Parse(o.url(s.endpoints[name]))
		return u.Path
	}
	mux.HandleFunc("GET "+ep("discovery"), o.discovery)
	mux.HandleFunc("GET "+ep("jwks"), o.jwks)
	mux.HandleFunc("GET "+ep("authorize"), o.authorize)
	mux.HandleFunc(ep("login"), o.login)
	mux.HandleFunc("POST "+ep("token"), o.token)
	mux.HandleFunc(ep("userinfo"), o.userinfo)
	mux.HandleFunc(ep("logout"), o.logout)
	if s.revocation {
		mux.HandleFunc("POST "+ep("revoke"), o.revoke)
	}
	o.rec = newRecorder(mux, ep("token"))
	srv := &http.Server{Handler: o.rec, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	if s.logoutUI {
		uiLn, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		o.ui = "http://" + uiLn.Addr().String()
		uiSrv := &http.Server{Handler: http.HandlerFunc(o.logoutPage), ReadHeaderTimeout: 5 * time.Second}
		go uiSrv.Serve(uiLn)
		t.Cleanup(func() { uiSrv.Close() })
	}
	if s.apiHost {
		// The same provider answers on a second host (Google's
		// oauth2.googleapis.com beside accounts.google.com).
		apiLn, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		o.api = "http://" + apiLn.Addr().String()
		apiSrv := &http.Server{Handler: o.rec, ReadHeaderTimeout: 5 * time.Second}
		go apiSrv.Serve(apiLn)
		t.Cleanup(func() { apiSrv.Close() })
	}
	return o
}

// apiURL is where the app reaches an endpoint it calls itself.
func (o *handOP) apiURL(name string) string {
	if o.api == "" {
		return o.url(o.endpoints[name])
	}
	u, _ := url.Parse(o.url(o.endpoints[name]))
	return o.api + u.Path
}

func (o *handOP) discovery(w http.ResponseWriter, _ *http.Request) {
	doc := map[string]any{
		"issuer":                                o.issuer,
		"authorization_endpoint":                o.url(o.endpoints["authorize"]),
		"token_endpoint":                        o.apiURL("token"),
		"userinfo_endpoint":                     o.apiURL("userinfo"),
		"jwks_uri":                              o.apiURL("jwks"),
		"response_types_supported":              []string{"code"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": append([]string{o.alg}, o.idTokenAlgs...),
		"code_challenge_methods_supported":      []string{"S256"},
		"scopes_supported":                      []string{"openid", "email", "profile", "offline_access"},
		"token_endpoint_auth_methods_supported": []string{"client_secret_basic", "client_secret_post"},
		"grant_types_supported":                 []string{"authorization_code", "refresh_token"},
	}
	if o.revocation {
		doc["revocation_endpoint"] = o.apiURL("revoke")
	}
	if !o.noEndSession {
		doc["end_session_endpoint"] = o.url(o.endpoints["logout"])
	}
	if len(o.refusedScopes) > 0 {
		doc["scopes_supported"] = []string{"openid", "email", "profile"}
	}
	writeJSON(w, http.StatusOK, doc)
}

func (o *handOP) jwks(w http.ResponseWriter, _ *http.Request) {
	key := map[string]any{"kid": o.kid, "use": "sig"}
	switch pub := o.signer.Public().(type) {
	case *rsa.PublicKey:
		key["kty"], key["n"], key["e"] = "RSA", b64(pub.N.Bytes()), b64(big.NewInt(int64(pub.E)).Bytes())
	case *ecdsa.PublicKey:
		raw, _ := pub.Bytes() // 0x04 || X || Y
		key["kty"], key["crv"], key["x"], key["y"] = "EC", "P-256", b64(raw[1:33]), b64(raw[33:])
	}
	if o.keyAlgInJWKS {
		key["alg"] = o.alg
	}
	writeJSON(w, http.StatusOK, map[string]any{"keys": []any{key}})
}

// authorize checks the request as a certified provider does, then sends the
// browser to the login form.
func (o *handOP) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	switch {
	case q.Get("client_id") != o.clientID:
		http.Error(w, "unknown client", http.StatusBadRequest)
		return
	case !strings.HasSuffix(q.Get("redirect_uri"), "/callback"):
		http.Error(w, "redirect_uri not registered", http.StatusBadRequest)
		return
	case q.Get("response_type") != "code" || q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" ||
		q.Get("state") == "" || q.Get("nonce") == "" || !slices.Contains(strings.Fields(q.Get("scope")), "openid"):
		http.Error(w, "want a code flow with PKCE S256, state, nonce and the openid scope", http.StatusBadRequest)
		return
	}
	for _, scope := range strings.Fields(q.Get("scope")) {
		if slices.Contains(o.refusedScopes, scope) {
			// Google: "Some requested scopes were invalid", on its own page.
			http.Error(w, "Error 400: invalid_scope: Some requested scopes were invalid. invalid=["+scope+"]", http.StatusBadRequest)
			return
		}
	}
	id := randomString(16)
	o.mu.Lock()
	o.pending[id] = q
	o.mu.Unlock()
	http.Redirect(w, r, o.url(o.endpoints["login"])+"?req="+id, http.StatusFound)
}

// login is the provider's login page: a form, then the code back to the app.
func (o *handOP) login(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("req")
	o.mu.Lock()
	q, ok := o.pending[id]
	o.mu.Unlock()
	if !ok {
		http.Error(w, "no such login", http.StatusBadRequest)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<form method="post"><input name="username"><input name="password" type="password"><button>Sign in</button></form>`)
		return
	}
	if r.PostFormValue("username") != opUser.login || r.PostFormValue("password") != opUser.password {
		http.Error(w, "wrong username or password", http.StatusUnauthorized)
		return
	}
	code, sid := randomString(24), randomString(12)
	o.mu.Lock()
	delete(o.pending, id)
	if o.supersede { // one offline session per user and client
		for rt := range o.refresh {
			o.spent[rt] = true
		}
	}
	o.codes[code] = &grant{authorize: q, sid: sid, authTime: time.Now()}
	o.sessions[sid] = true
	o.mu.Unlock()
	back, _ := url.Parse(q.Get("redirect_uri"))
	bq := back.Query()
	bq.Set("code", code)
	bq.Set("state", q.Get("state"))
	back.RawQuery = bq.Encode()
	http.Redirect(w, r, back.String(), http.StatusFound)
}

// clientAuthenticated checks client_secret_basic (form-encoded, RFC 6749
// section 2.3.1) or client_secret_post.
func (o *handOP) clientAuthenticated(r *http.Request) bool {
	id, secret, ok := r.BasicAuth()
	if ok {
		id, _ = url.QueryUnescape(id)
		secret, _ = url.QueryUnescape(secret)
	} else {
		id, secret = r.PostFormValue("client_id"), r.PostFormValue("client_secret")
	}
	return id == o.clientID && secret == o.secret
}

func (o *handOP) token(w http.ResponseWriter, r *http.Request) {
	if !o.clientAuthenticated(r) {
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_client"})
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	var g *grant
	withNonce := false
	switch r.PostFormValue("grant_type") {
	case "authorization_code":
		g = o.codes[r.PostFormValue("code")]
		delete(o.codes, r.PostFormValue("code"))
		if g == nil || r.PostFormValue("redirect_uri") != g.authorize.Get("redirect_uri") ||
			pkceS256(r.PostFormValue("code_verifier")) != g.authorize.Get("code_challenge") {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_grant"})
			return
		}
		withNonce = true
	case "refresh_token":
		rt := r.PostFormValue("refresh_token")
		g = o.refresh[rt]
		if g == nil || o.spent[rt] {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": o.refreshError, "error_description": "refresh token is invalid or has already been claimed"})
			return
		}
		if !o.noRotation {
			o.spent[rt] = true
		}
		withNonce = o.accessLikeID // Dex keeps the login's claims
	default:
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "unsupported_grant_type"})
		return
	}
	now := time.Now()
	access := randomString(32) // opaque unless the shape makes a JWT
	if o.opaqueAccess != nil {
		access = o.opaqueAccess()
	} else if o.accessJWTWith == "" || g.authorize.Get(o.accessJWTWith) != "" {
		access = o.accessToken(g, now, withNonce)
	}
	idToken := o.idToken(g, now, access, withNonce)
	answer := map[string]any{
		"access_token": access, "id_token": idToken, "token_type": "Bearer",
		"expires_in": int(o.ttl.Seconds()), "scope": g.authorize.Get("scope"),
	}
	name, value, _ := strings.Cut(o.refreshWith, "=")
	switch {
	case o.refreshWith != "" && g.authorize.Get(name) != value:
		// Google: no refresh token without access_type=offline.
	case o.noRotation && r.PostFormValue("grant_type") == "refresh_token":
		// Google: the refresh token redeemed stays; none comes back.
	default:
		rt := randomString(32)
		o.refresh[rt] = g
		answer["refresh_token"] = rt
	}
	o.access[access] = g
	o.idTokens[idToken] = g.sid
	writeJSON(w, http.StatusOK, answer)
}

func (o *handOP) baseClaims(g *grant, now time.Time) map[string]any {
	return map[string]any{"iss": o.issuer, "sub": opUser.sub, "iat": now.Unix(), "exp": now.Add(o.ttl).Unix(),
		"auth_time": g.authTime.Unix(), "sid": g.sid, "jti": randomString(12)}
}

func (o *handOP) profile(claims map[string]any) {
	claims["name"], claims["email"], claims["email_verified"] = opUser.name, opUser.email, true
}

func (o *handOP) accessToken(g *grant, now time.Time, withNonce bool) string {
	claims := o.baseClaims(g, now)
	if o.accessLikeID {
		claims["aud"] = o.clientID
		claims["nonce"] = g.authorize.Get("nonce") // Dex signs both tokens alike
		claims["at_hash"] = atHash(randomString(32))
		o.profile(claims)
	} else {
		claims["aud"] = o.accessAud(o.issuer, o.clientID, g.authorize)
		claims["azp"] = o.clientID
		claims["scope"] = g.authorize.Get("scope")
	}
	if o.claimTyp {
		claims["typ"] = "Bearer"
	}
	return o.sign(o.accessTyp, claims)
}

func (o *handOP) idToken(g *grant, now time.Time, access string, withNonce bool) string {
	claims := o.baseClaims(g, now)
	claims["aud"] = o.clientID
	claims["azp"] = o.clientID
	claims["at_hash"] = atHash(access)
	if withNonce {
		claims["nonce"] = g.authorize.Get("nonce")
	}
	if o.claimTyp {
		claims["typ"] = "ID"
	}
	o.profile(claims)
	return o.sign(o.idTyp, claims)
}

// sign makes a compact JWS with exactly the header the shape asks for.
func (o *handOP) sign(typ string, claims map[string]any) string {
	header := map[string]string{"alg": o.alg, "kid": o.kid}
	if typ != "" {
		header["typ"] = typ
	}
	h, _ := json.Marshal(header)
	p, _ := json.Marshal(claims)
	input := b64(h) + "." + b64(p)
	sum := sha256.Sum256([]byte(input))
	var sig []byte
	switch k := o.signer.(type) {
	case *rsa.PrivateKey:
		sig, _ = rsa.SignPKCS1v15(rand.Reader, k, crypto.SHA256, sum[:])
	case *ecdsa.PrivateKey:
		r, s, _ := ecdsa.Sign(rand.Reader, k, sum[:])
		sig = append(r.FillBytes(make([]byte, 32)), s.FillBytes(make([]byte, 32))...)
	}
	return input + "." + b64(sig)
}

func (o *handOP) userinfo(w http.ResponseWriter, r *http.Request) {
	raw, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	o.mu.Lock()
	_, known := o.access[raw]
	o.mu.Unlock()
	if !ok || !known {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_token"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"sub": opUser.sub, "name": opUser.name, "email": opUser.email, "email_verified": true})
}

// revoke is RFC 7009: 200 whatever the token, once the client is known.
func (o *handOP) revoke(w http.ResponseWriter, r *http.Request) {
	if !o.clientAuthenticated(r) {
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_client"})
		return
	}
	o.mu.Lock()
	if rt := r.PostFormValue("token"); o.refresh[rt] != nil && !o.spent[rt] {
		o.spent[rt] = true
		o.revoked++
	}
	o.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

// logout is RP-initiated logout. Where the shape needs id_token_hint and
// none came, the provider asks the user to confirm and never returns, as
// Keycloak and Dex do. With a logout UI (Hydra), the request goes there
// first and comes back with a verifier.
func (o *handOP) logout(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if o.logoutUI {
		if v := q.Get("logout_verifier"); v != "" {
			o.mu.Lock()
			orig, ok := o.logouts[v]
			delete(o.logouts, v)
			o.mu.Unlock()
			if !ok {
				http.Error(w, "unknown logout verifier", http.StatusBadRequest)
				return
			}
			q = orig
		} else {
			challenge := randomString(16)
			o.mu.Lock()
			o.logouts[challenge] = q
			o.mu.Unlock()
			http.Redirect(w, r, o.ui+"/logout?logout_challenge="+challenge, http.StatusFound)
			return
		}
	}
	back := q.Get("post_logout_redirect_uri")
	if back != "" && !strings.HasPrefix(back, "http://127.0.0.1:") {
		http.Error(w, "post_logout_redirect_uri not registered", http.StatusBadRequest)
		return
	}
	o.mu.Lock()
	sid, known := o.idTokens[q.Get("id_token_hint")]
	if !known && o.logoutNeedsIDTokenHint {
		o.confirmed++
		o.mu.Unlock()
		fmt.Fprint(w, `<p>Do you want to log out?</p><form method="post"><button>Yes</button></form>`)
		return
	}
	if known {
		o.sessions[sid] = false
	} else if q.Get("client_id") == o.clientID { // Auth0: the session the browser's cookie names; one user here
		for s := range o.sessions {
			o.sessions[s] = false
		}
	}
	o.mu.Unlock()
	if back == "" {
		fmt.Fprint(w, "<p>You are logged out.</p>")
		return
	}
	if st := q.Get("state"); st != "" {
		back += "?state=" + url.QueryEscape(st)
	}
	http.Redirect(w, r, back, http.StatusFound)
}

// logoutPage is Hydra's logout UI, served on its own origin: it asks, and
// on "Yes" sends the browser back to the end-session endpoint with a
// verifier for the challenge.
func (o *handOP) logoutPage(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/logout" {
		http.NotFound(w, r)
		return
	}
	challenge := r.FormValue("logout_challenge")
	o.mu.Lock()
	q, ok := o.logouts[challenge]
	o.mu.Unlock()
	if !ok {
		http.Error(w, "unknown logout challenge", http.StatusBadRequest)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<p>Do you wish to log out?</p><form method="post" action="/logout"><input type="hidden" name="logout_challenge" value="%s"><button id="accept">Yes</button></form>`, challenge)
		return
	}
	verifier := randomString(16)
	o.mu.Lock()
	delete(o.logouts, challenge)
	o.logouts[verifier] = q
	o.mu.Unlock()
	http.Redirect(w, r, o.url(o.endpoints["logout"])+"?logout_verifier="+verifier, http.StatusFound)
}

// liveSessions counts the provider's login sessions not ended by a logout.
func (o *handOP) liveSessions() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := 0
	for _, alive := range o.sessions {
		if alive {
			n++
		}
	}
	return n
}

func (o *handOP) revocations() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.revoked
}

func (o *handOP) issuerURL() string { return o.issuer }

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func randomString(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return b64(b)
}

func pkceS256(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return b64(sum[:])
}

func atHash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return b64(sum[:16])
}

// opRecorder watches a provider's traffic as the app sends it: every token
// answer (the tokens a test then uses as Bearer, and that logs must never
// show), every path called, and the logout requests.
type opRecorder struct {
	next      http.Handler
	tokenPath string

	mu      sync.Mutex
	answers []tokenAnswer
	calls   map[string]int // path: requests
	logouts []url.Values   // end-session queries
	issued  []string       // codes and tokens the provider handed out
}

// tokenAnswer is one answer of the token endpoint.
type tokenAnswer struct {
	grantType    string
	status       int
	at           time.Time
	AccessToken  string `json:"access_token"`
	IDToken      string `json:"id_token"`
	RefreshToken string `json:"refresh_token"`
	ExpiresIn    int    `json:"expires_in"`
	Error        string `json:"error"`
}

func newRecorder(next http.Handler, tokenPath string) *opRecorder {
	return &opRecorder{next: next, tokenPath: tokenPath, calls: map[string]int{}}
}

func (rec *opRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec.mu.Lock()
	rec.calls[r.URL.Path]++
	if r.URL.Query().Has("post_logout_redirect_uri") || r.URL.Query().Has("id_token_hint") {
		rec.logouts = append(rec.logouts, r.URL.Query())
	}
	rec.mu.Unlock()
	if r.URL.Path != rec.tokenPath {
		cw := &capture{ResponseWriter: w}
		rec.next.ServeHTTP(cw, r)
		if loc, err := url.Parse(w.Header().Get("Location")); err == nil && loc.Query().Get("code") != "" {
			rec.remember(loc.Query().Get("code"))
		}
		return
	}
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	form, _ := url.ParseQuery(string(body))
	cw := &capture{ResponseWriter: w, keep: true}
	rec.next.ServeHTTP(cw, r)
	a := tokenAnswer{grantType: form.Get("grant_type"), status: cw.status, at: time.Now()}
	json.Unmarshal(cw.body.Bytes(), &a)
	rec.mu.Lock()
	rec.answers = append(rec.answers, a)
	rec.issued = append(rec.issued, a.AccessToken, a.IDToken, a.RefreshToken)
	rec.mu.Unlock()
}

func (rec *opRecorder) remember(v string) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	rec.issued = append(rec.issued, v)
}

// lastToken returns the last successful token answer.
func (rec *opRecorder) lastToken(t *testing.T) tokenAnswer {
	t.Helper()
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for i := len(rec.answers) - 1; i >= 0; i-- {
		if rec.answers[i].status == http.StatusOK {
			return rec.answers[i]
		}
	}
	t.Fatal("the provider issued no tokens")
	return tokenAnswer{}
}

// lastAnswer returns the token endpoint's last answer, whatever its status.
func (rec *opRecorder) lastAnswer() tokenAnswer {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.answers) == 0 {
		return tokenAnswer{}
	}
	return rec.answers[len(rec.answers)-1]
}

// firstToken returns the first successful token answer, if any.
func (rec *opRecorder) firstToken() (tokenAnswer, bool) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for _, a := range rec.answers {
		if a.status == http.StatusOK {
			return a, true
		}
	}
	return tokenAnswer{}, false
}

// tokenCalls counts the token endpoint's answers.
func (rec *opRecorder) tokenCalls() int {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return len(rec.answers)
}

// refreshes counts the token endpoint's answers to refresh_token grants by status.
func (rec *opRecorder) refreshes(status int) int {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	n := 0
	for _, a := range rec.answers {
		if a.grantType == "refresh_token" && a.status == status {
			n++
		}
	}
	return n
}

func (rec *opRecorder) callsTo(path string) int {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return rec.calls[path]
}

// callsEndingIn counts the requests to paths ending in suffix, under any issuer path.
func (rec *opRecorder) callsEndingIn(suffix string) int {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	n := 0
	for path, calls := range rec.calls {
		if strings.HasSuffix(path, suffix) {
			n += calls
		}
	}
	return n
}

func (rec *opRecorder) lastLogout() url.Values {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.logouts) == 0 {
		return nil
	}
	return rec.logouts[len(rec.logouts)-1]
}

func (rec *opRecorder) issuedValues() []string {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return slices.Clone(rec.issued)
}

// capture keeps a response's status, and its body when asked.
type capture struct {
	http.ResponseWriter
	status int
	keep   bool
	body   bytes.Buffer
}

func (c *capture) WriteHeader(code int) {
	if c.status == 0 {
		c.status = code
	}
	c.ResponseWriter.WriteHeader(code)
}

func (c *capture) Write(p []byte) (int, error) {
	if c.status == 0 {
		c.status = http.StatusOK
	}
	if c.keep {
		c.body.Write(p)
	}
	return c.ResponseWriter.Write(p)
}

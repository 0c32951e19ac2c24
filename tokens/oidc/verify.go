package oidc

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"

	"github.com/changebank/changebank/tokens/check"
)

// Leeway is the clock skew tolerated on exp, nbf and iat.
const Leeway = 30 * time.Second

// MaxTokenLen bounds the JWTs a Verifier will parse: as large as a whole
// cookie session (cookie.MaxSessionBytes), which no larger token fits in.
const MaxTokenLen = 24 << 10

// Claims are the claims this app reads from the provider's access and ID tokens.
type Claims struct {
	Issuer    string   `json:"iss"`
	Subject   string   `json:"sub"`
	Audience  Audience `json:"aud"`
	Expiry    UnixTime `json:"exp"`
	IssuedAt  UnixTime `json:"iat"`
	NotBefore UnixTime `json:"nbf,omitzero"`
	AuthTime  UnixTime `json:"auth_time,omitzero"`
	JWTID     string   `json:"jti,omitempty"`
	SessionID string   `json:"sid,omitempty"`
	AuthParty string   `json:"azp,omitempty"`   // the client the ID token was issued to, when the provider says
	Scope     string   `json:"scope,omitempty"` // space-separated (RFC 8693, RFC 9068)
	Scp       Audience `json:"scp,omitempty"`   // what Hydra and Okta send instead: an array, or a string
	Roles     []string `json:"roles,omitempty"`
	AuthType  string   `json:"authenticationType,omitempty"`
	Nonce     string   `json:"nonce,omitempty"`   // ID token only
	AtHash    string   `json:"at_hash,omitempty"` // ID token only: what tells it from an access token

	// Profile claims: in the ID token; not in the access token under
	// FusionAuth's default Strict scope policy.
	Email         string `json:"email,omitempty"`
	EmailVerified Bool   `json:"email_verified,omitempty"`
	Name          string `json:"name,omitempty"`
	GivenName     string `json:"given_name,omitempty"`
	FamilyName    string `json:"family_name,omitempty"`
	Birthdate     string `json:"birthdate,omitempty"`
}

// Scopes returns the token's scopes, space-separated, from scope or else scp.
func (c *Claims) Scopes() string {
	if c.Scope != "" {
		return c.Scope
	}
	return strings.Join(c.Scp, " ")
}

// Audience is the aud claim, a string or an array of strings in a JWT.
type Audience []string

// UnmarshalJSON accepts both forms.
func (a *Audience) UnmarshalJSON(b []byte) error {
	if bytes.HasPrefix(bytes.TrimSpace(b), []byte("[")) {
		return json.Unmarshal(b, (*[]string)(a))
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	*a = Audience{s}
	return nil
}

// Bool is a boolean claim that some providers send as a string ("true").
type Bool bool

// UnmarshalJSON accepts true, false, "true" and "false".
func (b *Bool) UnmarshalJSON(raw []byte) error {
	switch string(bytes.TrimSpace(raw)) {
	case "true", `"true"`:
		*b = true
	case "false", `"false"`, "null":
		*b = false
	default:
		return fmt.Errorf("oidc: %s is not a boolean", raw)
	}
	return nil
}

// UnixTime is a NumericDate claim: seconds since the epoch.
type UnixTime int64

// Time returns the claim as a time.Time.
func (u UnixTime) Time() time.Time { return time.Unix(int64(u), 0) }

// UnmarshalJSON accepts integers and the fractional seconds RFC 7519 allows.
func (u *UnixTime) UnmarshalJSON(b []byte) error {
	var f float64
	if err := json.Unmarshal(b, &f); err != nil {
		return err
	}
	*u = UnixTime(f)
	return nil
}

// A Verifier checks tokens from one issuer for one client: access tokens
// must name the profile's audience in aud, ID tokens its client id.
//
// It tells access tokens from ID tokens where the provider lets it. Most
// providers do (FusionAuth, Hydra, ZITADEL, Auth0): an ID token
// carries nonce or at_hash, an access token neither, and a provider
// following RFC 9068 types its access tokens "at+jwt". Once the token
// endpoint has issued this app an access token so typed, and it passed
// every check, the Verifier requires that type of every access token not
// bound to a session (a Bearer token, or a session written before the hash
// below), for the life of the process. Only that teaches the rule: a token
// someone sends, even one the provider signed (for another audience, or
// long expired), must not change how this instance judges the next ones.
//
// Some providers' access tokens carry at_hash and nonce like their ID tokens
// (Dex), and then nothing in a token tells the two apart. A cookie session
// does not need the token's shape: the session holds the SHA-256 of the
// access token the token endpoint issued to it (bound, in CheckAccess), and
// only that very token passes, whatever its shape and typ. A Bearer
// token has no such binding: it is refused when it looks like an ID token,
// unless this instance has itself received such access tokens from the
// token endpoint (learned at a login or refresh, see TokenEndpointAccess),
// for then the provider makes them so.
// Each instance learns both rules on its own, from the tokens it sees.
//
// Every check is recorded on a check.List, in the order it is made, on the
// one path every token takes: the caller decides whether to read it.
type Verifier struct {
	keys     KeySet
	issuer   string
	clientID string // what an ID token's aud must hold
	audience string // what an access token's aud must hold
	now      func() time.Time
	atJWT    atomic.Bool // the token endpoint issued this app an "at+jwt" access token that passed every check
	idShaped atomic.Bool // the token endpoint issued an access token carrying nonce or at_hash
	cache    *boundedCache[Verified]
}

// NewVerifier returns a Verifier that trusts keys from ks for tokens whose
// iss is exactly p.Issuer, whose aud holds p's audience (access tokens) or
// p.ClientID (ID tokens).
func NewVerifier(ks KeySet, p Profile, now func() time.Time) *Verifier {
	p = p.withDefaults()
	return &Verifier{keys: ks, issuer: p.Issuer, clientID: p.ClientID, audience: p.Audience, now: now, cache: newBoundedCache[Verified]()}
}

// AccessToken verifies a Bearer access token, now. On success it returns
// the claims. On failure it returns no claims, with one exception: a token
// that passes every check but its expiry comes back with its claims and an
// error wrapping ErrExpired. An error wrapping ErrProviderUnavailable means
// the keys could not be fetched: the token was not judged. Every other
// error wraps ErrInvalidToken.
func (v *Verifier) AccessToken(ctx context.Context, raw string) (*Claims, error) {
	var l check.List
	return v.CheckAccess(ctx, raw, nil, v.now(), &l)
}

// TokenEndpointAccess verifies an access token just received from the
// token endpoint, at a login or refresh. Its shape proves nothing there
// (the token endpoint said what it is), so an access token that carries
// nonce or at_hash passes, and teaches this Verifier that the provider's
// access tokens look like ID tokens; one typed at+jwt that passed every
// check teaches it that the provider types them (see Verifier).
func (v *Verifier) TokenEndpointAccess(ctx context.Context, raw string) (*Claims, error) {
	var l check.List
	sum := sha256.Sum256([]byte(raw))
	c, typ, err := v.checkAccess(ctx, raw, sum[:], v.now(), &l)
	if c != nil && (c.AtHash != "" || c.Nonce != "") && !v.idShaped.Load() {
		v.idShaped.Store(true)
	}
	if err == nil && typ == typAccess && !v.atJWT.Load() {
		v.atJWT.Store(true)
	}
	return c, err
}

// CheckAccess verifies an access token as of now, recording each check on
// l; errors and claims are AccessToken's. bound, when not nil, is the
// SHA-256 of the access token the session was issued, and only that token
// passes.
//
// A token that passed every check is remembered (by its hash) until it
// expires, so that the next requests carrying it skip the signature
// verification, and only that: every other check is made again (see
// Recheck). The hash computed for the cache is the one compared with
// bound, so the binding costs nothing more.
func (v *Verifier) CheckAccess(ctx context.Context, raw string, bound []byte, now time.Time, l *check.List) (*Claims, error) {
	c, _, err := v.checkAccess(ctx, raw, bound, now, l)
	return c, err
}

// checkAccess is CheckAccess that also returns the token's typ.
func (v *Verifier) checkAccess(ctx context.Context, raw string, bound []byte, now time.Time, l *check.List) (*Claims, string, error) {
	if len(raw) > MaxTokenLen {
		return nil, "", l.Fail(check.Shape, fmt.Errorf("%w: %d bytes, more than %d", ErrInvalidToken, len(raw), MaxTokenLen))
	}
	sum := sha256.Sum256([]byte(raw))
	b := bindingOf(&sum, bound)
	if e, ok := v.cache.get(sum); ok {
		e.bind = b
		if c, err := v.Recheck(ctx, &e, now, l); !errors.Is(err, ErrStaleKey) {
			return c, e.typ, err
		}
		v.cache.drop(sum)
	}
	var used Verified
	c, typ, err := v.verify(ctx, raw, &used, v.audience, now, l)
	if c == nil {
		return nil, "", err
	}
	c, err = v.accessRules(c, typ, err, b, l)
	if err == nil {
		used.claims, used.typ = *c, typ
		v.cache.put(sum, used, int64(c.Expiry), now.Unix())
	}
	return c, typ, err
}

// binding is how a token relates to the session it arrived in.
type binding int

const (
	unbound    binding = iota // a Bearer token, or a session written before sessions held the hash
	boundOwn                  // the very token the token endpoint issued to this session
	boundOther                // another token than the one issued to this session
)

func bindingOf(sum *[sha256.Size]byte, bound []byte) binding {
	switch {
	case len(bound) == 0:
		return unbound
	case subtle.ConstantTimeCompare(sum[:], bound) == 1:
		return boundOwn
	default:
		return boundOther
	}
}

// Recheck makes again, as of now, on a token verified before (from
// Remembered, or the Verifier's own memory), every check whose answer can
// have changed since, recording each check on l. The signature was checked
// with this very key, so the key must still be the key set's under its kid
// (ErrStaleKey otherwise, before anything is recorded: verify the token
// again, in full); the shape, header, key, algorithm, signature and
// readable claims are then recorded as passed (they hold for these bytes
// and this key), and the claims' times and the kind rules checked again, as
// on a first sight. The claims returned are e's own, so e must not change
// afterwards.
func (v *Verifier) Recheck(ctx context.Context, e *Verified, now time.Time, l *check.List) (*Claims, error) {
	if key, err := v.keyFor(ctx, e.kid, e.alg); err != nil || key != e.key {
		return nil, ErrStaleKey
	}
	l.Pass(check.Shape)
	l.Pass(check.Header)
	l.Pass(check.Key)
	l.UsedKey(e.kid, e.alg.String())
	l.Pass(check.Algorithm)
	l.Pass(check.Signature)
	l.Pass(check.Claims)
	err := v.validate(&e.claims, v.audience, now, l)
	if err != nil && !errors.Is(err, ErrExpired) {
		return nil, err
	}
	return v.accessRules(&e.claims, e.typ, err, e.bind, l)
}

// Remembered returns what verifying raw established, when it passed every
// check and is still remembered, with its binding to bound (as in
// CheckAccess). Recheck checks it again on every use.
func (v *Verifier) Remembered(raw string, bound []byte) (Verified, bool) {
	if len(raw) > MaxTokenLen {
		return Verified{}, false
	}
	sum := sha256.Sum256([]byte(raw))
	t, ok := v.cache.get(sum)
	t.bind = bindingOf(&sum, bound)
	return t, ok
}

// Forget drops what verifying raw established.
func (v *Verifier) Forget(raw string) {
	if len(raw) <= MaxTokenLen {
		v.cache.drop(sha256.Sum256([]byte(raw)))
	}
}

// accessRules refuses what is no access token: a token other than the one
// issued to the session it arrived in, an ID token, or an untyped token
// from a provider known to type its access tokens. err is the
// verification's outcome, nil or ErrExpired, passed through otherwise.
func (v *Verifier) accessRules(c *Claims, typ string, err error, b binding, l *check.List) (*Claims, error) {
	idShaped := c.AtHash != "" || c.Nonce != ""
	switch {
	case b == boundOwn:
		// The token endpoint issued this very token as the access token,
		// whatever it looks like.
	case idShaped && (b == boundOther || !v.idShaped.Load()):
		// An ID token is no credential for this app, whatever the provider
		// puts in it: an ID token from the token endpoint may lack at_hash.
		return nil, l.Fail(check.Kind, fmt.Errorf("%w: an ID token (it carries nonce or at_hash) is not an access token", ErrInvalidToken))
	case b == boundOther:
		return nil, l.Fail(check.Kind, fmt.Errorf("%w: not the access token issued to this session (its SHA-256 is not the one the session holds)", ErrInvalidToken))
	case typ != typAccess && v.atJWT.Load():
		return nil, l.Fail(check.Kind, fmt.Errorf("%w: typ %q, but this provider types its access tokens at+jwt", ErrInvalidToken, typ))
	}
	l.Pass(check.Kind)
	return c, err
}

// IDToken verifies an ID token now and, when nonce is not empty, its
// nonce. Claims come back as AccessToken's do.
func (v *Verifier) IDToken(ctx context.Context, raw, nonce string) (*Claims, error) {
	var l check.List
	c, typ, err := v.verify(ctx, raw, nil, v.clientID, v.now(), &l)
	switch {
	case c == nil:
		return nil, err
	case typ == typAccess:
		return nil, fmt.Errorf("%w: an access token (typ at+jwt) is not an ID token", ErrInvalidToken)
	case c.IssuedAt == 0:
		// OpenID Connect Core 1.0, section 2: iat is REQUIRED in an ID token.
		return nil, fmt.Errorf("%w: the ID token has no iat", ErrInvalidToken)
	case c.AuthParty != "" && c.AuthParty != v.clientID:
		// OpenID Connect Core 1.0, 3.1.3.7: an azp must be this client.
		return nil, fmt.Errorf("%w: azp %q is another client", ErrInvalidToken, c.AuthParty)
	case nonce != "" && subtle.ConstantTimeCompare([]byte(c.Nonce), []byte(nonce)) != 1:
		return nil, fmt.Errorf("%w: nonce does not match the login's", ErrInvalidToken)
	}
	return c, err
}

// The token types (the JWS typ header, lower-cased, without "application/")
// this app accepts: none, the generic one, and RFC 9068's access token.
const (
	typNone   = ""
	typJWT    = "jwt"
	typAccess = "at+jwt"
)

// keyChoice is what the key provider found while jws.Verify ran: each of
// its checks' outcome, so that they are recorded afterwards in order.
type keyChoice struct {
	parsed    bool  // jws parsed the token and asked for a key
	headerErr error // crit or typ refused
	keyErr    error // the lookup failed
	algErr    error // the token's alg does not fit the key
	typ, kid  string
	alg       jwa.SignatureAlgorithm
}

// verify checks the signature and the claims (aud must hold aud) as of
// now, recording each check on l, and returns the token's typ. Claims come
// back on success and when only ErrExpired is wrong. When used is not nil,
// it gets the kid, algorithm and key the signature was checked with.
func (v *Verifier) verify(ctx context.Context, raw string, used *Verified, aud string, now time.Time, l *check.List) (*Claims, string, error) {
	if len(raw) > MaxTokenLen {
		return nil, "", l.Fail(check.Shape, fmt.Errorf("%w: %d bytes, more than %d", ErrInvalidToken, len(raw), MaxTokenLen))
	}
	if err := compactJWS(raw); err != nil {
		return nil, "", l.Fail(check.Shape, fmt.Errorf("%w: %w", ErrInvalidToken, err))
	}
	// The key, and with it the algorithm, come only from the provider's
	// JWKS, looked up by kid; jku, x5u and an embedded jwk are never
	// consulted. The token's alg must be the key's, or fit a key that names none.
	var kc keyChoice
	var key jwk.Key
	provider := jws.KeyProviderFunc(func(ctx context.Context, sink jws.KeySink, sig *jws.Signature, _ *jws.Message) error {
		kc.parsed = true
		hdr := sig.ProtectedHeaders()
		// RFC 7515 4.1.11: an extension listed in crit must be understood,
		// and this app understands none.
		if crit, ok := hdr.Critical(); ok {
			kc.headerErr = fmt.Errorf("the header lists critical extensions %q", crit)
			return kc.headerErr
		}
		t, _ := hdr.Type()
		kc.typ = strings.TrimPrefix(strings.ToLower(t), "application/")
		if kc.typ != typNone && kc.typ != typJWT && kc.typ != typAccess {
			kc.headerErr = fmt.Errorf("typ %q is neither JWT nor at+jwt", t)
			return kc.headerErr
		}
		kc.kid, _ = hdr.KeyID()
		tokAlg, _ := hdr.Algorithm()
		k, err := v.keyFor(ctx, kc.kid, tokAlg)
		if err != nil {
			kc.keyErr = err
			return err
		}
		alg, err := v.algorithm(k, tokAlg)
		kc.alg = alg
		if err != nil {
			kc.algErr = err
			return err
		}
		key = k
		sink.Key(alg, k)
		return nil
	})
	payload, err := jws.Verify([]byte(raw), jws.WithKeyProvider(provider), jws.WithContext(ctx))
	// What the key provider found, recorded in the order it checked it.
	switch {
	case !kc.parsed:
		return nil, "", l.Fail(check.Shape, fmt.Errorf("%w: signature: %w", ErrInvalidToken, err))
	case errors.Is(kc.keyErr, ErrProviderUnavailable):
		// Not judged: nothing failed.
		l.Pass(check.Shape)
		l.Pass(check.Header)
		return nil, "", kc.keyErr
	}
	l.Pass(check.Shape)
	if kc.headerErr != nil {
		return nil, "", l.Fail(check.Header, fmt.Errorf("%w: signature: %w", ErrInvalidToken, err))
	}
	l.Pass(check.Header)
	if kc.keyErr != nil {
		return nil, "", l.Fail(check.Key, fmt.Errorf("%w: signature: %w", ErrInvalidToken, err))
	}
	l.Pass(check.Key)
	l.UsedKey(kc.kid, kc.alg.String())
	if kc.algErr != nil {
		return nil, "", l.Fail(check.Algorithm, fmt.Errorf("%w: signature: %w", ErrInvalidToken, err))
	}
	l.Pass(check.Algorithm)
	if err != nil {
		return nil, "", l.Fail(check.Signature, fmt.Errorf("%w: signature: %w", ErrInvalidToken, err))
	}
	l.Pass(check.Signature)
	if used != nil {
		used.kid, used.alg, used.key = kc.kid, kc.alg, key
	}
	var c Claims
	if err := json.Unmarshal(payload, &c); err != nil {
		return nil, "", l.Fail(check.Claims, fmt.Errorf("%w: claims: %w", ErrInvalidToken, err))
	}
	l.Pass(check.Claims)
	switch err := v.validate(&c, aud, now, l); {
	case err == nil:
		return &c, kc.typ, nil
	case errors.Is(err, ErrExpired):
		return &c, kc.typ, err
	default:
		return nil, "", err
	}
}

// keyFor returns the provider's key for a token's kid. A token with no kid
// gets the one key of the set its algorithm fits, when there is exactly
// one: OpenID Connect Core 1.0, section 10.1, requires a kid only when the
// set holds several keys. With several that fit, which one is meant is not
// said, and the token is refused (errUnknownKey) rather than tried against
// each.
func (v *Verifier) keyFor(ctx context.Context, kid string, tokAlg jwa.SignatureAlgorithm) (jwk.Key, error) {
	if kid != "" {
		return v.keys.LookupKey(ctx, kid)
	}
	keys, err := v.keys.Keys(ctx)
	if err != nil {
		return nil, err
	}
	var found jwk.Key
	n := 0
	for _, k := range keys {
		if _, err := v.algorithm(k, tokAlg); err == nil {
			found = k
			n++
		}
	}
	if n != 1 {
		return nil, fmt.Errorf("%w: no kid in the token's header, and %d keys of the set fit its alg %q (a kid is needed unless exactly one does)", errUnknownKey, n, tokAlg)
	}
	return found, nil
}

// algorithm returns the algorithm to check a token signed with tokAlg by
// key. A key that names its algorithm allows that one only. A key that names
// none (RFC 7517 makes alg optional) allows the algorithms its type and
// curve can check (an EC P-256 key means ES256), for access tokens as for
// ID tokens: never HMAC, never none. Discovery's
// id_token_signing_alg_values_supported is not consulted: it speaks of ID
// tokens only, and Hydra signs its access tokens with another algorithm.
func (v *Verifier) algorithm(key jwk.Key, tokAlg jwa.SignatureAlgorithm) (jwa.SignatureAlgorithm, error) {
	if keyAlg, ok := key.Algorithm(); ok {
		alg, ok := jwa.LookupSignatureAlgorithm(keyAlg.String())
		if !ok || !asymmetric[alg.String()] {
			return alg, fmt.Errorf("the provider's key has algorithm %q, not an asymmetric signature", keyAlg)
		}
		if tokAlg != alg {
			return alg, fmt.Errorf("token alg %q differs from its key's %q", tokAlg, alg)
		}
		return alg, nil
	}
	if !slices.Contains(algsForKey(key), tokAlg.String()) {
		return tokAlg, fmt.Errorf("token alg %q does not fit the provider's %s key", tokAlg, key.KeyType())
	}
	return tokAlg, nil
}

// algsForKey lists the signature algorithms a key of its type and curve can check.
func algsForKey(key jwk.Key) []string {
	crv := ""
	if k, ok := key.(interface {
		Crv() (jwa.EllipticCurveAlgorithm, bool)
	}); ok {
		c, _ := k.Crv()
		crv = c.String()
	}
	switch key.KeyType() {
	case jwa.RSA():
		return []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}
	case jwa.EC():
		switch crv {
		case jwa.P256().String():
			return []string{"ES256"}
		case jwa.P384().String():
			return []string{"ES384"}
		case jwa.P521().String():
			return []string{"ES512"}
		}
	case jwa.OKP():
		if crv == jwa.Ed25519().String() {
			return []string{"EdDSA", "Ed25519"}
		}
		return []string{"EdDSA"}
	}
	return nil
}

var asymmetric = map[string]bool{
	"RS256": true, "RS384": true, "RS512": true,
	"PS256": true, "PS384": true, "PS512": true,
	"ES256": true, "ES384": true, "ES512": true,
	"EdDSA": true, "Ed25519": true,
}

// validate checks the claims in order as of now, aud against aud,
// recording each check on l.
func (v *Verifier) validate(c *Claims, aud string, now time.Time, l *check.List) error {
	if c.Issuer != v.issuer {
		return l.Fail(check.Issuer, fmt.Errorf("%w: issuer %q, want %q", ErrInvalidToken, c.Issuer, v.issuer))
	}
	l.Pass(check.Issuer)
	if !slices.Contains(c.Audience, aud) {
		return l.Fail(check.Audience, fmt.Errorf("%w: audience %q does not hold %q", ErrInvalidToken, c.Audience, aud))
	}
	l.Pass(check.Audience)
	if c.Subject == "" {
		return l.Fail(check.Subject, fmt.Errorf("%w: no sub", ErrInvalidToken))
	}
	l.Pass(check.Subject)
	if c.Expiry == 0 {
		return l.Fail(check.Expiry, fmt.Errorf("%w: no exp", ErrInvalidToken))
	}
	if c.NotBefore != 0 && now.Add(Leeway).Before(c.NotBefore.Time()) {
		return l.Fail(check.NotBefore, fmt.Errorf("%w: not valid before %s", ErrInvalidToken, c.NotBefore.Time().UTC()))
	}
	if c.IssuedAt != 0 && now.Add(Leeway).Before(c.IssuedAt.Time()) {
		return l.Fail(check.NotBefore, fmt.Errorf("%w: issued in the future", ErrInvalidToken))
	}
	l.Pass(check.NotBefore)
	if !now.Add(-Leeway).Before(c.Expiry.Time()) {
		return l.Fail(check.Expiry, fmt.Errorf("%w at %s", ErrExpired, c.Expiry.Time().UTC()))
	}
	l.Pass(check.Expiry)
	return nil
}

// IsJWT reports whether an access token from the token endpoint is a JWT
// this app can check: the compact serialization, whose header is a JSON
// object naming an alg. Anything else the token endpoint issues is an
// opaque token: Hydra's ory_at_... and Google's ya29... have dots but not
// three JSON-headed parts, and a JWE has five. It allocates nothing for a
// header of usual size: every Bearer request asks it.
func IsJWT(raw string) bool {
	head, rest, ok := strings.Cut(raw, ".")
	if !ok {
		return false
	}
	payload, sig, ok := strings.Cut(rest, ".")
	if !ok || head == "" || payload == "" || strings.Contains(sig, ".") ||
		!canonicalBase64URL(head) || !canonicalBase64URL(payload) || (sig != "" && !canonicalBase64URL(sig)) {
		return false
	}
	var buf [512]byte
	var h []byte
	if n := base64.RawURLEncoding.DecodedLen(len(head)); n <= len(buf) {
		m, err := base64.RawURLEncoding.Decode(buf[:], []byte(head))
		if err != nil {
			return false
		}
		h = buf[:m]
	} else {
		var err error
		if h, err = base64.RawURLEncoding.DecodeString(head); err != nil {
			return false
		}
	}
	h = bytes.TrimSpace(h)
	return len(h) > 1 && h[0] == '{' && h[len(h)-1] == '}' && bytes.Contains(h, []byte(`"alg"`))
}

// compactJWS checks that raw is a JWS in the compact serialization with
// canonical unpadded base64url parts, before any parser sees it. RFC 7519
// requires the compact form of a JWT; the JSON serialization (RFC 7515
// section 7.2) and base64url with padding or with non-zero unused bits in a
// part's last character would each let one genuine token be written many
// ways, every one a full signature check and a cache entry of its own.
func compactJWS(raw string) error {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return errors.New("not a compact JWS (three base64url parts)")
	}
	for i, p := range parts {
		if p == "" && i < 2 {
			return fmt.Errorf("part %d of 3 is empty", i+1)
		}
		// An empty signature is written one way only; alg none is refused
		// by the algorithm check, which names it.
		if p != "" && !canonicalBase64URL(p) {
			return fmt.Errorf("part %d of 3 is not canonical unpadded base64url", i+1)
		}
	}
	return nil
}

// canonicalBase64URL reports whether s is unpadded base64url that decoding
// and encoding again gives back byte for byte.
func canonicalBase64URL(s string) bool {
	if len(s)%4 == 1 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if b64Value(s[i]) < 0 {
			return false
		}
	}
	// The last character of a part whose length is not a multiple of 4
	// carries 2 or 4 bits that belong to no byte: they must be zero.
	last := b64Value(s[len(s)-1])
	switch len(s) % 4 {
	case 2:
		return last&0x0f == 0
	case 3:
		return last&0x03 == 0
	}
	return true
}

func b64Value(c byte) int {
	switch {
	case c >= 'A' && c <= 'Z':
		return int(c - 'A')
	case c >= 'a' && c <= 'z':
		return int(c-'a') + 26
	case c >= '0' && c <= '9':
		return int(c-'0') + 52
	case c == '-':
		return 62
	case c == '_':
		return 63
	}
	return -1
}

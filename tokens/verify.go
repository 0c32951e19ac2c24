package tokens

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
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
)

// leeway is the clock skew tolerated on exp, nbf and iat.
const leeway = 30 * time.Second

// maxTokenLen bounds the JWTs this app will parse: no larger one fits in a
// session (validateTokens refuses it as too large before parsing).
const maxTokenLen = MaxSessionBytes

var (
	// errInvalidToken is wrapped by every reason a token is refused for good:
	// bad signature, wrong issuer or audience, malformed, oversize.
	errInvalidToken = errors.New("tokens: invalid token")
	// errExpired means the token is genuine but past its exp (plus leeway).
	errExpired = errors.New("tokens: token expired")
)

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
		return fmt.Errorf("tokens: %s is not a boolean", raw)
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
// does not need the token's shape: the userinfo cookie holds the SHA-256 of
// the access token the token endpoint issued to it, and only that very
// token passes, whatever its shape and typ (see accessToken). A Bearer
// token has no such binding: it is refused when it looks like an ID token,
// unless this instance has itself received such access tokens from the
// token endpoint (learned at a login or refresh, see tokenEndpointAccess),
// for then the provider makes them so.
// Each instance learns both rules on its own, from the tokens it sees.
type Verifier struct {
	keys     KeySet
	issuer   string
	clientID string // what an ID token's aud must hold
	audience string // what an access token's aud must hold
	now      func() time.Time
	atJWT    atomic.Bool // the token endpoint issued this app an "at+jwt" access token that passed every check
	idShaped atomic.Bool // the token endpoint issued an access token carrying nonce or at_hash
	cache    *boundedCache[verifiedToken]
}

// NewVerifier returns a Verifier that trusts keys from ks for tokens whose
// iss is exactly p.Issuer, whose aud holds p's audience (access tokens) or
// p.ClientID (ID tokens).
func NewVerifier(ks KeySet, p Profile, now func() time.Time) *Verifier {
	return &Verifier{keys: ks, issuer: p.Issuer, clientID: p.ClientID, audience: p.audience(), now: now, cache: newBoundedCache[verifiedToken]()}
}

// AccessToken verifies an access token. On success it returns the claims.
// On failure it returns no claims, with one exception: a token that passes
// every check but its expiry comes back with its claims and an error
// wrapping errExpired, so that the caller can refresh. An error wrapping
// ErrProviderUnavailable means the keys could not be fetched: the token was
// not judged. Every other error wraps errInvalidToken.
//
// A token that passed every check is remembered (by its hash) until it
// expires, so that the next requests carrying it skip the signature
// verification, and only that: see verifiedToken.
func (v *Verifier) AccessToken(ctx context.Context, raw string) (*Claims, error) {
	return v.accessToken(ctx, raw, nil, nil)
}

// tokenEndpointAccess verifies an access token this app has just received
// from the token endpoint, at a login or refresh. Its shape proves nothing
// there (the token endpoint said what it is), so an access token that
// carries nonce or at_hash passes, and teaches this Verifier that the
// provider's access tokens look like ID tokens; one typed at+jwt that
// passed every check teaches it that the provider types them (see Verifier).
func (v *Verifier) tokenEndpointAccess(ctx context.Context, raw string) (*Claims, error) {
	sum := sha256.Sum256([]byte(raw))
	c, typ, err := v.accessTokenTyp(ctx, raw, sum[:], nil)
	if c != nil && (c.AtHash != "" || c.Nonce != "") && !v.idShaped.Load() {
		v.idShaped.Store(true)
	}
	if err == nil && typ == typAccess && !v.atJWT.Load() {
		v.atJWT.Store(true)
	}
	return c, err
}

// accessToken verifies an access token; bound, when not nil, is the SHA-256
// of the access token the session was issued (from its userinfo cookie), and
// only that token passes. With rec it records each check and skips the
// cache: a trace always watches the whole verification.
//
// A token that passed every check is remembered (by its hash) until it
// expires, so that the next requests carrying it skip the signature
// verification, and only that: the hash computed for the cache is the one
// compared with bound, so the binding costs nothing more.
func (v *Verifier) accessToken(ctx context.Context, raw string, bound []byte, rec *recorder) (*Claims, error) {
	c, _, err := v.accessTokenTyp(ctx, raw, bound, rec)
	return c, err
}

// accessTokenTyp is accessToken that also returns the token's typ.
func (v *Verifier) accessTokenTyp(ctx context.Context, raw string, bound []byte, rec *recorder) (*Claims, string, error) {
	if len(raw) > maxTokenLen {
		_, _, err := v.verify(ctx, raw, rec, nil, v.audience)
		return nil, "", err
	}
	sum := sha256.Sum256([]byte(raw))
	b := bindingOf(&sum, bound)
	if rec != nil {
		c, typ, err := v.verify(ctx, raw, rec, nil, v.audience)
		if c == nil {
			return nil, "", err
		}
		c, err = v.accessRules(c, typ, err, rec, b)
		return c, typ, err
	}
	if e, ok := v.cache.get(sum); ok {
		if c, err := v.recheck(ctx, &e, b); !errors.Is(err, errStaleKey) {
			return c, e.typ, err
		}
		v.cache.drop(sum)
	}
	var used verifiedToken
	c, typ, err := v.verify(ctx, raw, nil, &used, v.audience)
	if c == nil {
		return nil, "", err
	}
	c, err = v.accessRules(c, typ, err, nil, b)
	if err == nil {
		used.claims, used.typ = *c, typ
		v.cache.put(sum, used, int64(c.Expiry), v.now().Unix())
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

// errStaleKey means a remembered token's key has left the JWKS, or changed.
var errStaleKey = errors.New("tokens: the key a remembered token was checked with is gone")

// recheck makes again, on a token verified before, every check whose
// answer can have changed since: the signature was checked with this very
// key, so the key must still be the JWKS's under its kid (errStaleKey
// otherwise: verify it again, in full); the claims' times and the kind
// rules are checked again, as on a first sight. The claims returned are
// e's own, so e must not change afterwards.
func (v *Verifier) recheck(ctx context.Context, e *verifiedToken, b binding) (*Claims, error) {
	if key, err := v.keyFor(ctx, e.kid, e.alg); err != nil || key != e.key {
		return nil, errStaleKey
	}
	err := v.validate(&e.claims, nil, v.audience)
	if err != nil && !errors.Is(err, errExpired) {
		return nil, err
	}
	return v.accessRules(&e.claims, e.typ, err, nil, b)
}

// verified returns what verifying raw established, when it passed every
// check and is still remembered, and its binding to bound (as in
// accessToken).
func (v *Verifier) verified(raw string, bound []byte) (verifiedToken, binding, bool) {
	if len(raw) > maxTokenLen {
		return verifiedToken{}, unbound, false
	}
	sum := sha256.Sum256([]byte(raw))
	t, ok := v.cache.get(sum)
	return t, bindingOf(&sum, bound), ok
}

// forget drops what verifying raw established.
func (v *Verifier) forget(raw string) {
	if len(raw) <= maxTokenLen {
		v.cache.drop(sha256.Sum256([]byte(raw)))
	}
}

// accessRules refuses what is no access token: a token other than the one
// issued to the session it arrived in, an ID token, or an untyped token
// from a provider known to type its access tokens. err is the
// verification's outcome, nil or errExpired, passed through otherwise.
// The check is recorded on rec, which may be nil.
func (v *Verifier) accessRules(c *Claims, typ string, err error, rec *recorder, b binding) (*Claims, error) {
	idShaped := c.AtHash != "" || c.Nonce != ""
	switch {
	case b == boundOwn:
		// The token endpoint issued this very token as the access token,
		// whatever it looks like.
	case idShaped && (b == boundOther || !v.idShaped.Load()):
		// An ID token is no credential for this app, whatever the provider
		// puts in it: an ID token from the token endpoint may lack at_hash.
		return nil, rec.fail(CheckKind, fmt.Errorf("%w: an ID token (it carries nonce or at_hash) is not an access token", errInvalidToken))
	case b == boundOther:
		return nil, rec.fail(CheckKind, fmt.Errorf("%w: not the access token issued to this session (its SHA-256 is not the one cb_userinfo holds)", errInvalidToken))
	case typ != typAccess && v.atJWT.Load():
		return nil, rec.fail(CheckKind, fmt.Errorf("%w: typ %q, but this provider types its access tokens at+jwt", errInvalidToken, typ))
	}
	rec.pass(CheckKind)
	return c, err
}

// idToken verifies an ID token and, when nonce is not empty, its nonce.
// Claims come back as AccessToken's do.
func (v *Verifier) idToken(ctx context.Context, raw, nonce string) (*Claims, error) {
	c, typ, err := v.verify(ctx, raw, nil, nil, v.clientID)
	switch {
	case c == nil:
		return nil, err
	case typ == typAccess:
		return nil, fmt.Errorf("%w: an access token (typ at+jwt) is not an ID token", errInvalidToken)
	case c.IssuedAt == 0:
		// OpenID Connect Core 1.0, section 2: iat is REQUIRED in an ID token.
		return nil, fmt.Errorf("%w: the ID token has no iat", errInvalidToken)
	case c.AuthParty != "" && c.AuthParty != v.clientID:
		// OpenID Connect Core 1.0, 3.1.3.7: an azp must be this client.
		return nil, fmt.Errorf("%w: azp %q is another client", errInvalidToken, c.AuthParty)
	case nonce != "" && subtle.ConstantTimeCompare([]byte(c.Nonce), []byte(nonce)) != 1:
		return nil, fmt.Errorf("%w: nonce does not match the login's", errInvalidToken)
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

// verify checks the signature and the claims (aud must hold aud), and
// returns the token's typ. Claims come back on success and when only
// errExpired is wrong. Each check is recorded on rec, which may be nil.
// When used is not nil, it gets the kid and the key the signature was
// checked with.
func (v *Verifier) verify(ctx context.Context, raw string, rec *recorder, used *verifiedToken, aud string) (*Claims, string, error) {
	if len(raw) > maxTokenLen {
		return nil, "", rec.fail(CheckShape, fmt.Errorf("%w: %d bytes, more than %d", errInvalidToken, len(raw), maxTokenLen))
	}
	if err := compactJWS(raw); err != nil {
		return nil, "", rec.fail(CheckShape, fmt.Errorf("%w: %w", errInvalidToken, err))
	}
	// The key, and with it the algorithm, come only from the provider's
	// JWKS, looked up by kid; jku, x5u and an embedded jwk are never
	// consulted. The token's alg must be the key's, or fit a key that names none.
	var lookupErr error
	var typ string
	provider := jws.KeyProviderFunc(func(ctx context.Context, sink jws.KeySink, sig *jws.Signature, _ *jws.Message) error {
		rec.pass(CheckShape) // jws parsed it

		hdr := sig.ProtectedHeaders()
		// RFC 7515 4.1.11: an extension listed in crit must be understood,
		// and this app understands none.
		if crit, ok := hdr.Critical(); ok {
			return rec.fail(CheckHeader, fmt.Errorf("the header lists critical extensions %q", crit))
		}
		t, _ := hdr.Type()
		typ = strings.TrimPrefix(strings.ToLower(t), "application/")
		if typ != typNone && typ != typJWT && typ != typAccess {
			return rec.fail(CheckHeader, fmt.Errorf("typ %q is neither JWT nor at+jwt", t))
		}
		rec.pass(CheckHeader)
		kid, _ := hdr.KeyID()
		tokAlg, _ := hdr.Algorithm()
		key, err := v.keyFor(ctx, kid, tokAlg)
		if err != nil {
			lookupErr = err
			if !errors.Is(err, ErrProviderUnavailable) {
				rec.fail(CheckKey, err)
			}
			return err
		}
		rec.pass(CheckKey)
		alg, err := v.algorithm(key, tokAlg)
		rec.usedKey(kid, alg.String())
		if err != nil {
			return rec.fail(CheckAlgorithm, err)
		}
		rec.pass(CheckAlgorithm)
		if used != nil {
			used.kid, used.alg, used.key = kid, alg, key
		}
		sink.Key(alg, key)
		return nil
	})
	payload, err := jws.Verify([]byte(raw), jws.WithKeyProvider(provider), jws.WithContext(ctx))
	if err != nil {
		if errors.Is(lookupErr, ErrProviderUnavailable) {
			return nil, "", lookupErr
		}
		rec.verifyFailed(err)
		return nil, "", fmt.Errorf("%w: signature: %w", errInvalidToken, err)
	}
	rec.pass(CheckSignature)
	var c Claims
	if err := json.Unmarshal(payload, &c); err != nil {
		return nil, "", rec.fail(CheckClaims, fmt.Errorf("%w: claims: %w", errInvalidToken, err))
	}
	rec.pass(CheckClaims)
	switch err := v.validate(&c, rec, aud); {
	case err == nil:
		return &c, typ, nil
	case errors.Is(err, errExpired):
		return &c, typ, err
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

// validate checks the claims in order, aud against aud, recording each
// check on rec.
func (v *Verifier) validate(c *Claims, rec *recorder, aud string) error {
	now := rec.now(v.now)
	if c.Issuer != v.issuer {
		return rec.fail(CheckIssuer, fmt.Errorf("%w: issuer %q, want %q", errInvalidToken, c.Issuer, v.issuer))
	}
	rec.pass(CheckIssuer)
	if !slices.Contains(c.Audience, aud) {
		return rec.fail(CheckAudience, fmt.Errorf("%w: audience %q does not hold %q", errInvalidToken, c.Audience, aud))
	}
	rec.pass(CheckAudience)
	if c.Subject == "" {
		return rec.fail(CheckSubject, fmt.Errorf("%w: no sub", errInvalidToken))
	}
	rec.pass(CheckSubject)
	if c.Expiry == 0 {
		return rec.fail(CheckExpiry, fmt.Errorf("%w: no exp", errInvalidToken))
	}
	if c.NotBefore != 0 && now.Add(leeway).Before(c.NotBefore.Time()) {
		return rec.fail(CheckNotBefore, fmt.Errorf("%w: not valid before %s", errInvalidToken, c.NotBefore.Time().UTC()))
	}
	if c.IssuedAt != 0 && now.Add(leeway).Before(c.IssuedAt.Time()) {
		return rec.fail(CheckNotBefore, fmt.Errorf("%w: issued in the future", errInvalidToken))
	}
	rec.pass(CheckNotBefore)
	if !now.Add(-leeway).Before(c.Expiry.Time()) {
		return rec.fail(CheckExpiry, fmt.Errorf("%w at %s", errExpired, c.Expiry.Time().UTC()))
	}
	rec.pass(CheckExpiry)
	return nil
}

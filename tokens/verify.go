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

// maxTokenLen bounds the JWTs this app will parse.
const maxTokenLen = 8192

var (
	// errInvalidToken is wrapped by every reason a token is refused for good:
	// bad signature, wrong issuer or audience, malformed, oversize.
	errInvalidToken = errors.New("tokens: invalid token")
	// errExpired means the token is genuine but past its exp (plus leeway).
	errExpired = errors.New("tokens: token expired")
)

// Claims are the claims this app reads from FusionAuth's access and ID tokens.
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
	Scope     string   `json:"scope,omitempty"`
	Roles     []string `json:"roles,omitempty"`
	AuthType  string   `json:"authenticationType,omitempty"`
	Nonce     string   `json:"nonce,omitempty"`   // ID token only
	AtHash    string   `json:"at_hash,omitempty"` // ID token only: what tells it from an access token

	// Profile claims: in the ID token; not in the access token under
	// FusionAuth's default Strict scope policy.
	Email         string `json:"email,omitempty"`
	EmailVerified bool   `json:"email_verified,omitempty"`
	Name          string `json:"name,omitempty"`
	GivenName     string `json:"given_name,omitempty"`
	FamilyName    string `json:"family_name,omitempty"`
	Birthdate     string `json:"birthdate,omitempty"`
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

// A Verifier checks tokens from one issuer for one client.
//
// It tells access tokens from ID tokens, since FusionAuth signs both with one
// key and one aud: an ID token carries nonce or at_hash, an access token
// neither. A provider following RFC 9068 also types its access tokens
// "at+jwt"; once one token so typed has passed signature verification (only
// the provider can sign one), the Verifier requires that type of every access
// token, for the life of the process. Each instance learns it on its own, from
// the first such token it sees.
type Verifier struct {
	keys     KeySet
	issuer   string
	clientID string
	now      func() time.Time
	atJWT    atomic.Bool // an "at+jwt" token has been seen with a valid signature
	cache    *boundedCache[verifiedToken]
}

// NewVerifier returns a Verifier that trusts keys from ks for tokens whose
// iss is issuer and whose aud holds clientID. When ks is a *Provider, a key
// that names no algorithm is used only with the algorithms its discovery
// document lists (RS256 when it lists none) that fit the key's type.
func NewVerifier(ks KeySet, issuer, clientID string, now func() time.Time) *Verifier {
	return &Verifier{keys: ks, issuer: issuer, clientID: clientID, now: now, cache: newBoundedCache[verifiedToken]()}
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
	if len(raw) > maxTokenLen {
		_, _, err := v.verify(ctx, raw, nil, nil)
		return nil, err
	}
	sum := sha256.Sum256([]byte(raw))
	if e, ok := v.cache.get(sum); ok {
		if c, err := v.recheck(ctx, &e); !errors.Is(err, errStaleKey) {
			return c, err
		}
		v.cache.drop(sum)
	}
	var used verifiedToken
	c, typ, err := v.verify(ctx, raw, nil, &used)
	if c == nil {
		return nil, err
	}
	c, err = v.accessRules(c, typ, err, nil)
	if err == nil {
		used.claims, used.typ = *c, typ
		v.cache.put(sum, used, int64(c.Expiry), v.now().Unix())
	}
	return c, err
}

// errStaleKey means a remembered token's key has left the JWKS, or changed.
var errStaleKey = errors.New("tokens: the key a remembered token was checked with is gone")

// recheck makes again, on a token verified before, every check whose
// answer can have changed since: the signature was checked with this very
// key, so the key must still be the JWKS's under its kid (errStaleKey
// otherwise: verify it again, in full); the claims' times and the kind
// rules are checked again, as on a first sight. The claims returned are
// e's own, so e must not change afterwards.
func (v *Verifier) recheck(ctx context.Context, e *verifiedToken) (*Claims, error) {
	if key, err := v.keys.LookupKey(ctx, e.kid); err != nil || key != e.key {
		return nil, errStaleKey
	}
	err := v.validate(&e.claims, nil)
	if err != nil && !errors.Is(err, errExpired) {
		return nil, err
	}
	return v.accessRules(&e.claims, e.typ, err, nil)
}

// verified returns what verifying raw established, when it passed every
// check and is still remembered.
func (v *Verifier) verified(raw string) (verifiedToken, bool) {
	if len(raw) > maxTokenLen {
		return verifiedToken{}, false
	}
	return v.cache.get(sha256.Sum256([]byte(raw)))
}

// forget drops what verifying raw established.
func (v *Verifier) forget(raw string) {
	if len(raw) <= maxTokenLen {
		v.cache.drop(sha256.Sum256([]byte(raw)))
	}
}

// accessToken is AccessToken without the cache, recording each check on
// rec: a trace always watches the whole verification.
func (v *Verifier) accessToken(ctx context.Context, raw string, rec *recorder) (*Claims, error) {
	if rec == nil {
		return v.AccessToken(ctx, raw)
	}
	c, typ, err := v.verify(ctx, raw, rec, nil)
	if c == nil {
		return nil, err
	}
	return v.accessRules(c, typ, err, rec)
}

// accessRules refuses what is no access token: an ID token, or an untyped
// token from a provider known to type its access tokens. err is the
// verification's outcome, nil or errExpired, passed through otherwise.
// The check is recorded on rec, which may be nil.
func (v *Verifier) accessRules(c *Claims, typ string, err error, rec *recorder) (*Claims, error) {
	switch {
	case c.AtHash != "" || c.Nonce != "":
		// An ID token is no credential for this app, whatever the provider
		// puts in it: an ID token from the token endpoint may lack at_hash.
		return nil, rec.fail(CheckKind, fmt.Errorf("%w: an ID token (it carries nonce or at_hash) is not an access token", errInvalidToken))
	case typ != typAccess && v.atJWT.Load():
		return nil, rec.fail(CheckKind, fmt.Errorf("%w: typ %q, but this provider types its access tokens at+jwt", errInvalidToken, typ))
	}
	rec.pass(CheckKind)
	return c, err
}

// idToken verifies an ID token and, when nonce is not empty, its nonce.
// Claims come back as AccessToken's do.
func (v *Verifier) idToken(ctx context.Context, raw, nonce string) (*Claims, error) {
	c, typ, err := v.verify(ctx, raw, nil, nil)
	switch {
	case c == nil:
		return nil, err
	case typ == typAccess:
		return nil, fmt.Errorf("%w: an access token (typ at+jwt) is not an ID token", errInvalidToken)
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

// verify checks the signature and the claims, and returns the token's typ.
// Claims come back on success and when only errExpired is wrong. Each
// check is recorded on rec, which may be nil. When used is not nil, it gets
// the kid and the key the signature was checked with.
func (v *Verifier) verify(ctx context.Context, raw string, rec *recorder, used *verifiedToken) (*Claims, string, error) {
	if len(raw) > maxTokenLen {
		return nil, "", rec.fail(CheckShape, fmt.Errorf("%w: %d bytes, more than %d", errInvalidToken, len(raw), maxTokenLen))
	}
	if strings.Count(raw, ".") != 2 {
		return nil, "", rec.fail(CheckShape, fmt.Errorf("%w: not a compact JWS", errInvalidToken))
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
		kid, ok := hdr.KeyID()
		if !ok || kid == "" {
			return rec.fail(CheckKey, errors.New("no kid in the token's header"))
		}
		key, err := v.keys.LookupKey(ctx, kid)
		if err != nil {
			lookupErr = err
			if !errors.Is(err, ErrProviderUnavailable) {
				rec.fail(CheckKey, err)
			}
			return err
		}
		rec.pass(CheckKey)
		tokAlg, _ := hdr.Algorithm()
		alg, err := v.algorithm(key, tokAlg)
		rec.usedKey(kid, alg.String())
		if err != nil {
			return rec.fail(CheckAlgorithm, err)
		}
		rec.pass(CheckAlgorithm)
		if used != nil {
			used.kid, used.key = kid, key
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
	if typ == typAccess {
		v.atJWT.Store(true)
	}
	var c Claims
	if err := json.Unmarshal(payload, &c); err != nil {
		return nil, "", rec.fail(CheckClaims, fmt.Errorf("%w: claims: %w", errInvalidToken, err))
	}
	rec.pass(CheckClaims)
	switch err := v.validate(&c, rec); {
	case err == nil:
		return &c, typ, nil
	case errors.Is(err, errExpired):
		return &c, typ, err
	default:
		return nil, "", err
	}
}

// algorithm returns the algorithm to check a token signed with tokAlg by
// key. A key that names its algorithm allows that one only. A key that names
// none (RFC 7517 makes alg optional) allows an algorithm of its type that
// the provider's discovery lists: never HMAC, never none.
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
	discovered := []string{"RS256"} // OIDC Discovery's default
	if p, ok := v.keys.(interface{ signingAlgs() []string }); ok {
		if algs := p.signingAlgs(); len(algs) > 0 {
			discovered = algs
		}
	}
	if !slices.Contains(discovered, tokAlg.String()) {
		return tokAlg, fmt.Errorf("token alg %q is not one the provider's discovery lists (%q)", tokAlg, discovered)
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

// validate checks the claims in order, recording each check on rec.
func (v *Verifier) validate(c *Claims, rec *recorder) error {
	now := rec.now(v.now)
	if c.Issuer != v.issuer {
		return rec.fail(CheckIssuer, fmt.Errorf("%w: issuer %q, want %q", errInvalidToken, c.Issuer, v.issuer))
	}
	rec.pass(CheckIssuer)
	if !slices.Contains(c.Audience, v.clientID) {
		return rec.fail(CheckAudience, fmt.Errorf("%w: audience %q does not hold the client id", errInvalidToken, c.Audience))
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

package tokens

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
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
type Verifier struct {
	keys     KeySet
	issuer   string
	clientID string
	now      func() time.Time
}

// NewVerifier returns a Verifier that trusts keys from ks for tokens whose
// iss is issuer and whose aud holds clientID.
func NewVerifier(ks KeySet, issuer, clientID string, now func() time.Time) *Verifier {
	return &Verifier{keys: ks, issuer: issuer, clientID: clientID, now: now}
}

// AccessToken verifies a FusionAuth access token. For a genuine but expired
// token it returns the claims and an error wrapping errExpired, so the
// caller can refresh; errKeysUnavailable when the keys could not be fetched;
// errInvalidToken for everything else.
func (v *Verifier) AccessToken(ctx context.Context, raw string) (*Claims, error) {
	c, err := v.verify(ctx, raw)
	// FusionAuth signs both kinds with one key, one typ and one aud; only an
	// ID token carries at_hash. An ID token is no credential for this app.
	if c != nil && c.AtHash != "" {
		return nil, fmt.Errorf("%w: an ID token is not an access token", errInvalidToken)
	}
	return c, err
}

// IDToken verifies an ID token and, when nonce is not empty, its nonce.
func (v *Verifier) idToken(ctx context.Context, raw, nonce string) (*Claims, error) {
	c, err := v.verify(ctx, raw)
	if err != nil {
		return c, err
	}
	if nonce != "" && subtle.ConstantTimeCompare([]byte(c.Nonce), []byte(nonce)) != 1 {
		return nil, fmt.Errorf("%w: nonce does not match the login's", errInvalidToken)
	}
	return c, nil
}

func (v *Verifier) verify(ctx context.Context, raw string) (*Claims, error) {
	if len(raw) > maxTokenLen {
		return nil, fmt.Errorf("%w: %d bytes, more than %d", errInvalidToken, len(raw), maxTokenLen)
	}
	if strings.Count(raw, ".") != 2 {
		return nil, fmt.Errorf("%w: not a compact JWS", errInvalidToken)
	}
	// The key, and with it the algorithm, come only from the provider's
	// JWKS, looked up by kid. The token's own alg must agree with the key's;
	// jku, x5u and an embedded jwk are never consulted.
	var lookupErr error
	provider := jws.KeyProviderFunc(func(ctx context.Context, sink jws.KeySink, sig *jws.Signature, _ *jws.Message) error {
		hdr := sig.ProtectedHeaders()
		kid, ok := hdr.KeyID()
		if !ok || kid == "" {
			return errors.New("no kid in the token's header")
		}
		key, err := v.keys.LookupKey(ctx, kid)
		if err != nil {
			lookupErr = err
			return err
		}
		keyAlg, ok := key.Algorithm()
		if !ok {
			return errors.New("the provider's key does not name its algorithm")
		}
		alg, ok := jwa.LookupSignatureAlgorithm(keyAlg.String())
		if !ok || !asymmetric[alg.String()] {
			return fmt.Errorf("the provider's key has algorithm %q, not an asymmetric signature", keyAlg)
		}
		if tokAlg, _ := hdr.Algorithm(); tokAlg != alg {
			return fmt.Errorf("token alg %q differs from its key's %q", tokAlg, alg)
		}
		sink.Key(alg, key)
		return nil
	})
	payload, err := jws.Verify([]byte(raw), jws.WithKeyProvider(provider), jws.WithContext(ctx))
	if err != nil {
		if errors.Is(lookupErr, ErrProviderUnavailable) {
			return nil, lookupErr
		}
		return nil, fmt.Errorf("%w: signature: %w", errInvalidToken, err)
	}
	var c Claims
	if err := json.Unmarshal(payload, &c); err != nil {
		return nil, fmt.Errorf("%w: claims: %w", errInvalidToken, err)
	}
	return &c, v.validate(&c)
}

var asymmetric = map[string]bool{
	"RS256": true, "RS384": true, "RS512": true,
	"PS256": true, "PS384": true, "PS512": true,
	"ES256": true, "ES384": true, "ES512": true,
	"EdDSA": true, "Ed25519": true,
}

func (v *Verifier) validate(c *Claims) error {
	now := v.now()
	switch {
	case c.Issuer != v.issuer:
		return fmt.Errorf("%w: issuer %q, want %q", errInvalidToken, c.Issuer, v.issuer)
	case !slices.Contains(c.Audience, v.clientID):
		return fmt.Errorf("%w: audience %q does not hold the client id", errInvalidToken, c.Audience)
	case c.Subject == "":
		return fmt.Errorf("%w: no sub", errInvalidToken)
	case c.Expiry == 0:
		return fmt.Errorf("%w: no exp", errInvalidToken)
	case c.NotBefore != 0 && now.Add(leeway).Before(c.NotBefore.Time()):
		return fmt.Errorf("%w: not valid before %s", errInvalidToken, c.NotBefore.Time().UTC())
	case c.IssuedAt != 0 && now.Add(leeway).Before(c.IssuedAt.Time()):
		return fmt.Errorf("%w: issued in the future", errInvalidToken)
	case !now.Add(-leeway).Before(c.Expiry.Time()):
		return fmt.Errorf("%w at %s", errExpired, c.Expiry.Time().UTC())
	}
	return nil
}

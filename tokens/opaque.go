package tokens

import (
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"hash"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/changebank/changebank/tokens/oidc"
)

// Opaque access tokens.
//
// Some providers issue access tokens that are not JWTs (Google, Authelia,
// ZITADEL and Ory Hydra by default): a random string only the provider can
// read. This app cannot check such a token itself, so it does not pretend
// to. What it keeps instead:
//
//   - The ID token that came with it is validated in full (signature, iss,
//     aud, exp, iat, nonce at login), at login and at every refresh that
//     returns one, and when it carries at_hash that hash must be the access
//     token's: the token kept is the one issued beside that ID token.
//   - The access token is sealed in its cookie (AES-GCM under a key derived
//     from the app secret and the cookie's name), with the subject and the
//     expiry the token endpoint gave (expires_in, at most
//     MaxOpaqueAccessLife; DefaultOpaqueAccessLife without one), and bound
//     to cb_userinfo by its SHA-256 like a JWT.
//   - Every request checks the seal, the expiry, the binding and the logout
//     marker, and a refresh at expiry asks the provider again: the provider
//     checks the session at each refresh, not at each request.
//
// What that does not give, and a JWT does: a JWT is checked on every
// request against the provider's keys (it proves, each time, that the
// provider issued it for this audience and that it has not expired by the
// provider's own clock). A sealed opaque token proves that this app stored
// it and that the app's own expiry has not passed; whether the provider
// still honours it is known only at the next refresh, or, for Bearer
// tokens, by asking the provider's introspection endpoint (RFC 7662).

// DefaultOpaqueAccessLife is how long an opaque access token is kept when
// the token endpoint gave no expires_in: short, so that the provider is
// asked again (a refresh) soon.
const DefaultOpaqueAccessLife = 5 * time.Minute

// MaxOpaqueAccessLife bounds an opaque access token's life in the session,
// whatever expires_in says: the provider sees the session at least this
// often, which is when a revocation or a logout elsewhere is noticed.
const MaxOpaqueAccessLife = time.Hour

// opaqueCookie is the sealed content of cb_access_token when the access
// token is opaque.
type opaqueCookie struct {
	Token    string `json:"at"`
	Subject  string `json:"sub"`
	Expires  int64  `json:"exp"`
	Scope    string `json:"scope,omitempty"`
	AuthTime int64  `json:"auth_time,omitempty"`
}

// opaqueExpiry is when an opaque access token from tok is to be treated as
// expired: the token endpoint's expires_in, at most MaxOpaqueAccessLife,
// DefaultOpaqueAccessLife when it gave none.
func opaqueExpiry(tok *oauth2.Token, now time.Time) time.Time {
	if tok.Expiry.IsZero() {
		return now.Add(DefaultOpaqueAccessLife)
	}
	if most := now.Add(MaxOpaqueAccessLife); tok.Expiry.After(most) {
		return most
	}
	return tok.Expiry
}

// opaqueClaims are the claims a session with an opaque access token
// stands on: who (the ID token's subject), until when (opaqueExpiry), and
// the scope the token endpoint granted. They come from the token response
// and the validated ID token, never from the token itself.
func opaqueClaims(issuer string, c opaqueCookie) *Claims {
	return &Claims{Issuer: issuer, Subject: c.Subject, Expiry: oidc.UnixTime(c.Expires), Scope: c.Scope, AuthTime: oidc.UnixTime(c.AuthTime)}
}

// checkAtHash checks an ID token's at_hash against the access token that
// came with it (OpenID Connect Core 1.0, section 3.1.3.8): the left half of
// the access token's hash, with the hash of the ID token's algorithm. No
// at_hash, nothing to check: it is optional in the code flow.
func checkAtHash(idToken string, c *Claims, access string) error {
	if c.AtHash == "" {
		return nil
	}
	head, _, _ := strings.Cut(idToken, ".")
	b, err := base64.RawURLEncoding.DecodeString(head)
	var h struct {
		Alg string `json:"alg"`
	}
	if err != nil || json.Unmarshal(b, &h) != nil {
		return fmt.Errorf("%w: the ID token's header does not decode", oidc.ErrInvalidToken)
	}
	var sum hash.Hash
	switch h.Alg {
	case "RS256", "PS256", "ES256":
		sum = sha256.New()
	case "RS384", "PS384", "ES384":
		sum = sha512.New384()
	case "RS512", "PS512", "ES512", "EdDSA", "Ed25519":
		sum = sha512.New()
	default:
		return fmt.Errorf("%w: no at_hash rule for alg %q", oidc.ErrInvalidToken, h.Alg)
	}
	sum.Write([]byte(access))
	d := sum.Sum(nil)
	want := base64.RawURLEncoding.EncodeToString(d[:len(d)/2])
	if subtle.ConstantTimeCompare([]byte(want), []byte(c.AtHash)) != 1 {
		return fmt.Errorf("%w: the ID token's at_hash is not the access token's", oidc.ErrInvalidToken)
	}
	return nil
}

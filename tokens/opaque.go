package tokens

import (
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"hash"
	"strconv"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/changebank/changebank/tokens/check"
	"github.com/changebank/changebank/tokens/cookie"
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
//     maxOpaqueAccessLife; defaultOpaqueAccessLife without one), and bound
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

// defaultOpaqueAccessLife is how long an opaque access token is kept when
// the token endpoint gave no expires_in: short, so that the provider is
// asked again (a refresh) soon.
const defaultOpaqueAccessLife = 5 * time.Minute

// maxOpaqueAccessLife bounds an opaque access token's life in the session,
// whatever expires_in says: the provider sees the session at least this
// often, which is when a revocation or a logout elsewhere is noticed.
const maxOpaqueAccessLife = time.Hour

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
// expired: the token endpoint's expires_in from now (the app's clock, not
// x/oauth2's), at most maxOpaqueAccessLife, defaultOpaqueAccessLife when
// it gave none.
func opaqueExpiry(tok *oauth2.Token, now time.Time) time.Time {
	life := defaultOpaqueAccessLife
	var secs float64
	switch v := tok.Extra("expires_in").(type) {
	case float64:
		secs = v
	case string: // some providers send it quoted
		secs, _ = strconv.ParseFloat(v, 64)
	}
	if secs > 0 {
		life = time.Duration(secs * float64(time.Second))
	} else if !tok.Expiry.IsZero() {
		life = tok.Expiry.Sub(time.Now())
	}
	return now.Add(min(life, maxOpaqueAccessLife))
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

// validateOpaque checks a token response whose access token is opaque: the
// ID token in full (with nonce at a login), its at_hash against the access
// token, and at a refresh that it names the session's user (prev). A
// refresh without an ID token keeps the session's user and profile: the
// refresh token the provider just honoured is bound to that user.
func (s *Sessions) validateOpaque(ctx context.Context, tok *oauth2.Token, nonce string, prev UserInfo) (*refreshed, error) {
	c := opaqueCookie{Token: tok.AccessToken, Expires: opaqueExpiry(tok, s.now()).Unix()}
	c.Scope, _ = tok.Extra("scope").(string)
	res := &refreshed{access: tok.AccessToken, refreshToken: tok.RefreshToken, opaque: true}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		if nonce != "" || prev.Subject == "" {
			return nil, fmt.Errorf("%w: the token response has no ID token, and its access token is opaque", ErrNoSession)
		}
		c.Subject = prev.Subject
		res.claims = opaqueClaims(s.provider.Issuer(), c)
		s.noteKind(true)
		return res, nil
	}
	id, err := s.verifier.IDToken(ctx, raw, nonce)
	if err != nil {
		return nil, s.tokenResponseError("ID token", err)
	}
	if prev.Subject != "" && id.Subject != prev.Subject {
		return nil, fmt.Errorf("%w: the new ID token names another user", ErrNoSession)
	}
	if err := checkAtHash(raw, id, tok.AccessToken); err != nil {
		return nil, s.tokenResponseError("access token", err)
	}
	c.Subject, c.AuthTime = id.Subject, int64(id.AuthTime)
	res.claims, res.idToken = opaqueClaims(s.provider.Issuer(), c), raw
	if res.user, err = s.profile(ctx, tok.AccessToken, id, prev); err != nil {
		return nil, err
	}
	s.noteKind(true)
	return res, nil
}

// sealOpaque is the value of cb_access_token for a session whose access
// token is opaque: the token, its subject, expiry, scope and auth_time,
// sealed under the cookie's own key.
func (s *Sessions) sealOpaque(sess *Session) (string, error) {
	return s.cookies.Seal(cookie.Access, opaqueCookie{
		Token: sess.AccessToken, Subject: sess.User.Subject, Expires: int64(sess.Access.Expiry),
		Scope: sess.Access.Scope, AuthTime: int64(sess.Access.AuthTime),
	})
}

// openOpaque checks cb_access_token for a session whose access token is
// opaque: it opens (sealed by this app for this cookie), it holds the very
// token the token endpoint issued to the session (its SHA-256 is the one
// cb_userinfo holds), and its expiry. It returns the claims the session
// stands on and the token; past its expiry, with an error wrapping
// oidc.ErrExpired, so that the caller refreshes. Each check goes on l.
func (s *Sessions) openOpaque(sealed string, user UserInfo, now time.Time, l *check.List) (*Claims, string, error) {
	var c opaqueCookie
	if err := s.cookies.OpenValue(cookie.Access, sealed, &c); err != nil {
		return nil, "", l.Fail(check.Sealed, fmt.Errorf("%w: the access cookie does not open (changed, moved from another cookie, or sealed under another secret)", oidc.ErrInvalidToken))
	}
	l.Pass(check.Sealed)
	sum := sha256.Sum256([]byte(c.Token))
	if len(user.AccessHash) == 0 || subtle.ConstantTimeCompare(sum[:], user.AccessHash) != 1 {
		return nil, "", l.Fail(check.Kind, fmt.Errorf("%w: not the access token issued to this session (its SHA-256 is not the one cb_userinfo holds)", oidc.ErrInvalidToken))
	}
	l.Pass(check.Kind)
	claims := opaqueClaims(s.provider.Issuer(), c)
	if !now.Before(claims.Expiry.Time()) {
		return claims, c.Token, l.Fail(check.Expiry, fmt.Errorf("%w at %s", oidc.ErrExpired, claims.Expiry.Time().UTC()))
	}
	l.Pass(check.Expiry)
	return claims, c.Token, nil
}

// The kinds of access token noteKind logs.
const (
	kindUnknown int32 = iota
	kindJWT
	kindOpaque
)

// noteKind logs which kind of access token the provider issues, from the
// token endpoint's answers: once, after the first, and again if it
// changes (a provider reconfigured while the app runs).
func (s *Sessions) noteKind(opaque bool) {
	kind := kindJWT
	if opaque {
		kind = kindOpaque
	}
	if s.kind.Swap(kind) == kind {
		return
	}
	switch {
	case !opaque:
		s.log.Info("access tokens: JWT, checked against the provider's keys on every request")
	case s.introspect == nil:
		s.log.Info("access tokens: opaque, sealed in the access cookie, checked by the provider at each refresh; as Bearer they are refused (BEARER_INTROSPECTION is off)")
	default:
		endpoint := "the provider lists no introspection endpoint, so as Bearer they are refused"
		if m, err := s.provider.Metadata(); err == nil && m.IntrospectionEndpoint != "" {
			endpoint = "as Bearer, checked at the provider's introspection endpoint once per token"
		}
		s.log.Info("access tokens: opaque, sealed in the access cookie, checked by the provider at each refresh; " + endpoint)
	}
}

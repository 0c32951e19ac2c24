package oidc

import (
	"errors"
	"fmt"
)

// The errors callers branch on.
var (
	// ErrProviderUnavailable means the provider could not be asked: not
	// discovered yet, unreachable, failing, or its signing keys could not
	// be fetched. Nothing was judged: try again later. Package tokens
	// returns this very error as its own ErrProviderUnavailable.
	ErrProviderUnavailable = errors.New("tokens: the identity provider is unavailable")
	// ErrKeysUnavailable means the provider's signing keys could not be
	// had (fetched, or refetched for an unknown kid) when a token needed
	// them: the token was not judged. It wraps ErrProviderUnavailable.
	ErrKeysUnavailable = fmt.Errorf("%w: its signing keys cannot be fetched", ErrProviderUnavailable)
	// ErrInvalidToken is wrapped by every reason a token is refused for
	// good: bad signature, wrong issuer or audience, malformed, oversize.
	ErrInvalidToken = errors.New("oidc: invalid token")
	// ErrExpired means the token is genuine but past its exp (plus Leeway).
	ErrExpired = errors.New("oidc: token expired")
	// ErrStaleKey means the key a remembered token was checked with has
	// left the key set, or changed: verify the token again, in full.
	ErrStaleKey = errors.New("oidc: the key a remembered token was checked with is gone")
)

// errNotReady is wrapped in ErrProviderUnavailable until discovery succeeds.
var errNotReady = fmt.Errorf("%w: discovery has not succeeded yet", ErrProviderUnavailable)

// errUnknownKey means the JWKS, even refetched, has no key with the token's kid.
var errUnknownKey = errors.New("oidc: no key with that kid in the provider's JWKS")

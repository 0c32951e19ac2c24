package tokens

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/sync/singleflight"

	"github.com/changebank/changebank/internal/bounded"
	"github.com/changebank/changebank/tokens/cookie"
	"github.com/changebank/changebank/tokens/oidc"
)

// refreshGrace is how long after a refresh the requests that still carry
// the old refresh token are given its result instead of refreshing again.
// A browser that fired several requests at once sends the old cookies on
// all of them; with a one-time-use refresh token a second refresh would be
// refused and log the user out.
const refreshGrace = 20 * time.Second

// maxGraceEntries bounds the memory the grace window can take.
const maxGraceEntries = 10000

// refreshed is the validated outcome of one refresh, shared by every
// request that carried the same refresh token.
type refreshed struct {
	access       string
	claims       *Claims
	refreshToken string
	idToken      string // as issued, for logout's id_token_hint; "" when none came
	user         UserInfo
	opaque       bool // the access token is not a JWT: it is kept sealed (see opaque.go)
}

// refresher makes sure one refresh token is redeemed once per instance:
// concurrent requests share one token call (single-flight), late ones get
// the remembered result during the grace window.
//
// The token call runs detached from every request, bounded by
// refreshCallTimeout, while each request waits for it at most wait. A
// provider that redeems the token but answers late has already rotated
// it: giving up on the call would lose the only copy of the new refresh
// token. So a request that stops waiting answers "try again" (cookies
// kept) and the call goes on; its result lands in the grace window under
// the old token's hash, where the user's next request finds it.
type refresher struct {
	now   func() time.Time
	grace time.Duration
	wait  time.Duration // how long a request waits for the token call
	group singleflight.Group

	// recent holds the results of the grace window by the old token's
	// hash. Full of live entries, it takes no more (bounded.Refuse): under
	// a flood the refresher falls back to plain single-flight rather than
	// forget a result a browser may still need.
	recent *bounded.Map[[sha256.Size]byte, graceEntry]

	observe Observer // told how each refresh ended

	// dead holds the hashes of refresh tokens the provider refused (or
	// this instance revoked): they are never sent again, so a spent token
	// replayed on every request costs the provider one call, not one per
	// request. Nil: no such memory.
	dead *hashSet
}

type graceEntry struct {
	res   *refreshed
	until time.Time
}

func newRefresher(now func() time.Time, grace, wait time.Duration) *refresher {
	return &refresher{now: now, grace: grace, wait: wait, recent: bounded.New[[sha256.Size]byte, graceEntry](maxGraceEntries, bounded.Refuse), observe: nopObserver{}}
}

// do returns the result of redeeming refreshToken, calling redeem at most
// once for all the callers that arrive together or within the grace window.
// Entries are keyed by a hash, so memory never holds a usable old token.
// A caller waits at most f.wait, or until its ctx ends, then gets
// ErrProviderUnavailable while the call goes on for the next request.
// A token the provider refuses for good is remembered as dead until until
// (the refresh cookie's end) and refused here from then on (ErrNoSession);
// a transient failure is not remembered.
func (f *refresher) do(ctx context.Context, refreshToken string, until time.Time, redeem func(context.Context) (*refreshed, error)) (*refreshed, error) {
	key := sha256.Sum256([]byte(refreshToken))
	if res := f.remembered(key); res != nil {
		f.observe.Refreshed("grace")
		return res, nil
	}
	if f.dead != nil && f.dead.has(key, f.now()) {
		f.observe.Refused("dead_refresh_token")
		f.observe.Refreshed("dead")
		return nil, errDeadToken
	}
	ran := false // this caller's call went to the provider, rather than joining another's
	ch := f.group.DoChan(string(key[:]), func() (any, error) {
		if res := f.remembered(key); res != nil {
			return res, nil
		}
		ran = true
		// Detached from the request that started it: neither its end nor
		// its tab closing may cut a call the provider may already have acted on.
		callCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), refreshCallTimeout)
		defer cancel()
		res, err := redeem(callCtx)
		if err != nil {
			if f.dead != nil && refusedByProvider(err) {
				f.dead.add(key, until, f.now())
			}
			return nil, err
		}
		f.remember(key, res)
		return res, nil
	})
	timer := time.NewTimer(f.wait)
	defer timer.Stop()
	select {
	case r := <-ch:
		switch {
		case r.Err != nil && refusedByProvider(r.Err):
			f.observe.Refreshed("refused")
		case r.Err != nil:
			f.observe.Refreshed("unavailable")
		case !ran:
			f.observe.Refreshed("shared")
		default:
			f.observe.Refreshed("redeemed")
		}
		if r.Err != nil {
			return nil, r.Err
		}
		return r.Val.(*refreshed), nil
	case <-timer.C:
		f.observe.Refreshed("unavailable")
		return nil, fmt.Errorf("%w: the token call is still running after %s; its result will be kept for the next request", ErrProviderUnavailable, f.wait)
	case <-ctx.Done():
		f.observe.Refreshed("unavailable")
		return nil, fmt.Errorf("%w: %w", ErrProviderUnavailable, ctx.Err())
	}
}

// remembered returns the result of redeeming the refresh token whose hash
// is key, during the grace window, while its access token is not itself
// due for a refresh: a provider that keeps the refresh token (Google,
// FusionAuth's Reusable policy) with access tokens shorter than the grace
// window is asked again, rather than handed the tokens it is replacing.
func (f *refresher) remembered(key [sha256.Size]byte) *refreshed {
	now := f.now()
	e, ok := f.recent.Get(key)
	if !ok || !now.Before(e.until) || (e.res.claims != nil && e.res.claims.Expiry.Time().Sub(now) <= refreshMargin) {
		return nil
	}
	return e.res
}

func (f *refresher) remember(key [sha256.Size]byte, res *refreshed) {
	now := f.now()
	f.recent.Put(key, graceEntry{res: res, until: now.Add(f.grace)}, func(e graceEntry) bool { return !now.Before(e.until) })
}

// tokenCallTimeout bounds each call to the provider when the HTTP client
// given to New sets no Timeout of its own. For a refresh it bounds
// only how long the request waits; the call itself may run up to
// refreshCallTimeout.
const tokenCallTimeout = 5 * time.Second

// refreshCallTimeout bounds a refresh's token call, which runs on after the
// request that started it has answered "try again": long enough for a slow
// provider to answer, short enough not to pile up calls to a dead one.
const refreshCallTimeout = 30 * time.Second

// keyRetryEvery is how often a refresh whose new tokens name a key not yet
// fetched checks again; the refetch itself stays rate-limited.
const keyRetryEvery = 250 * time.Millisecond

// redeem calls the token endpoint with the refresh token and validates what
// comes back. An OAuth error in a 4xx answer ends the session
// (ErrNoSession, see classify); anything that may pass (network, timeout,
// 5xx, temporarily_unavailable, a JWKS that cannot be fetched) is
// ErrProviderUnavailable.
func (s *Sessions) redeem(ctx context.Context, refreshToken string, user UserInfo) (*refreshed, error) {
	tok, err := s.client.refresh(ctx, refreshToken)
	if err != nil {
		return nil, err
	}
	res, err := s.validateTokens(ctx, tok, "", user)
	for errors.Is(err, oidc.ErrKeysUnavailable) {
		// The provider has redeemed, perhaps rotated, the refresh token:
		// this answer holds the only copy of the new one. Tokens signed
		// with a just-rotated key verify after the next allowed JWKS
		// refetch, so try again until then, within the call's bound.
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(keyRetryEvery):
		}
		res, err = s.validateTokens(ctx, tok, "", user)
	}
	if err != nil {
		return nil, err
	}
	// FusionAuth's Reusable policy returns no refresh token: keep the old one.
	if res.refreshToken == "" {
		res.refreshToken = refreshToken
	}
	// A refresh may bring no ID token; the profile from login still holds.
	if res.user.Subject == "" {
		res.user = user
	}
	res.user.OpaqueAccess = res.opaque
	res.user.AccessHash = nil // write binds the new access token
	res.user.LoginID, res.user.LoginAt = user.LoginID, user.LoginAt
	s.log.Info("tokens refreshed", "sub", user.Subject, "rotated", res.refreshToken != refreshToken)
	return res, nil
}

// validateTokens checks a token response: the access token always, the ID
// token when present (with nonce when not ""). At a refresh, prev is the
// session's user and the tokens must name prev.Subject; at a login prev is
// empty.
//
// Name and email come from the ID token, else from the userinfo endpoint,
// asked here once (at the login or refresh, never per page) when the ID
// token names neither. At a refresh the refresh token is spent already, so
// a userinfo endpoint that fails keeps the profile the session had.
func (s *Sessions) validateTokens(ctx context.Context, tok *oauth2.Token, nonce string, prev UserInfo) (*refreshed, error) {
	if n := len(tok.AccessToken); n > cookie.MaxSessionBytes {
		// Larger than any session this app keeps: say so, rather than
		// that it failed a check.
		return nil, ended(NoticeEndedTooLarge, fmt.Errorf("%w: the access token alone is %d bytes, more than the %d a session may take", ErrSessionTooLarge, n, cookie.MaxSessionBytes))
	}
	if !oidc.IsJWT(tok.AccessToken) {
		return s.validateOpaque(ctx, tok, nonce, prev)
	}
	access, err := s.verifier.TokenEndpointAccess(ctx, tok.AccessToken)
	if err != nil {
		return nil, s.tokenResponseError("access token", err)
	}
	if prev.Subject != "" && access.Subject != prev.Subject {
		return nil, fmt.Errorf("%w: the new access token names another user", ErrNoSession)
	}
	res := &refreshed{access: tok.AccessToken, claims: access, refreshToken: tok.RefreshToken}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		if nonce != "" {
			return nil, fmt.Errorf("%w: the token response has no ID token", ErrNoSession)
		}
		s.noteKind(false)
		return res, nil // a refresh without an ID token: the session's profile still holds
	}
	id, err := s.verifier.IDToken(ctx, raw, nonce)
	if err != nil {
		return nil, s.tokenResponseError("ID token", err)
	}
	if id.Subject != access.Subject {
		return nil, fmt.Errorf("%w: ID token and access token name different users", ErrNoSession)
	}
	res.idToken = raw
	if res.user, err = s.profile(ctx, tok.AccessToken, id, prev); err != nil {
		return nil, err
	}
	s.noteKind(false)
	return res, nil
}

// profile is what the pages show of the user, from the validated ID token
// id, else from the userinfo endpoint, asked with the access token (once,
// at the login or refresh, never per page) when the ID token names
// neither. At a refresh (prev is the session's user) the refresh token is
// spent already, so a userinfo endpoint that fails keeps the profile the
// session had.
func (s *Sessions) profile(ctx context.Context, access string, id *Claims, prev UserInfo) (UserInfo, error) {
	if id.Email != "" && (id.Name != "" || id.GivenName != "" || id.FamilyName != "") {
		return userInfoFrom(id), nil
	}
	info, err := s.client.userinfo(ctx, access)
	switch {
	case err == nil && info.Subject != id.Subject:
		// OpenID Connect Core 1.0, section 5.3.2: the sub must match.
		return UserInfo{}, fmt.Errorf("%w: the userinfo endpoint names another user than the ID token", ErrNoSession)
	case err == nil:
		return userInfoFrom(fillProfile(id, info)), nil
	case prev.Subject != "":
		s.log.Warn("userinfo not fetched at refresh: keeping the session's profile", "sub", prev.Subject, "err", err)
		if u := userInfoFrom(id); u.Email != "" || u.Name != "" {
			return u, nil
		}
		return prev, nil
	case errors.Is(err, errNoUserinfo):
		return userInfoFrom(id), nil // nothing more to be had
	default:
		return UserInfo{}, err
	}
}

// fillProfile returns the ID token's claims with the profile claims it
// lacks taken from the userinfo endpoint's answer.
func fillProfile(id, info *Claims) *Claims {
	c := *id
	for _, f := range []struct{ dst, src *string }{
		{&c.Email, &info.Email}, {&c.Name, &info.Name}, {&c.GivenName, &info.GivenName},
		{&c.FamilyName, &info.FamilyName}, {&c.Birthdate, &info.Birthdate},
	} {
		if *f.dst == "" {
			*f.dst = *f.src
		}
	}
	if id.Email == "" {
		c.EmailVerified = info.EmailVerified
	}
	return &c
}

func (s *Sessions) tokenResponseError(what string, err error) error {
	if errors.Is(err, ErrProviderUnavailable) {
		return err
	}
	s.log.Warn("token response refused", "token", what, "err", err)
	return fmt.Errorf("%w: %s: %w", ErrNoSession, what, err)
}

// classify sorts a refresh error into session-ending and transient. Any
// OAuth error in a 4xx answer ends the session: invalid_grant is the usual
// word for a refresh token spent, expired or revoked, but Dex says
// invalid_request for a superseded one, and a client whose registration
// changed (invalid_client, unauthorized_client) will not refresh either.
// Only temporarily_unavailable, a 429, a 5xx or no OAuth answer at all
// (network errors, timeouts, an HTML error page) keeps the cookies: "try
// again".
func classify(err error) error {
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) {
		// Network errors, timeouts, a response that is not a token response.
		return fmt.Errorf("%w: redeeming the refresh token: %w", ErrProviderUnavailable, err)
	}
	kind := ErrProviderUnavailable
	if status := statusOf(re); re.ErrorCode != "" && re.ErrorCode != "temporarily_unavailable" &&
		status/100 == 4 && status != http.StatusTooManyRequests {
		kind = ErrNoSession
	}
	return &tokenEndpointError{grant: "the refresh token", kind: kind, re: re}
}

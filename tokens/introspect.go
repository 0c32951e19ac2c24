package tokens

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/changebank/changebank/internal/bounded"
	"github.com/changebank/changebank/tokens/oidc"
)

// Bearer tokens that are not JWTs can be checked only by the provider:
// RFC 7662 token introspection, where discovery lists an
// introspection_endpoint and the app's settings turn it on. The answers are
// remembered (by the token's hash, never the token) so that each token
// costs the provider one call until it expires, and the provider shield's
// rules hold: a token the provider called inactive is never sent again
// (until maxOpaqueAccessLife has passed), and inactive answers draw on a
// small budget (as do errors), spent while a flood of made-up tokens lasts,
// during which unknown tokens get "try again" without a call.

// ErrOpaqueBearer is why a Bearer token that is not a JWT is refused when
// introspection is off or the provider offers none: this app cannot check
// it. It wraps oidc.ErrInvalidToken.
var ErrOpaqueBearer = fmt.Errorf("%w: not a JWT: an opaque access token can be checked only by the provider (RFC 7662 introspection), which is off here", oidc.ErrInvalidToken)

// errIntrospectionThrottled is the answer for an unknown opaque Bearer
// token while the budget of inactive introspection answers is spent: the
// provider was not asked. It wraps ErrProviderUnavailable.
var errIntrospectionThrottled = fmt.Errorf("%w: too many unknown opaque tokens on this instance just now", ErrProviderUnavailable)

// introspectTimeout bounds one introspection call.
const introspectTimeout = 5 * time.Second

// maxIntrospectionBytes bounds the introspection answer read.
const maxIntrospectionBytes = 64 << 10

// introspection is an RFC 7662 answer, the members this app reads.
type introspection struct {
	Active    bool          `json:"active"`
	Subject   string        `json:"sub"`
	ClientID  string        `json:"client_id"`
	Audience  oidc.Audience `json:"aud"`
	Issuer    string        `json:"iss"`
	Expiry    oidc.UnixTime `json:"exp"`
	IssuedAt  oidc.UnixTime `json:"iat"`
	NotBefore oidc.UnixTime `json:"nbf"`
	Scope     string        `json:"scope"`
	TokenType string        `json:"token_type"`
}

// introspector checks opaque Bearer tokens at the provider.
type introspector struct {
	client   *client
	issuer   string
	audience string // what the token's aud must hold, when it has one
	clientID string // the client the token must be issued to, when it has no aud
	now      func() time.Time

	known  *bounded.Map[[sha256.Size]byte, Claims] // active answers, until the token's exp
	dead   *hashSet                                // inactive or unacceptable answers
	budget *exchangeBudget                         // inactive answers: a burst, then one per second
	group  singleflight.Group
}

// maxIntrospected bounds the active answers remembered.
const maxIntrospected = 10000

func newIntrospector(c *client, cfg Config) *introspector {
	return &introspector{client: c, issuer: cfg.Issuer, audience: cfg.Audience, clientID: cfg.ClientID, now: cfg.Clock,
		known: bounded.New[[sha256.Size]byte, Claims](maxIntrospected, bounded.Evict), dead: newHashSet(), budget: newExchangeBudget(cfg.Clock())}
}

// check returns the claims of an opaque Bearer token the provider calls
// active, for this app. Errors: oidc.ErrInvalidToken (inactive, another
// audience, expired), ErrProviderUnavailable (the provider could not say,
// or the budget is spent).
func (in *introspector) check(ctx context.Context, raw string) (*Claims, error) {
	if raw == "" || len(raw) > oidc.MaxTokenLen {
		return nil, fmt.Errorf("%w: empty or larger than %d bytes", oidc.ErrInvalidToken, oidc.MaxTokenLen)
	}
	now := in.now()
	sum := sha256.Sum256([]byte(raw))
	if c, ok := in.known.Get(sum); ok {
		if !now.Add(-oidc.Leeway).Before(c.Expiry.Time()) {
			return nil, fmt.Errorf("%w at %s", oidc.ErrExpired, c.Expiry.Time().UTC())
		}
		return &c, nil
	}
	if in.dead.has(sum, now) {
		return nil, fmt.Errorf("%w: the provider called this token inactive before", oidc.ErrInvalidToken)
	}
	if !in.budget.allow(now) {
		return nil, errIntrospectionThrottled
	}
	ch := in.group.DoChan(string(sum[:]), func() (any, error) {
		// Detached: one caller giving up must not fail the others.
		callCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), introspectTimeout)
		defer cancel()
		ans, err := in.client.introspect(callCtx, raw)
		now := in.now()
		if err != nil {
			// Not judged, so not remembered; but a call all the same: an
			// endpoint answering junk tokens with errors must not be
			// asked without bound either.
			in.budget.spend(now)
			return nil, err
		}
		c, err := in.judge(ans, now)
		if err != nil {
			in.dead.add(sum, now.Add(maxOpaqueAccessLife), now)
			in.budget.spend(now)
			return nil, err
		}
		in.known.Put(sum, *c, func(old Claims) bool { return old.Expiry.Time().Before(now) })
		return c, nil
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return nil, r.Err
		}
		c := *r.Val.(*Claims)
		return &c, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: %w", ErrProviderUnavailable, ctx.Err())
	}
}

// judge turns an introspection answer into claims, or refuses it: inactive,
// no subject, another issuer, for another audience (or, without aud,
// issued to another client), expired or not yet valid. Without exp the
// answer holds for defaultOpaqueAccessLife; no answer holds longer than
// maxOpaqueAccessLife.
func (in *introspector) judge(a *introspection, now time.Time) (*Claims, error) {
	switch {
	case !a.Active:
		return nil, fmt.Errorf("%w: the provider says the token is not active", oidc.ErrInvalidToken)
	case a.Subject == "":
		return nil, fmt.Errorf("%w: the introspection answer names no sub", oidc.ErrInvalidToken)
	case a.Issuer != "" && a.Issuer != in.issuer:
		return nil, fmt.Errorf("%w: issuer %q, want %q", oidc.ErrInvalidToken, a.Issuer, in.issuer)
	case len(a.Audience) > 0 && !slices.Contains(a.Audience, in.audience):
		return nil, fmt.Errorf("%w: audience %q does not hold %q", oidc.ErrInvalidToken, a.Audience, in.audience)
	case len(a.Audience) == 0 && a.ClientID != in.clientID:
		return nil, fmt.Errorf("%w: no aud, and issued to client %q, not this one", oidc.ErrInvalidToken, a.ClientID)
	case a.TokenType != "" && !strings.EqualFold(a.TokenType, "Bearer") && !strings.EqualFold(a.TokenType, "access_token"):
		return nil, fmt.Errorf("%w: token_type %q is no access token", oidc.ErrInvalidToken, a.TokenType)
	case a.NotBefore != 0 && now.Add(oidc.Leeway).Before(a.NotBefore.Time()):
		return nil, fmt.Errorf("%w: not valid before %s", oidc.ErrInvalidToken, a.NotBefore.Time().UTC())
	case a.Expiry != 0 && !now.Add(-oidc.Leeway).Before(a.Expiry.Time()):
		return nil, fmt.Errorf("%w: expired at %s", oidc.ErrInvalidToken, a.Expiry.Time().UTC())
	}
	exp := now.Add(defaultOpaqueAccessLife)
	if a.Expiry != 0 {
		exp = a.Expiry.Time()
	}
	if most := now.Add(maxOpaqueAccessLife); exp.After(most) {
		exp = most
	}
	return &Claims{Issuer: in.issuer, Subject: a.Subject, Audience: a.Audience, Expiry: oidc.UnixTime(exp.Unix()),
		IssuedAt: a.IssuedAt, Scope: a.Scope, AuthParty: a.ClientID}, nil
}

// errNoIntrospection means discovery lists no introspection endpoint.
var errNoIntrospection = errors.New("tokens: the provider lists no introspection_endpoint")

// introspect asks the provider's introspection endpoint (RFC 7662) about
// an access token, authenticating as this client (HTTP Basic, as at the
// token endpoint). A provider that cannot answer, or refuses this client
// the endpoint, is ErrProviderUnavailable: the token was not judged.
func (c *client) introspect(ctx context.Context, token string) (*introspection, error) {
	meta, err := c.provider.Metadata()
	if err != nil {
		return nil, err
	}
	if meta.IntrospectionEndpoint == "" {
		return nil, errNoIntrospection
	}
	body := url.Values{"token": {token}, "token_type_hint": {"access_token"}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, meta.IntrospectionEndpoint, strings.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("tokens: introspection request: %w", err)
	}
	req.SetBasicAuth(url.QueryEscape(c.id), url.QueryEscape(c.secret))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: introspection: %w", ErrProviderUnavailable, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		// 401 or 403: this client may not introspect (a setting at the
		// provider); 5xx, 429: down. Either way the token is not judged.
		return nil, fmt.Errorf("%w: introspection: status %d", ErrProviderUnavailable, resp.StatusCode)
	}
	var a introspection
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxIntrospectionBytes)).Decode(&a); err != nil {
		return nil, fmt.Errorf("%w: introspection: not a JSON answer: %w", ErrProviderUnavailable, err)
	}
	return &a, nil
}

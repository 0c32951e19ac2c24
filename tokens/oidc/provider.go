// Package oidc is the OpenID provider as a relying party sees it: the
// settings that differ between providers (Profile), discovery retried until
// the provider answers (Provider), its signing keys, cached and refetched
// once per unknown kid (keys.go), and the validation of access and ID tokens,
// each check recorded as data (Verifier, with package tokens/check).
//
// Package tokens builds cookie sessions on it; an application needs it only
// for what a session does not cover, such as the readiness of the provider.
//
//   - profile.go: Profile, everything that differs between providers, and the endpoint moves of InternalURL.
//   - provider.go: Provider: discovery, retried with backoff, and readiness.
//   - keys.go: the provider's JWKS, cached, refetched once on an unknown kid, rate-limited.
//   - verify.go: Verifier and Claims: signature, header, claims and kind of access and ID tokens.
//   - tokencache.go: the tokens that passed every check, remembered until they expire.
//   - errors.go: the errors callers branch on.
package oidc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
)

// Metadata holds the endpoints a relying party uses from the provider's
// OIDC discovery document (moved onto InternalURL when the Profile sets it).
type Metadata struct {
	Issuer                string `json:"issuer"`
	AuthorizationEndpoint string `json:"authorization_endpoint"`
	TokenEndpoint         string `json:"token_endpoint"`
	UserinfoEndpoint      string `json:"userinfo_endpoint"`
	JWKSURI               string `json:"jwks_uri"`
	EndSessionEndpoint    string `json:"end_session_endpoint"`
	RevocationEndpoint    string `json:"revocation_endpoint"`
	IntrospectionEndpoint string `json:"introspection_endpoint"`
}

// Provider is the identity provider as this app sees it: its Profile, and
// the endpoints and signing keys found by discovery once it answers.
type Provider struct {
	profile Profile
	client  *http.Client
	now     func() time.Time
	log     *slog.Logger

	mu   sync.RWMutex
	meta *Metadata
	keys KeySet

	ready   chan struct{}
	problem atomic.Pointer[string] // why the last discovery failed, when settings must change; nil otherwise
}

// A setupError is a discovery failure that waiting will not cure: the
// provider and the settings disagree. Its text is written for the person
// who runs the app, and names only public values (issuers, URLs).
type setupError struct{ msg string }

func (e *setupError) Error() string { return "oidc: " + e.msg }

// NewProvider returns the Provider profile describes, reached through
// client. Call Start to discover it.
func NewProvider(profile Profile, client *http.Client, now func() time.Time, log *slog.Logger) *Provider {
	return &Provider{profile: profile.withDefaults(), client: client, now: now, log: log, ready: make(chan struct{})}
}

// Issuer returns the expected iss of every token, exactly as configured.
func (p *Provider) Issuer() string { return p.profile.Issuer }

// Profile returns the provider's profile with its defaults filled in:
// Audience and Scopes are never empty.
func (p *Provider) Profile() Profile { return p.profile }

// Start discovers the provider and fetches its keys, retrying with backoff
// until both succeed or ctx ends: under docker compose the app starts before
// FusionAuth has finished its kickstart.
func (p *Provider) Start(ctx context.Context) {
	backoff := 250 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := p.discover(ctx)
		if err == nil {
			p.problem.Store(nil)
			close(p.ready)
			p.log.Info("identity provider ready", "issuer", p.profile.Issuer, "attempts", attempt)
			return
		}
		var se *setupError
		switch {
		case errors.As(err, &se):
			p.problem.Store(&se.msg)
		case errors.Is(err, errNoSigningKey):
			msg := "The provider's key set (jwks_uri) holds no key this app can check signatures with (RSA, EC P-256/P-384/P-521 or Ed25519, for signing): the app's log names each key it skipped and why."
			p.problem.Store(&msg)
		default:
			p.problem.Store(nil)
		}
		p.log.Warn("identity provider not ready, retrying", "issuer", p.profile.Issuer, "attempt", attempt, "retry_in", backoff, "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 10*time.Second)
	}
}

// WaitReady blocks until the provider is ready or ctx ends.
func (p *Provider) WaitReady(ctx context.Context) error {
	select {
	case <-p.ready:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Ready reports whether discovery and the first JWKS fetch have succeeded.
func (p *Provider) Ready() bool {
	select {
	case <-p.ready:
		return true
	default:
		return false
	}
}

// Problem says, for people, why the provider cannot be used when waiting
// will not cure it (a discovery document naming another issuer, a key set
// without a usable signing key, plain http endpoints for an https app);
// "" while it is merely starting or unreachable, and once it is ready.
func (p *Provider) Problem() string {
	if m := p.problem.Load(); m != nil && !p.Ready() {
		return *m
	}
	return ""
}

// Metadata returns the endpoints, or an error wrapping
// ErrProviderUnavailable until discovery has succeeded.
func (p *Provider) Metadata() (Metadata, error) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.meta == nil || !p.Ready() {
		return Metadata{}, errNotReady
	}
	return *p.meta, nil
}

// LookupKey implements KeySet with the provider's JWKS (see remoteKeySet).
func (p *Provider) LookupKey(ctx context.Context, kid string) (jwk.Key, error) {
	p.mu.RLock()
	ks := p.keys
	p.mu.RUnlock()
	if ks == nil {
		return nil, fmt.Errorf("%w (%w)", ErrKeysUnavailable, errNotReady)
	}
	return ks.LookupKey(ctx, kid)
}

// Keys implements KeySet with the provider's JWKS.
func (p *Provider) Keys(ctx context.Context) ([]jwk.Key, error) {
	p.mu.RLock()
	ks := p.keys
	p.mu.RUnlock()
	if ks == nil {
		return nil, fmt.Errorf("%w (%w)", ErrKeysUnavailable, errNotReady)
	}
	return ks.Keys(ctx)
}

// maxDiscoveryBytes bounds the discovery document read.
const maxDiscoveryBytes = 1 << 20

func (p *Provider) discover(ctx context.Context) error {
	reqCtx, cancel := context.WithTimeout(ctx, p.client.Timeout+time.Second)
	defer cancel()
	where, err := p.profile.discoveryURL()
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(reqCtx, http.MethodGet, where, nil)
	if err != nil {
		return fmt.Errorf("oidc: discovery request: %w", err)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return fmt.Errorf("oidc: discovery: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("oidc: discovery: status %d", resp.StatusCode)
	}
	var m Metadata
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxDiscoveryBytes)).Decode(&m); err != nil {
		return fmt.Errorf("oidc: discovery document: %w", err)
	}
	// Compared exactly (OpenID Connect Discovery 1.0, section 4.3): a
	// trailing slash or a path is part of the issuer. Until FusionAuth's
	// kickstart has set the tenant's issuer it still reports the default
	// (acme.com): not ready yet.
	if m.Issuer != p.profile.Issuer {
		return &setupError{fmt.Sprintf("The provider's discovery document names the issuer %q, but this app expects exactly %q (ISSUER must be written as the provider writes it, trailing slash included; with FusionAuth, is its kickstart still running?).", m.Issuer, p.profile.Issuer)}
	}
	if m.AuthorizationEndpoint == "" || m.TokenEndpoint == "" || m.JWKSURI == "" {
		return errors.New("oidc: discovery document lacks the authorization, token or JWKS endpoint")
	}
	if err := p.profile.moveEndpoints(&m); err != nil {
		return err
	}
	if bad := p.profile.plainEndpoints(m); len(bad) > 0 {
		return &setupError{fmt.Sprintf("This app is served over https, but the provider's discovery document names plain http endpoints (%s): the client secret and the tokens would cross the network unencrypted. Serve the provider over https (only loopback hosts are exempt).", strings.Join(bad, ", "))}
	}
	ks, err := newRemoteKeySet(ctx, m.JWKSURI, p.client, p.now, p.log)
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.meta, p.keys = &m, ks
	p.mu.Unlock()
	return nil
}

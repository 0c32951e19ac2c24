package tokens

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
)

// metadata holds the endpoints this app uses from the provider's OIDC
// discovery document.
type metadata struct {
	Issuer                string `json:"issuer"`
	AuthorizationEndpoint string `json:"authorization_endpoint"`
	TokenEndpoint         string `json:"token_endpoint"`
	UserinfoEndpoint      string `json:"userinfo_endpoint"`
	JWKSURI               string `json:"jwks_uri"`
	EndSessionEndpoint    string `json:"end_session_endpoint"`
	RevocationEndpoint    string `json:"revocation_endpoint"`
	// SigningAlgs are the algorithms the provider signs ID tokens with; a
	// JWKS key that names no algorithm is used with these only.
	SigningAlgs []string `json:"id_token_signing_alg_values_supported"`
}

// Provider is the identity provider as this app sees it: its endpoints and
// its signing keys, found by discovery once it answers.
//
// FusionAuth builds the URLs in its discovery document from the host the
// request came to. Inside docker compose the app asks http://fusionauth:9011,
// a name the browser cannot resolve, so endpoints the browser visits
// (authorize, end session) are rewritten to the issuer's origin and those
// the app calls itself (token, JWKS, userinfo, revocation) to the internal one.
type Provider struct {
	issuer   string
	internal string // base URL for server-to-server calls; the issuer when unset
	client   *http.Client
	now      func() time.Time
	log      *slog.Logger

	mu   sync.RWMutex
	meta *metadata
	keys KeySet

	ready chan struct{}
}

// NewProvider returns a Provider for issuer, reached at internalURL ("" for
// the issuer itself) through client. Call Start to discover it.
func NewProvider(issuer, internalURL string, client *http.Client, now func() time.Time, log *slog.Logger) *Provider {
	if internalURL == "" {
		internalURL = issuer
	}
	return &Provider{
		issuer:   strings.TrimSuffix(issuer, "/"),
		internal: strings.TrimSuffix(internalURL, "/"),
		client:   client,
		now:      now,
		log:      log,
		ready:    make(chan struct{}),
	}
}

// Issuer returns the expected iss of every token.
func (p *Provider) Issuer() string { return p.issuer }

// Start discovers the provider and fetches its keys, retrying with backoff
// until both succeed or ctx ends: under docker compose the app starts before
// FusionAuth has finished its kickstart.
func (p *Provider) Start(ctx context.Context) {
	backoff := 250 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := p.discover(ctx)
		if err == nil {
			close(p.ready)
			p.log.Info("identity provider ready", "issuer", p.issuer, "attempts", attempt)
			return
		}
		p.log.Warn("identity provider not ready, retrying", "issuer", p.issuer, "attempt", attempt, "retry_in", backoff, "err", err)
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

// metadata returns the endpoints, or an error wrapping ErrProviderUnavailable
// until discovery has succeeded.
func (p *Provider) metadata() (metadata, error) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.meta == nil || !p.Ready() {
		return metadata{}, errNotReady
	}
	return *p.meta, nil
}

// LookupKey implements KeySet with the provider's JWKS.
func (p *Provider) LookupKey(ctx context.Context, kid string) (jwk.Key, error) {
	p.mu.RLock()
	ks := p.keys
	p.mu.RUnlock()
	if ks == nil {
		return nil, fmt.Errorf("%w (%w)", errKeysUnavailable, errNotReady)
	}
	return ks.LookupKey(ctx, kid)
}

// signingAlgs returns the algorithms discovery lists for ID tokens, or none
// before discovery.
func (p *Provider) signingAlgs() []string {
	m, err := p.metadata()
	if err != nil {
		return nil
	}
	return m.SigningAlgs
}

// apiURL returns the URL of one of the provider's own API paths, reached
// server to server.
func (p *Provider) apiURL(path string) string { return p.internal + path }

// maxDiscoveryBytes bounds the discovery document read.
const maxDiscoveryBytes = 1 << 20

func (p *Provider) discover(ctx context.Context) error {
	reqCtx, cancel := context.WithTimeout(ctx, p.client.Timeout+time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(reqCtx, http.MethodGet, p.internal+"/.well-known/openid-configuration", nil)
	if err != nil {
		return fmt.Errorf("tokens: discovery request: %w", err)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return fmt.Errorf("tokens: discovery: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("tokens: discovery: status %d", resp.StatusCode)
	}
	var m metadata
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxDiscoveryBytes)).Decode(&m); err != nil {
		return fmt.Errorf("tokens: discovery document: %w", err)
	}
	// Until FusionAuth's kickstart has set the tenant's issuer it still
	// reports the default (acme.com): not ready yet.
	if strings.TrimSuffix(m.Issuer, "/") != p.issuer {
		return fmt.Errorf("tokens: discovery names issuer %q, want %q (is the kickstart still running?)", m.Issuer, p.issuer)
	}
	if m.AuthorizationEndpoint == "" || m.TokenEndpoint == "" || m.JWKSURI == "" {
		return errors.New("tokens: discovery document lacks the authorization, token or JWKS endpoint")
	}
	for _, e := range []struct {
		u    *string
		base string
	}{
		{&m.AuthorizationEndpoint, p.issuer},
		{&m.EndSessionEndpoint, p.issuer},
		{&m.TokenEndpoint, p.internal},
		{&m.UserinfoEndpoint, p.internal},
		{&m.JWKSURI, p.internal},
		{&m.RevocationEndpoint, p.internal},
	} {
		if *e.u, err = rebase(*e.u, e.base); err != nil {
			return fmt.Errorf("tokens: discovery document: %w", err)
		}
	}
	ks, err := NewRemoteKeySet(ctx, m.JWKSURI, p.client, p.now)
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.meta, p.keys = &m, ks
	p.mu.Unlock()
	return nil
}

// rebase moves endpoint onto base's scheme and host, keeping its path and query.
func rebase(endpoint, base string) (string, error) {
	if endpoint == "" {
		return "", nil
	}
	e, err := url.Parse(endpoint)
	if err != nil {
		return "", fmt.Errorf("endpoint %q: %w", endpoint, err)
	}
	b, err := url.Parse(base)
	if err != nil {
		return "", fmt.Errorf("base %q: %w", base, err)
	}
	e.Scheme, e.Host = b.Scheme, b.Host
	return e.String(), nil
}

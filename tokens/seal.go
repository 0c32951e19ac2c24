// Package tokens keeps a whole OpenID Connect login session in browser cookies.
//
// It knows tokens and cookies and nothing of any web framework: it reads an
// *http.Request and writes Set-Cookie headers to an http.ResponseWriter.
// The pieces, one file each:
//
//   - seal.go: AEAD sealing of cookie values under per-cookie keys, with secret rotation.
//   - cookies.go: the cookie store: names, attributes (HttpOnly, SameSite, Secure, __Host-), sealed values.
//   - csrf.go: anti-CSRF tokens for forms, bound to the login.
//   - provider.go: OIDC discovery, retried until the provider is up.
//   - client.go: this app as the provider's OAuth client: code exchange, refresh, revocation, end-session URL.
//   - keys.go: the provider's JWKS, cached, refetched once on an unknown kid.
//   - verify.go: access-token and ID-token validation.
//   - session.go: the session the cookies hold, loaded and written per request.
//   - refresh.go: silent refresh, once per browser even when requests race.
//   - login.go: the login transaction (state, nonce, PKCE) and the code exchange.
//   - logout.go: refresh-token revocation and the provider's end-session URL.
//   - trace.go: the session's checks recorded one by one, for the inspector's verification trace.
//   - lab.go: the attack lab's tampered copies of a session's cookies, judged by the real checks.
package tokens

import (
	"context"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwe"
)

// MinSecretLen is the shortest APP_SECRET_KEY entry accepted: 32 bytes, the
// size of the AES-256 key derived from it.
const MinSecretLen = 32

// errUnsealable is returned by Sealer.Open for a value that was not sealed by
// this app for this cookie under any current secret: tampered, truncated,
// moved from another cookie, or sealed under a retired secret.
var errUnsealable = errors.New("tokens: cookie value cannot be opened")

// A Sealer encrypts and authenticates cookie values. Each value is a compact
// JWE (alg "dir", enc "A256GCM") under a key derived with HKDF-SHA256 from an
// app secret and the cookie's name, so a value sealed for one cookie cannot
// be opened as another. The first secret seals; every secret opens, which is
// how a secret is rotated without logging everybody out.
type Sealer struct {
	secrets []secretKeys
}

type secretKeys struct {
	id     string // public, short: lets Open pick the right secret at once
	secret []byte
}

// NewSealer returns a Sealer for the given secrets, newest first.
// Each must be at least MinSecretLen bytes.
func NewSealer(secrets ...[]byte) (*Sealer, error) {
	if err := checkSecrets(secrets); err != nil {
		return nil, err
	}
	s := &Sealer{}
	for _, secret := range secrets {
		id, err := hkdf.Key(sha256.New, secret, nil, "changebank secret id", 6)
		if err != nil {
			return nil, fmt.Errorf("tokens: deriving secret id: %w", err)
		}
		s.secrets = append(s.secrets, secretKeys{id: base64.RawURLEncoding.EncodeToString(id), secret: secret})
	}
	return s, nil
}

// checkSecrets refuses an empty list and any secret shorter than MinSecretLen.
func checkSecrets(secrets [][]byte) error {
	if len(secrets) == 0 {
		return errors.New("tokens: no secret given")
	}
	for i, secret := range secrets {
		if len(secret) < MinSecretLen {
			return fmt.Errorf("tokens: secret #%d is %d bytes, want at least %d", i+1, len(secret), MinSecretLen)
		}
	}
	return nil
}

// key derives the AES-256 key for one cookie under one secret. The cookie's
// name is the HKDF info, which is what makes a value useless in another cookie.
func (k secretKeys) key(cookie string) ([]byte, error) {
	return hkdf.Key(sha256.New, k.secret, nil, "changebank cookie v1 "+cookie, 32)
}

// Seal encrypts plaintext for the named cookie under the newest secret.
func (s *Sealer) Seal(cookie string, plaintext []byte) (string, error) {
	newest := s.secrets[0]
	key, err := newest.key(cookie)
	if err != nil {
		return "", fmt.Errorf("tokens: deriving key: %w", err)
	}
	hdr := jwe.NewHeaders()
	if err := hdr.Set("kid", newest.id); err != nil {
		return "", fmt.Errorf("tokens: sealing: %w", err)
	}
	out, err := jwe.Encrypt(plaintext,
		jwe.WithKey(jwa.DIRECT(), key),
		jwe.WithContentEncryption(jwa.A256GCM()),
		jwe.WithProtectedHeaders(hdr))
	if err != nil {
		return "", fmt.Errorf("tokens: sealing: %w", err)
	}
	return string(out), nil
}

// maxSealedLen bounds what Open will even try to parse: no cookie of ours is
// near it, and a browser will not send a larger one.
const maxSealedLen = 4096

// Open decrypts a value sealed for the named cookie. Any failure is
// errUnsealable: callers treat every one alike, as a missing cookie.
func (s *Sealer) Open(cookie, sealed string) ([]byte, error) {
	if sealed == "" || len(sealed) > maxSealedLen || !canonical(sealed) {
		return nil, errUnsealable
	}
	// Only "dir" with A256GCM, and only under the secret the header names:
	// the header is the attacker's, so it chooses nothing else.
	keys := jwe.KeyProviderFunc(func(_ context.Context, sink jwe.KeySink, _ jwe.Recipient, msg *jwe.Message) error {
		hdr := msg.ProtectedHeaders()
		alg, _ := hdr.Algorithm()
		enc, _ := hdr.ContentEncryption()
		kid, _ := hdr.KeyID()
		if alg != jwa.DIRECT() || enc != jwa.A256GCM() {
			return errUnsealable
		}
		for _, k := range s.secrets {
			if k.id == kid {
				key, err := k.key(cookie)
				if err != nil {
					return err
				}
				sink.Key(jwa.DIRECT(), key)
				return nil
			}
		}
		return errUnsealable
	})
	plain, err := jwe.Decrypt([]byte(sealed), jwe.WithKeyProvider(keys))
	if err != nil {
		return nil, errUnsealable
	}
	return plain, nil
}

// canonical reports whether every part of a compact JWE is base64url in its
// one canonical form. The decoder jwx uses ignores a last character's
// unused bits, so without this a changed value could still open.
func canonical(sealed string) bool {
	for part := range strings.SplitSeq(sealed, ".") {
		if _, err := base64.RawURLEncoding.Strict().DecodeString(part); err != nil {
			return false
		}
	}
	return true
}

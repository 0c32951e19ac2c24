package cookie

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwe"
)

// MinSecretLen is the shortest APP_SECRET_KEY entry accepted: 32 bytes, the
// size of the AES-256 key derived from it.
const MinSecretLen = 32

// ErrUnsealable is returned by Sealer.Open for a value that was not sealed by
// this app for this cookie under any current secret: tampered, truncated,
// moved from another cookie, or sealed under a retired secret.
var ErrUnsealable = errors.New("cookie: cookie value cannot be opened")

// A Sealer encrypts and authenticates cookie values. Each value is a compact
// JWE (alg "dir", enc "A256GCM") under a key derived with HKDF-SHA256 from an
// app secret and the cookie's name, so a value sealed for one cookie cannot
// be opened as another. The first secret seals; every secret opens, which is
// how a secret is rotated without logging everybody out.
//
// Values are sealed with jwx and opened by a strict reader of exactly that
// form (see Open), with the keys of the session cookies derived once, here.
type Sealer struct {
	secrets []secretKeys
}

type secretKeys struct {
	id     string // public, short: lets Open pick the right secret at once
	secret []byte
	header string                 // the protected header jwx writes under this secret, base64url
	aeads  map[string]cipher.AEAD // per session cookie, derived at start; read-only after
	keys   map[string][]byte
}

// derivedAtStart are the sealed cookies read on every request: their keys
// are derived once. Others (the login transaction's) are derived on use.
var derivedAtStart = []string{Refresh, UserInfo}

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
			return nil, fmt.Errorf("cookie: deriving secret id: %w", err)
		}
		k := secretKeys{id: base64.RawURLEncoding.EncodeToString(id), secret: secret,
			aeads: map[string]cipher.AEAD{}, keys: map[string][]byte{}}
		for _, name := range derivedAtStart {
			key, err := k.deriveKey(name)
			if err != nil {
				return nil, fmt.Errorf("cookie: deriving key: %w", err)
			}
			if k.aeads[name], err = newGCM(key); err != nil {
				return nil, err
			}
			k.keys[name] = key
		}
		// The header jwx writes is fixed for a secret: learn it from jwx
		// itself, so that Open recognises it with one comparison.
		probe, err := k.seal("changebank probe", nil)
		if err != nil {
			return nil, err
		}
		k.header, _, _ = strings.Cut(probe, ".")
		s.secrets = append(s.secrets, k)
	}
	return s, nil
}

// checkSecrets refuses an empty list and any secret shorter than MinSecretLen.
func checkSecrets(secrets [][]byte) error {
	if len(secrets) == 0 {
		return errors.New("cookie: no secret given")
	}
	for i, secret := range secrets {
		if len(secret) < MinSecretLen {
			return fmt.Errorf("cookie: secret #%d is %d bytes, want at least %d", i+1, len(secret), MinSecretLen)
		}
	}
	return nil
}

// deriveKey derives the AES-256 key for one cookie under one secret. The
// cookie's name is the HKDF info, which is what makes a value useless in
// another cookie.
func (k secretKeys) deriveKey(cookie string) ([]byte, error) {
	return hkdf.Key(sha256.New, k.secret, nil, "changebank cookie v1 "+cookie, 32)
}

// key returns the cookie's key, derived at start for the session cookies.
func (k secretKeys) key(cookie string) ([]byte, error) {
	if key, ok := k.keys[cookie]; ok {
		return key, nil
	}
	return k.deriveKey(cookie)
}

// aead returns the cookie's AES-GCM, made at start for the session cookies.
func (k secretKeys) aead(cookie string) (cipher.AEAD, error) {
	if a, ok := k.aeads[cookie]; ok {
		return a, nil
	}
	key, err := k.deriveKey(cookie)
	if err != nil {
		return nil, err
	}
	return newGCM(key)
}

func newGCM(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("cookie: AES key: %w", err)
	}
	gcm, err := cipher.NewGCM(block) // 12-byte nonce, 16-byte tag: JWE's A256GCM
	if err != nil {
		return nil, fmt.Errorf("cookie: AES-GCM: %w", err)
	}
	return gcm, nil
}

// Seal encrypts plaintext for the named cookie under the newest secret.
func (s *Sealer) Seal(cookie string, plaintext []byte) (string, error) {
	return s.secrets[0].seal(cookie, plaintext)
}

func (k secretKeys) seal(cookie string, plaintext []byte) (string, error) {
	key, err := k.key(cookie)
	if err != nil {
		return "", fmt.Errorf("cookie: deriving key: %w", err)
	}
	hdr := jwe.NewHeaders()
	if err := hdr.Set("kid", k.id); err != nil {
		return "", fmt.Errorf("cookie: sealing: %w", err)
	}
	out, err := jwe.Encrypt(plaintext,
		jwe.WithKey(jwa.DIRECT(), key),
		jwe.WithContentEncryption(jwa.A256GCM()),
		jwe.WithProtectedHeaders(hdr))
	if err != nil {
		return "", fmt.Errorf("cookie: sealing: %w", err)
	}
	return string(out), nil
}

// maxSealedLen bounds what Open will even try to parse: no session of ours
// is larger once its chunks are put back together.
const maxSealedLen = MaxSessionBytes

// b64 is base64url without padding, refusing non-zero trailing bits, as
// RFC 7515/7516 compact serialisation requires.
var b64 = base64.RawURLEncoding.Strict()

// Open decrypts a value sealed for the named cookie. Any failure is
// ErrUnsealable: callers treat every one alike, as a missing cookie.
//
// It reads the compact JWE this app writes and nothing else: exactly five
// parts in base64url without padding; a protected header of exactly alg
// "dir", enc "A256GCM" and the kid of a current secret; an empty encrypted
// key; a 12-byte IV and a 16-byte tag; AES-256-GCM with the header's ASCII
// as additional data (RFC 7516 5.2). The header is the attacker's, so it
// chooses nothing else: no other algorithm, no compression, no crit.
func (s *Sealer) Open(cookie, sealed string) ([]byte, error) {
	if sealed == "" || len(sealed) > maxSealedLen {
		return nil, ErrUnsealable
	}
	var parts [5]string
	rest := sealed
	for i := range 4 {
		var ok bool
		if parts[i], rest, ok = strings.Cut(rest, "."); !ok {
			return nil, ErrUnsealable
		}
	}
	parts[4] = rest
	if strings.Contains(rest, ".") || parts[1] != "" {
		return nil, ErrUnsealable // six parts or more; an encrypted key, which "dir" has not
	}
	k, ok := s.secretFor(parts[0])
	if !ok {
		return nil, ErrUnsealable
	}
	if b64.DecodedLen(len(parts[2])) != 12 || b64.DecodedLen(len(parts[4])) != 16 {
		return nil, ErrUnsealable
	}
	// One buffer: IV, then ciphertext followed by the tag, as Go's GCM wants it.
	buf := make([]byte, 12+b64.DecodedLen(len(parts[3]))+16)
	iv, sealedText := buf[:12], buf[12:]
	if n, err := b64.Decode(iv, []byte(parts[2])); err != nil || n != 12 {
		return nil, ErrUnsealable
	}
	n, err := b64.Decode(sealedText, []byte(parts[3]))
	if err != nil {
		return nil, ErrUnsealable
	}
	if m, err := b64.Decode(sealedText[n:], []byte(parts[4])); err != nil || m != 16 {
		return nil, ErrUnsealable
	}
	gcm, err := k.aead(cookie)
	if err != nil {
		return nil, ErrUnsealable
	}
	plain, err := gcm.Open(sealedText[:0], iv, sealedText[:n+16], []byte(parts[0]))
	if err != nil {
		return nil, ErrUnsealable
	}
	return plain, nil
}

// secretFor returns the secret a protected header names, when the header
// is exactly alg "dir", enc "A256GCM" and a current secret's kid: first as
// the bytes jwx writes, else (another member order) by reading its JSON.
func (s *Sealer) secretFor(header string) (secretKeys, bool) {
	for _, k := range s.secrets {
		if header == k.header {
			return k, true
		}
	}
	raw, err := b64.DecodeString(header)
	if err != nil {
		return secretKeys{}, false
	}
	var h map[string]any
	if json.Unmarshal(raw, &h) != nil || len(h) != 3 || h["alg"] != "dir" || h["enc"] != "A256GCM" {
		return secretKeys{}, false
	}
	for _, k := range s.secrets {
		if h["kid"] == k.id {
			return k, true
		}
	}
	return secretKeys{}, false
}

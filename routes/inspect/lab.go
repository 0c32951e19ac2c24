package inspect

import (
	"context"
	"crypto"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/changebank/changebank/tokens"
	"github.com/changebank/changebank/tokens/cookie"
	"github.com/changebank/changebank/tokens/oidc"
)

// Attack names one tampering the attack lab tries on a copy of the
// learner's cookies.
type Attack string

// The attacks, in the order the lab offers them.
const (
	AttackFlipByte     Attack = "flip-byte"     // one character of cb_userinfo changed
	AttackMoveRefresh  Attack = "move-refresh"  // cb_refresh_token's value sent as cb_userinfo
	AttackAlgNone      Attack = "alg-none"      // the access token re-encoded with alg none, no signature
	AttackHS256Public  Attack = "hs256-public"  // HS256 with the provider's public key as the HMAC secret
	AttackExpired      Attack = "expired"       // the access token alone, checked after its exp
	AttackOtherSubject Attack = "other-subject" // another user's cb_userinfo with this access token
	AttackForeignKey   Attack = "foreign-key"   // signed by a key not in the JWKS, under the provider's kid
	AttackAfterLogout  Attack = "after-logout"  // the cookies replayed after a logout in this browser
)

// Attacks lists every attack, in the order the lab offers them.
var Attacks = []Attack{
	AttackFlipByte, AttackMoveRefresh, AttackAlgNone, AttackHS256Public,
	AttackExpired, AttackOtherSubject, AttackForeignKey, AttackAfterLogout,
}

// ErrNoAttack means the name is not an attack the lab knows.
var ErrNoAttack = errors.New("inspect: no such attack")

// ErrNothingToTamper means the request lacks a cookie the attack alters
// (for instance an access token that has just expired and not been
// refreshed yet).
var ErrNothingToTamper = errors.New("inspect: the request lacks the cookies this attack alters")

// AttackResult is what one attack did and what the real checks made of it.
type AttackResult struct {
	Attack Attack
	Trace  *Trace
	// Shown is the tampered part, decoded (a JWT's header and claims, or
	// a sealed cookie's content), when that helps; never a token or cookie value.
	Shown string
}

// Try tampers with a copy of r's session cookies as a names, and traces
// the real checks on the copy. Nothing is written and nothing refreshed:
// the request's own session is untouched. It returns ErrNoAttack for an
// unknown name, ErrNothingToTamper when r lacks a cookie the attack needs,
// or an error wrapping tokens.ErrProviderUnavailable when the provider's
// keys cannot be had.
func Try(ctx context.Context, s *tokens.Sessions, r *http.Request, a Attack) (*AttackResult, error) {
	store := s.Cookies()
	jar := map[string]string{}
	for _, base := range []string{cookie.Access, cookie.Refresh, cookie.UserInfo, cookie.LoggedOut} {
		if v := store.Get(r, base); v != "" {
			jar[base] = v
		}
	}
	var user tokens.UserInfo
	if err := store.Open(r, cookie.UserInfo, &user); err != nil {
		return nil, ErrNothingToTamper
	}
	access := jar[cookie.Access]
	hdr, claims := peekJWT(access)
	if hdr == nil || claims == nil {
		return nil, ErrNothingToTamper
	}
	payload := strings.Split(access, ".")[1]
	kid := str(hdr["kid"])
	res := &AttackResult{Attack: a}
	var at time.Time
	var err error
	switch a {
	case AttackFlipByte:
		jar[cookie.UserInfo] = flipByte(jar[cookie.UserInfo])
	case AttackMoveRefresh:
		if jar[cookie.Refresh] == "" {
			return nil, ErrNothingToTamper
		}
		jar[cookie.UserInfo] = jar[cookie.Refresh]
	case AttackAlgNone:
		jar[cookie.Access], res.Shown, err = forge(hdr, "none", payload, claims, func([]byte) ([]byte, error) { return nil, nil })
	case AttackHS256Public:
		var secret []byte
		if secret, err = publicKeyPEM(ctx, s.Provider(), kid); err == nil {
			jar[cookie.Access], res.Shown, err = forge(hdr, "HS256", payload, claims, func(in []byte) ([]byte, error) {
				mac := hmac.New(sha256.New, secret)
				mac.Write(in)
				return mac.Sum(nil), nil
			})
		}
	case AttackExpired:
		// A stolen access token alone, tried after it expired.
		delete(jar, cookie.Refresh)
		exp, _ := claims["exp"].(float64)
		at = time.Unix(int64(exp), 0).Add(oidc.Leeway + time.Second)
		res.Shown = fmt.Sprintf("checked at %s, the token's exp %s plus the %s leeway and a second",
			at.UTC().Format("15:04:05 UTC"), time.Unix(int64(exp), 0).UTC().Format("15:04:05 UTC"), oidc.Leeway)
	case AttackOtherSubject:
		other := user
		other.Subject, other.Name, other.Email = "00000000-0000-4000-8000-000000000000", "Another User", "another@example.com"
		if jar[cookie.UserInfo], err = store.Seal(cookie.UserInfo, other); err == nil {
			shown, _ := json.MarshalIndent(other, "", "  ")
			res.Shown = "cb_userinfo: " + string(shown)
		}
	case AttackForeignKey:
		jar[cookie.Access], res.Shown, err = forge(hdr, "RS256", payload, claims, func(in []byte) ([]byte, error) {
			key, err := throwawayKey()
			if err != nil {
				return nil, err
			}
			sum := sha256.Sum256(in)
			return rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
		})
	case AttackAfterLogout:
		jar[cookie.LoggedOut] = strconv.FormatInt(user.LoginAt+1, 10)
		res.Shown = fmt.Sprintf("cb_logged_out: %d (a logout at %s, after this login)", user.LoginAt+1,
			time.Unix(user.LoginAt+1, 0).UTC().Format("15:04:05 UTC"))
	default:
		return nil, ErrNoAttack
	}
	if err != nil {
		return nil, fmt.Errorf("inspect: preparing attack %s: %w", a, err)
	}
	copyReq := r.Clone(ctx)
	copyReq.Header = r.Header.Clone()
	copyReq.Header.Del("Cookie")
	for base, v := range jar {
		copyReq.AddCookie(&http.Cookie{Name: store.Name(base), Value: v})
	}
	res.Trace = Run(ctx, s, copyReq, at)
	if res.Trace.Outcome == Unjudged {
		return nil, oidc.ErrKeysUnavailable
	}
	return res, nil
}

// flipByte changes one character in the middle of a sealed value's
// ciphertext (the fourth of its five parts), to another base64url character.
func flipByte(sealed string) string {
	parts := strings.Split(sealed, ".")
	i := len(parts) / 2
	if len(parts) == 5 {
		i = 3
	}
	p := []byte(parts[i])
	if len(p) == 0 {
		return sealed + "A"
	}
	j := len(p) / 2
	if p[j] == 'A' {
		p[j] = 'B'
	} else {
		p[j] = 'A'
	}
	parts[i] = string(p)
	return strings.Join(parts, ".")
}

// forge builds a JWT with the original header and claims, the header's alg
// replaced, signed by sign. It returns the token and its decoded header
// and claims, for showing.
func forge(hdr map[string]any, alg, payload string, claims map[string]any, sign func([]byte) ([]byte, error)) (string, string, error) {
	h := map[string]any{}
	for k, v := range hdr {
		h[k] = v
	}
	h["alg"] = alg
	hb, err := json.Marshal(h)
	if err != nil {
		return "", "", err
	}
	input := base64.RawURLEncoding.EncodeToString(hb) + "." + payload
	sig, err := sign([]byte(input))
	if err != nil {
		return "", "", err
	}
	shownHdr, _ := json.MarshalIndent(h, "", "  ")
	shownClaims, _ := json.MarshalIndent(claims, "", "  ")
	return input + "." + base64.RawURLEncoding.EncodeToString(sig),
		"header: " + string(shownHdr) + "\nclaims: " + string(shownClaims), nil
}

// publicKeyPEM returns the provider's public key for kid as PEM, the bytes
// an HMAC-with-the-public-key forgery uses as its secret.
func publicKeyPEM(ctx context.Context, keys oidc.KeySet, kid string) ([]byte, error) {
	key, err := keys.LookupKey(ctx, kid)
	if err != nil {
		return nil, err
	}
	var raw any
	if err := jwk.Export(key, &raw); err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKIXPublicKey(raw)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

// throwawayKey is the lab's own RSA key, made once per process, never
// published: what an attacker without the provider's key signs with.
var throwawayKey = sync.OnceValues(func() (*rsa.PrivateKey, error) {
	return rsa.GenerateKey(rand.Reader, 2048)
})

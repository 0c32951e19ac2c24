// Package inspect words, for people, what the session's real checks make
// of a request's cookies: the session inspector's verification trace, and
// the attack lab, which runs the same checks on tampered copies of them.
// It reads the checks as data (tokens.Sessions.Check) and decodes the
// cookies for display; it never acts on a session.
//
//   - trace.go: a Trace of the checks, each step with its value in words, and the outcome.
//   - lab.go: the attacks the lab tries, and what the checks made of each.
//   - reveal.go: a sealed cookie's content and a secret's fingerprint, for display.
package inspect

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/changebank/changebank/tokens"
	"github.com/changebank/changebank/tokens/check"
	"github.com/changebank/changebank/tokens/cookie"
	"github.com/changebank/changebank/tokens/oidc"
)

// Result is what one check found.
type Result string

// The results a check can have.
const (
	Pass       Result = "pass"
	Fail       Result = "fail"
	NotChecked Result = "not checked"
)

// Outcome is what Load would have done with the traced cookies.
type Outcome string

// The outcomes of a trace.
const (
	// Accepted: the session is served as it is.
	Accepted Outcome = "accepted"
	// WouldRefresh: the cookies are sound but the access token is missing,
	// expired or about to be; Load would redeem the refresh token (a trace
	// never does).
	WouldRefresh Outcome = "would refresh"
	// Refused: the session ends; Decided names the check that ended it.
	Refused Outcome = "refused"
	// Unjudged: the provider's keys could not be fetched; nothing was decided.
	Unjudged Outcome = "not judged"
)

// Step is one check of a trace: what was looked at and what it found.
// Value never holds a token or a cookie value, only decoded facts.
type Step struct {
	Check  check.Name
	Value  string
	Result Result
}

// Trace is the record of one run of the session checks on a request's
// cookies: the steps the real code took, in its order, then the checks it
// never reached.
type Trace struct {
	Steps   []Step
	Kid     string // the key that verified the access token's signature; "" when none did
	Outcome Outcome
	Decided check.Name // the check that refused the session, when Outcome is Refused
	At      time.Time  // the time the checks were made against
	// Opaque reports that the session's access token is opaque (not a
	// JWT): sealed in its cookie, checked by the provider only at each
	// refresh.
	Opaque bool
}

// Step returns the step for check c.
func (t *Trace) Step(c check.Name) Step {
	for _, s := range t.Steps {
		if s.Check == c {
			return s
		}
	}
	return Step{Check: c, Result: NotChecked}
}

// Run runs the session's checks on r's cookies as of at (now when at is
// zero) and words each one. It never refreshes, writes no cookie and calls
// no token endpoint (the provider's JWKS may be fetched, as a load would).
func Run(ctx context.Context, s *tokens.Sessions, r *http.Request, at time.Time) *Trace {
	v := s.Check(ctx, r, at)
	t := &Trace{At: v.At}
	for _, st := range v.Steps {
		res := Fail
		if st.Passed {
			res = Pass
		}
		t.Steps = append(t.Steps, Step{Check: st.Name, Result: res})
	}
	switch {
	case v.Err == nil && v.Refresh:
		t.Outcome = WouldRefresh
	case v.Err == nil:
		t.Outcome = Accepted
	case errors.Is(v.Err, tokens.ErrProviderUnavailable):
		t.Outcome = Unjudged
	default:
		t.Outcome = Refused
		t.Decided = decider(t, s.Cookies().Get(r, cookie.Refresh) != "")
	}
	if t.Step(check.Signature).Result == Pass {
		t.Kid = v.Kid
	}
	describe(t, s, r, v.Alg, v.Kid)
	var user tokens.UserInfo
	opaque := s.Cookies().Open(r, cookie.UserInfo, &user) == nil && user.OpaqueAccess
	t.Opaque = opaque
	for _, c := range check.All {
		if t.Step(c).Result != NotChecked {
			continue
		}
		step := Step{Check: c, Result: NotChecked}
		switch {
		case c == check.Refresh && t.Outcome == Accepted:
			step.Value = "not opened: it is needed only to refresh"
		case c == check.Sealed && !opaque:
			continue // a JWT is kept as the provider signed it; only an opaque token is sealed
		case opaque && jwtOnly[c]:
			step.Value = "not made: the access token is opaque, not a JWT; only the provider can check it, which it does at each refresh"
		}
		t.Steps = append(t.Steps, step)
	}
	return t
}

// jwtOnly are the checks only a JWT access token can have: what a session
// with an opaque access token goes without on every request.
var jwtOnly = map[check.Name]bool{
	check.Shape: true, check.Header: true, check.Key: true, check.Algorithm: true, check.Signature: true,
	check.Claims: true, check.Issuer: true, check.Audience: true, check.Subject: true, check.NotBefore: true,
}

// decider names the check that refused a session: the last that failed.
// A missing or expired access token alone ends nothing (it is refreshed):
// when the refresh cookie failed only because none was sent, the check that
// made a refresh necessary is the one that decided.
func decider(t *Trace, refreshSent bool) check.Name {
	var fails []check.Name
	for _, s := range t.Steps {
		if s.Result == Fail {
			fails = append(fails, s.Check)
		}
	}
	n := len(fails)
	switch {
	case n == 0:
		return ""
	case n > 1 && fails[n-1] == check.Refresh && !refreshSent:
		return fails[n-2]
	}
	return fails[n-1]
}

// refreshCookie is the sealed content of cb_refresh_token, as far as the
// trace shows it: its user and its end (never the token).
type refreshCookie struct {
	Subject string `json:"sub"`
	Expires int64  `json:"exp"`
}

// describe fills each step's Value from what the request carries, decoded
// here for people: claims and headers, never a token or a cookie value.
func describe(t *Trace, s *tokens.Sessions, r *http.Request, alg, kid string) {
	store := s.Cookies()
	profile := s.Provider().Profile()
	var user tokens.UserInfo
	userErr := store.Open(r, cookie.UserInfo, &user)
	var rc refreshCookie
	rcErr := store.Open(r, cookie.Refresh, &rc)
	access := store.Get(r, cookie.Access)
	hdr, claims := peekJWT(access)
	// A session whose access token is opaque keeps it sealed: what the
	// trace shows of it is its subject and expiry, never the token.
	opaque := userErr == nil && user.OpaqueAccess
	var sealed struct {
		Token   string `json:"at"`
		Subject string `json:"sub"`
		Expires int64  `json:"exp"`
	}
	sealedErr := errors.New("not opaque")
	if opaque {
		sealedErr = store.Open(r, cookie.Access, &sealed)
		sum := sha256.Sum256([]byte(sealed.Token))
		access, sealed.Token = "", "" // from here on only its hash counts
		claims = map[string]any{"sub": sealed.Subject}
		if sealedErr == nil && len(user.AccessHash) > 0 && subtle.ConstantTimeCompare(sum[:], user.AccessHash) == 1 {
			claims["own"] = true
		}
	}
	at := t.At.UTC()
	when := func(u int64) string { return time.Unix(u, 0).UTC().Format("2006-01-02 15:04:05 UTC") }
	rel := func(u int64) string {
		d := time.Unix(u, 0).Sub(at).Round(time.Second)
		if d < 0 {
			return roughly(-d) + " ago"
		}
		return "in " + roughly(d)
	}
	for i := range t.Steps {
		s := &t.Steps[i]
		var v string
		switch s.Check {
		case check.UserInfo:
			switch {
			case errors.Is(userErr, http.ErrNoCookie):
				v = "not sent"
			case userErr != nil:
				v = "does not open: changed, moved from another cookie, or sealed under another secret"
			default:
				v = "sealed by this app for this cookie; sub " + user.Subject
			}
		case check.SessionEnd:
			if userErr == nil {
				v = "ends " + when(user.Expires) + " (" + rel(user.Expires) + ")"
			}
		case check.Logout:
			out, err := strconv.ParseInt(store.Get(r, cookie.LoggedOut), 10, 64)
			switch {
			case err != nil:
				v = "no logout recorded in this browser"
			case userErr == nil:
				v = fmt.Sprintf("logged out %s; this login %s", when(out), when(user.LoginAt))
			default:
				v = "logged out " + when(out)
			}
		case check.Refresh:
			switch {
			case errors.Is(rcErr, http.ErrNoCookie):
				v = "not sent: the access token cannot be renewed"
			case rcErr != nil:
				v = "does not open: changed, or moved from another cookie; the session ends"
			case at.Unix() >= rc.Expires:
				v = "expired " + when(rc.Expires) + ": the session ends"
			case userErr == nil && rc.Subject != user.Subject:
				v = "sub " + rc.Subject + " is not cb_userinfo's: the session ends"
			default:
				v = "opens; same sub as cb_userinfo; ends " + when(rc.Expires)
			}
		case check.Shape:
			if access == "" {
				v = "no access token sent"
			} else {
				v = fmt.Sprintf("%d bytes (at most %d), %d dot-separated parts", len(access), oidc.MaxTokenLen, strings.Count(access, ".")+1)
			}
		case check.Header:
			v = fmt.Sprintf("typ %q", str(hdr["typ"]))
			if crit, ok := hdr["crit"]; ok {
				v += fmt.Sprintf(", crit %v", crit)
			} else {
				v += ", no crit"
			}
		case check.Key:
			v = "kid " + str(hdr["kid"])
			if s.Result == Pass {
				v += ", found in the provider's JWKS"
			} else if kid := str(hdr["kid"]); kid == "" {
				v = "no kid in the header"
			} else {
				v += ", not in the provider's JWKS"
			}
		case check.Algorithm:
			v = fmt.Sprintf("the token says %q; the provider's key allows %s", str(hdr["alg"]), alg)
		case check.Signature:
			v = fmt.Sprintf("%s with the key %s", alg, kid)
		case check.Claims:
			v = "a JSON object"
		case check.Issuer:
			v = fmt.Sprintf("%q; trusted: %q", str(claims["iss"]), profile.Issuer)
		case check.Audience:
			v = fmt.Sprintf("%v; must hold: %s", claims["aud"], profile.Audience)
		case check.Subject:
			v = str(claims["sub"])
		case check.NotBefore:
			v = "nbf " + optTime(claims["nbf"], when) + ", iat " + optTime(claims["iat"], when) + fmt.Sprintf(" (%s oidc.Leeway)", oidc.Leeway)
		case check.Sealed:
			if sealedErr == nil {
				v = "sealed by this app for this cookie: the provider's opaque access token, with its subject and the expiry the token endpoint gave"
			} else {
				v = "does not open: changed, moved from another cookie, or sealed under another secret"
			}
		case check.Expiry:
			if opaque {
				v = fmt.Sprintf("expires %s (%s): the token endpoint's expires_in, at most an hour, no leeway", when(sealed.Expires), rel(sealed.Expires))
			} else if e, ok := claims["exp"].(float64); ok {
				v = fmt.Sprintf("exp %s (%s), %s oidc.Leeway", when(int64(e)), rel(int64(e)), oidc.Leeway)
			} else {
				v = "no exp"
			}
		case check.Kind:
			_, nonce := claims["nonce"]
			_, atHash := claims["at_hash"]
			sum := sha256.Sum256([]byte(access))
			own := len(user.AccessHash) > 0 && subtle.ConstantTimeCompare(sum[:], user.AccessHash) == 1
			other := len(user.AccessHash) > 0 && !own
			if opaque {
				own, other = claims["own"] == true, claims["own"] != true
			}
			switch {
			case own:
				v = "the very access token the provider issued to this session (its SHA-256 is the one cb_userinfo holds)"
				if nonce || atHash {
					v += "; it carries nonce or at_hash like an ID token, as this provider's access tokens do"
				}
			case nonce:
				v = "ID token: it carries a nonce"
			case atHash:
				v = "ID token: it carries at_hash"
			case other:
				v = "not the access token issued to this session: its SHA-256 is not the one cb_userinfo holds"
			default:
				v = fmt.Sprintf("access token: no nonce, no at_hash, typ %q", str(hdr["typ"]))
			}
		case check.Binding:
			v = fmt.Sprintf("access token sub %s, cb_userinfo sub %s", str(claims["sub"]), user.Subject)
			if opaque {
				v = fmt.Sprintf("sub %s sealed beside the access token (from the ID token it came with), cb_userinfo sub %s", sealed.Subject, user.Subject)
			}
		}
		s.Value = v
	}
}

// peekJWT decodes a JWT's header and claims without verifying anything:
// for describing a token that the real checks have judged already.
func peekJWT(raw string) (header, claims map[string]any) {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return nil, nil
	}
	for i, dst := range []*map[string]any{&header, &claims} {
		if b, err := base64.RawURLEncoding.DecodeString(parts[i]); err == nil {
			_ = json.Unmarshal(b, dst)
		}
	}
	return header, claims
}

// roughly writes a duration as people say it: seconds up to two minutes,
// minutes up to two hours, hours up to two days, then days.
func roughly(d time.Duration) string {
	switch {
	case d < 2*time.Minute:
		return fmt.Sprintf("%d s", int(d.Seconds()))
	case d < 2*time.Hour:
		return fmt.Sprintf("%d min", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h", int(d.Hours()))
	}
	return fmt.Sprintf("%d days", int(d.Hours()/24))
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

func optTime(v any, when func(int64) string) string {
	if f, ok := v.(float64); ok {
		return when(int64(f))
	}
	return "none"
}

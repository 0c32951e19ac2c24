package tokens

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Check names one check the session's validation makes. Load, the Verifier
// and Trace share these names: the trace lists what the real code checked,
// in the order it checked it.
type Check string

// The checks, in the order Load makes them.
const (
	CheckUserInfo   Check = "cb_userinfo opens"
	CheckSessionEnd Check = "session end"
	CheckLogout     Check = "logout marker"
	CheckShape      Check = "token size and shape"
	CheckHeader     Check = "header (crit, typ)"
	CheckKey        Check = "key (kid)"
	CheckAlgorithm  Check = "algorithm"
	CheckSignature  Check = "signature"
	CheckClaims     Check = "claims readable"
	CheckIssuer     Check = "iss"
	CheckAudience   Check = "aud"
	CheckSubject    Check = "sub"
	CheckNotBefore  Check = "nbf / iat"
	CheckExpiry     Check = "exp"
	CheckKind       Check = "token kind"
	CheckBinding    Check = "subject binding"
	// CheckRefresh comes last: the refresh cookie is opened only when the
	// access token is missing, expired or about to be.
	CheckRefresh Check = "refresh cookie"
)

// allChecks lists every check, so that a trace can name those never reached.
var allChecks = []Check{
	CheckUserInfo, CheckSessionEnd, CheckLogout, CheckShape, CheckHeader, CheckKey, CheckAlgorithm,
	CheckSignature, CheckClaims, CheckIssuer, CheckAudience, CheckSubject, CheckNotBefore, CheckExpiry, CheckKind, CheckBinding,
	CheckRefresh,
}

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
	Check  Check
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
	Decided Check     // the check that refused the session, when Outcome is Refused
	At      time.Time // the time the checks were made against
}

// Step returns the step for check c.
func (t *Trace) Step(c Check) Step {
	for _, s := range t.Steps {
		if s.Check == c {
			return s
		}
	}
	return Step{Check: c, Result: NotChecked}
}

// errWouldRefresh ends a traced load where Load would refresh.
var errWouldRefresh = errors.New("tokens: the access token would be refreshed")

// recorder collects a trace as the real checks run. A nil recorder records
// nothing, costs a nil check, and reads the process's clock: that is the
// path every ordinary request takes.
type recorder struct {
	at    time.Time // the clock the checks read, when not zero
	steps []Step
	kid   string // the kid whose key the signature was checked with
	alg   string // that key's algorithm, or the one chosen for a key that names none
}

func (r *recorder) pass(c Check) {
	if r != nil {
		r.steps = append(r.steps, Step{Check: c, Result: Pass})
	}
}

// fail records that check c failed and returns err, so a return can wrap it.
func (r *recorder) fail(c Check, err error) error {
	if r != nil {
		r.steps = append(r.steps, Step{Check: c, Result: Fail})
	}
	return err
}

// verifyFailed records why jws.Verify failed, unless a check of the key
// provider recorded it already: after the algorithm passed, it is the
// signature; when the key provider never ran, jws could not parse the token.
func (r *recorder) verifyFailed(err error) {
	if r == nil {
		return
	}
	var last Step
	if n := len(r.steps); n > 0 {
		last = r.steps[n-1]
	}
	switch {
	case last.Result == Fail:
	case last.Check == CheckAlgorithm:
		r.fail(CheckSignature, err)
	default:
		r.fail(CheckShape, err)
	}
}

// usedKey records the key a signature is checked with.
func (r *recorder) usedKey(kid, alg string) {
	if r != nil {
		r.kid, r.alg = kid, alg
	}
}

// now returns the recorder's time when it has one, else clock's.
func (r *recorder) now(clock func() time.Time) time.Time {
	if r != nil && !r.at.IsZero() {
		return r.at
	}
	return clock()
}

// Trace runs Load's checks on r's cookies and records each one. It never
// refreshes, writes no cookie and calls no token endpoint (the provider's
// JWKS may be fetched, as Load would): the session inspector and the
// attack lab use it to show what the real code decides.
func (m *Manager) Trace(ctx context.Context, r *http.Request) *Trace {
	return m.TraceAt(ctx, r, time.Time{})
}

// TraceAt is Trace with every clock of the checks reading at (now when at is zero).
func (m *Manager) TraceAt(ctx context.Context, r *http.Request, at time.Time) *Trace {
	if at.IsZero() {
		at = m.now()
	}
	rec := &recorder{at: at}
	_, err := m.load(ctx, nil, r, rec)
	t := &Trace{Steps: rec.steps, At: at}
	switch {
	case err == nil:
		t.Outcome = Accepted
	case errors.Is(err, errWouldRefresh):
		t.Outcome = WouldRefresh
	case errors.Is(err, ErrProviderUnavailable):
		t.Outcome = Unjudged
	default:
		t.Outcome = Refused
		t.Decided = decider(t, m.cookies.Get(r, RefreshCookie) != "")
	}
	if t.Step(CheckSignature).Result == Pass {
		t.Kid = rec.kid
	}
	m.describe(t, r, rec)
	for _, c := range allChecks {
		if t.Step(c).Result == NotChecked {
			step := Step{Check: c, Result: NotChecked}
			if c == CheckRefresh && t.Outcome == Accepted {
				step.Value = "not opened: it is needed only to refresh"
			}
			t.Steps = append(t.Steps, step)
		}
	}
	return t
}

// decider names the check that refused a session: the last that failed.
// A missing or expired access token alone ends nothing (it is refreshed):
// when the refresh cookie failed only because none was sent, the check that
// made a refresh necessary is the one that decided.
func decider(t *Trace, refreshSent bool) Check {
	var fails []Check
	for _, s := range t.Steps {
		if s.Result == Fail {
			fails = append(fails, s.Check)
		}
	}
	n := len(fails)
	switch {
	case n == 0:
		return ""
	case n > 1 && fails[n-1] == CheckRefresh && !refreshSent:
		return fails[n-2]
	}
	return fails[n-1]
}

// describe fills each step's Value from what the request carries, decoded
// here for people: claims and headers, never a token or a cookie value.
func (m *Manager) describe(t *Trace, r *http.Request, rec *recorder) {
	var user UserInfo
	userErr := m.cookies.open(r, UserInfoCookie, &user)
	var rc refreshCookie
	rcErr := m.cookies.open(r, RefreshCookie, &rc)
	access := m.cookies.Get(r, AccessCookie)
	hdr, claims := peekJWT(access)
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
		case CheckUserInfo:
			switch {
			case errors.Is(userErr, http.ErrNoCookie):
				v = "not sent"
			case userErr != nil:
				v = "does not open: changed, moved from another cookie, or sealed under another secret"
			default:
				v = "sealed by this app for this cookie; sub " + user.Subject
			}
		case CheckSessionEnd:
			if userErr == nil {
				v = "ends " + when(user.Expires) + " (" + rel(user.Expires) + ")"
			}
		case CheckLogout:
			out, err := strconv.ParseInt(m.cookies.Get(r, LogoutCookie), 10, 64)
			switch {
			case err != nil:
				v = "no logout recorded in this browser"
			case userErr == nil:
				v = fmt.Sprintf("logged out %s; this login %s", when(out), when(user.LoginAt))
			default:
				v = "logged out " + when(out)
			}
		case CheckRefresh:
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
		case CheckShape:
			if access == "" {
				v = "no access token sent"
			} else {
				v = fmt.Sprintf("%d bytes (at most %d), %d dot-separated parts", len(access), maxTokenLen, strings.Count(access, ".")+1)
			}
		case CheckHeader:
			v = fmt.Sprintf("typ %q", str(hdr["typ"]))
			if crit, ok := hdr["crit"]; ok {
				v += fmt.Sprintf(", crit %v", crit)
			} else {
				v += ", no crit"
			}
		case CheckKey:
			v = "kid " + str(hdr["kid"])
			if s.Result == Pass {
				v += ", found in the provider's JWKS"
			} else if kid := str(hdr["kid"]); kid == "" {
				v = "no kid in the header"
			} else {
				v += ", not in the provider's JWKS"
			}
		case CheckAlgorithm:
			v = fmt.Sprintf("the token says %q; the provider's key allows %s", str(hdr["alg"]), rec.alg)
		case CheckSignature:
			v = fmt.Sprintf("%s with the key %s", rec.alg, rec.kid)
		case CheckClaims:
			v = "a JSON object"
		case CheckIssuer:
			v = fmt.Sprintf("%q; trusted: %q", str(claims["iss"]), m.verifier.issuer)
		case CheckAudience:
			v = fmt.Sprintf("%v; must hold: %s", claims["aud"], m.verifier.audience)
		case CheckSubject:
			v = str(claims["sub"])
		case CheckNotBefore:
			v = "nbf " + optTime(claims["nbf"], when) + ", iat " + optTime(claims["iat"], when) + fmt.Sprintf(" (%s leeway)", leeway)
		case CheckExpiry:
			if e, ok := claims["exp"].(float64); ok {
				v = fmt.Sprintf("exp %s (%s), %s leeway", when(int64(e)), rel(int64(e)), leeway)
			} else {
				v = "no exp"
			}
		case CheckKind:
			_, nonce := claims["nonce"]
			_, atHash := claims["at_hash"]
			sum := sha256.Sum256([]byte(access))
			switch b := bindingOf(&sum, user.AccessHash); {
			case b == boundOwn:
				v = "the very access token the provider issued to this session (its SHA-256 is the one cb_userinfo holds)"
				if nonce || atHash {
					v += "; it carries nonce or at_hash like an ID token, as this provider's access tokens do"
				}
			case nonce:
				v = "ID token: it carries a nonce"
			case atHash:
				v = "ID token: it carries at_hash"
			case b == boundOther:
				v = "not the access token issued to this session: its SHA-256 is not the one cb_userinfo holds"
			default:
				v = fmt.Sprintf("access token: no nonce, no at_hash, typ %q", str(hdr["typ"]))
			}
		case CheckBinding:
			v = fmt.Sprintf("access token sub %s, cb_userinfo sub %s", str(claims["sub"]), user.Subject)
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

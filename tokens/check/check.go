// Package check names the checks a cookie session's validation makes and
// records them as data: each check, in the order it was made, whether it
// passed, and why not. Package tokens records the session cookies' checks
// and package tokens/oidc the access token's into one List, on the one code
// path every request takes; an inspector reads the List and words it.
//
// A List is a fixed array: recording allocates nothing, so the hot path
// pays a few stores for it.
package check

// Name names one check. The values are short labels, not explanations.
type Name string

// The checks, in the order a session's validation makes them.
const (
	UserInfo   Name = "cb_userinfo opens"
	SessionEnd Name = "session end"
	Logout     Name = "logout marker"
	// Sealed is made instead of Shape to Signature when the session's
	// access token is opaque (not a JWT): the token is kept sealed in its
	// cookie, and opening it is what can be checked here.
	Sealed    Name = "access cookie opens (opaque token)"
	Shape     Name = "token size and shape"
	Header    Name = "header (crit, typ)"
	Key       Name = "key (kid)"
	Algorithm Name = "algorithm"
	Signature Name = "signature"
	Claims    Name = "claims readable"
	Issuer    Name = "iss"
	Audience  Name = "aud"
	Subject   Name = "sub"
	NotBefore Name = "nbf / iat"
	Expiry    Name = "exp"
	Kind      Name = "token kind"
	Binding   Name = "subject binding"
	// Refresh comes last: the refresh cookie is opened only when the
	// access token is missing, expired or about to be.
	Refresh Name = "refresh cookie"
)

// All lists every check in order, so that a reader can name those never reached.
var All = []Name{
	UserInfo, SessionEnd, Logout, Sealed, Shape, Header, Key, Algorithm, Signature, Claims,
	Issuer, Audience, Subject, NotBefore, Expiry, Kind, Binding, Refresh,
}

// Step is one check made: which, whether it passed, and the error it
// failed with (nil when it passed, or failed for want of anything to check).
type Step struct {
	Name   Name
	Passed bool
	Err    error
}

// maxSteps is room for every check once, and a few more.
const maxSteps = 24

// List records the steps of one validation, in order. Its zero value is
// empty and ready; a step past its room is dropped.
type List struct {
	steps [maxSteps]Step
	n     int
	// Kid and Alg name the key the access token's signature was checked
	// with, and the algorithm: set once the key check passed.
	Kid, Alg string
}

// UsedKey records the key a signature is checked with.
func (l *List) UsedKey(kid, alg string) { l.Kid, l.Alg = kid, alg }

// Pass records that check c passed.
func (l *List) Pass(c Name) {
	l.add(Step{Name: c, Passed: true})
}

// Fail records that check c failed with err, and returns err, so that a
// return statement can record and answer in one.
func (l *List) Fail(c Name, err error) error {
	l.add(Step{Name: c, Err: err})
	return err
}

func (l *List) add(s Step) {
	if l.n < maxSteps {
		l.steps[l.n] = s
		l.n++
	}
}

// Steps returns the steps recorded, in order. The slice shares l's memory.
func (l *List) Steps() []Step { return l.steps[:l.n] }

// Last returns the latest step, or a zero Step when none was recorded.
func (l *List) Last() Step {
	if l.n == 0 {
		return Step{}
	}
	return l.steps[l.n-1]
}

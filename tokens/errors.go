package tokens

import (
	"errors"
	"fmt"
	"strings"

	"golang.org/x/oauth2"

	"github.com/changebank/changebank/tokens/oidc"
)

// The errors callers branch on. Everything else this package returns wraps
// one of them, so a caller needs to know no other.
var (
	// ErrNoSession means the request carries no usable session: none at all,
	// one that ended (logout, refresh token refused), or one whose tokens
	// failed validation. From Load and Refresh, the session cookies have been
	// expired on the response; from FinishLogin (a login whose tokens did not
	// validate or fit) no session cookie was written, and a previous session stays.
	ErrNoSession = errors.New("tokens: no session")
	// ErrProviderUnavailable means the provider could not be asked: not
	// discovered yet, unreachable, failing, or its signing keys could not be
	// fetched. Every cookie is kept: try again later. (It is
	// oidc.ErrProviderUnavailable, which that package's errors wrap.)
	ErrProviderUnavailable = oidc.ErrProviderUnavailable
	// ErrBadCallback means a callback that does not belong to a login started
	// in this browser: replayed, expired, forged, from another browser, or
	// with a code the provider refused.
	ErrBadCallback = errors.New("tokens: callback does not match a login started here")
	// ErrSessionTooLarge means the provider's tokens would make the session's
	// cookies larger than cookie.MaxSessionBytes: the account's token
	// carries too many claims (roles, groups) to keep in a browser. It
	// wraps ErrNoSession.
	ErrSessionTooLarge = fmt.Errorf("%w: the tokens are too large to keep in cookies", ErrNoSession)
	// ErrLoginsThrottled is FinishLogin's answer while the budget of
	// refused code exchanges is spent (see shield.go): the provider was not
	// asked, the user may log in again in a moment. It wraps
	// ErrProviderUnavailable.
	ErrLoginsThrottled = fmt.Errorf("%w: too many refused logins on this instance just now", ErrProviderUnavailable)
)

// ProviderError is an error the provider sent back (RFC 6749 sections
// 4.1.2.1 and 5.2), such as access_denied at the callback or
// unauthorized_client at the token endpoint.
type ProviderError struct {
	Code string
	// Description is the provider's error_description, for the log only:
	// it is not written for users, and at the callback anyone could have
	// put it in the URL, so it is empty there.
	Description string
}

func (e *ProviderError) Error() string {
	if e.Description == "" {
		return "tokens: the provider answered " + e.Code
	}
	return fmt.Sprintf("tokens: the provider answered %s (%q)", e.Code, e.Description)
}

// maxCallbackCode bounds the error code kept from a callback's URL: the
// codes of RFC 6749 are short words, and anyone can put any text of any
// length there, which the caller logs.
const maxCallbackCode = 64

// callbackError is the error a callback's URL says the provider sent.
func callbackError(code string) *ProviderError {
	if len(code) > maxCallbackCode {
		code = strings.ToValidUTF8(code[:maxCallbackCode], "") + "…"
	}
	return &ProviderError{Code: code}
}

// maxDescription bounds how much of a provider's error_description is kept.
const maxDescription = 200

// tokenEndpointError is the token endpoint's refusal of a grant. Its text
// says which grant and carries the provider's error code and description,
// for the log; errors.Is finds its kind and errors.As the *oauth2.RetrieveError.
type tokenEndpointError struct {
	grant string // what was presented: "the authorization code", "the refresh token"
	kind  error  // ErrNoSession, ErrBadCallback, ErrProviderUnavailable or a *ProviderError
	re    *oauth2.RetrieveError
}

func (e *tokenEndpointError) Error() string {
	status := 0
	if e.re.Response != nil {
		status = e.re.Response.StatusCode
	}
	code := e.re.ErrorCode
	if code == "" {
		code = "(no error code)"
	}
	desc := e.re.ErrorDescription
	if len(desc) > maxDescription {
		desc = desc[:maxDescription] + "..."
	}
	prefix := e.kind.Error()
	if _, ok := e.kind.(*ProviderError); ok {
		prefix = "tokens" // its text would repeat the code and description
	}
	return fmt.Sprintf("%s: the token endpoint refused %s: %d %s %q", prefix, e.grant, status, code, desc)
}

func (e *tokenEndpointError) Unwrap() []error { return []error{e.kind, e.re} }

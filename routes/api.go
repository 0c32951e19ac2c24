package routes

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/changebank/changebank/tokens"
	"github.com/changebank/changebank/tokens/oidc"
)

// apiUser is what /api/me knows of the caller.
type apiUser struct {
	source string // "cookie" or "bearer"
	claims *tokens.Claims
	user   *tokens.UserInfo // cookie sessions only: the ID token's profile
}

// opaqueBearer is the 401's reason for a Bearer token that is not a JWT.
const opaqueBearer = "the access token is not a JWT: this provider's access tokens are opaque, and only the provider " +
	"can check one; this app asks the provider's introspection endpoint (RFC 7662) only when BEARER_INTROSPECTION " +
	"is on and the provider's discovery lists one. A browser session with this provider works with its cookies."

// apiSession authenticates an API call by `Authorization: Bearer <access
// token>` or, without that header, by the cookie session, and hands the
// caller to handle. It never redirects: 401 with WWW-Authenticate, or 503
// with Retry-After. (handle is called directly rather than through the
// gin.Context's keys, whose map would be allocated on every call.)
func apiSession(quiet *quietLog, sessions *tokens.Sessions, handle func(*gin.Context, apiUser)) gin.HandlerFunc {
	const realm = `Bearer realm="ChangeBank"`
	return func(c *gin.Context) {
		var u apiUser
		var err error
		if h := c.GetHeader("Authorization"); h != "" {
			// RFC 9110: the scheme is case-insensitive.
			scheme, raw, _ := strings.Cut(h, " ")
			if !strings.EqualFold(scheme, "Bearer") {
				c.Header("WWW-Authenticate", realm)
				c.AbortWithStatusJSON(http.StatusUnauthorized, gin.H{"error": "invalid_request", "error_description": "use Authorization: Bearer <access token>"})
				return
			}
			u.source = "bearer"
			u.claims, err = sessions.AccessToken(c.Request.Context(), strings.TrimSpace(raw))
			if err != nil && !errors.Is(err, tokens.ErrProviderUnavailable) {
				quiet.Warn(c.Request.Context(), "bearer token refused", "err", err)
				why := "the access token is invalid or expired"
				if errors.Is(err, tokens.ErrOpaqueBearer) {
					why = opaqueBearer
				}
				c.Header("WWW-Authenticate", realm+`, error="invalid_token"`)
				c.AbortWithStatusJSON(http.StatusUnauthorized, gin.H{"error": "invalid_token", "error_description": why})
				return
			}
		} else {
			var s *tokens.Session
			s, err = sessions.Load(c.Request.Context(), c.Writer, c.Request)
			if errors.Is(err, tokens.ErrSessionTooLarge) {
				c.Header("WWW-Authenticate", realm)
				c.AbortWithStatusJSON(http.StatusUnauthorized, gin.H{"error": "unauthorized", "error_description": "the account's tokens are too large to keep in cookies: trim their claims at the identity provider"})
				return
			}
			if errors.Is(err, tokens.ErrNoSession) {
				c.Header("WWW-Authenticate", realm)
				c.AbortWithStatusJSON(http.StatusUnauthorized, gin.H{"error": "unauthorized", "error_description": "log in, or send a bearer token"})
				return
			}
			if err == nil {
				u = apiUser{source: "cookie", claims: s.Access, user: &s.User}
			}
		}
		if err != nil {
			quiet.Warn(c.Request.Context(), "API call not checked: provider unavailable", "err", err)
			c.Header("Retry-After", "5")
			c.AbortWithStatusJSON(http.StatusServiceUnavailable, gin.H{"error": "temporarily_unavailable", "error_description": "the identity provider is unreachable; try again"})
			return
		}
		handle(c, u)
	}
}

// me is GET /api/me: who the caller is and when their access token expires.
func me(now func() time.Time) func(*gin.Context, apiUser) {
	return func(c *gin.Context, u apiUser) {
		buf := meBuffers.Get().(*[]byte)
		*buf = meBody(u, now()).appendJSON((*buf)[:0])
		c.Data(http.StatusOK, "application/json; charset=utf-8", *buf)
		if cap(*buf) <= 4<<10 { // a user with thousands of roles keeps no huge buffer
			meBuffers.Put(buf)
		}
	}
}

// meBuffers are reused for /api/me's body.
var meBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// meAnswer is /api/me's body. It is written by appendJSON, which writes
// what encoding/json would (tests hold the two to the same bytes) without
// reflection or allocation. The fields are in the order of their names, as
// they have always been written.
type meAnswer struct {
	AccessTokenExpiresAt string   `json:"access_token_expires_at"`
	AccessTokenExpiresIn int      `json:"access_token_expires_in"`
	AuthTime             string   `json:"auth_time,omitempty"` // left out when the token has none: 0 would read as 1970
	AuthenticatedBy      string   `json:"authenticated_by"`
	Email                *string  `json:"email,omitempty"` // the three profile fields: cookie sessions only
	EmailVerified        *bool    `json:"email_verified,omitempty"`
	Name                 *string  `json:"name,omitempty"`
	Roles                []string `json:"roles"`
	Scope                string   `json:"scope"`
	Subject              string   `json:"sub"`
}

// meBody is /api/me's answer.
func meBody(u apiUser, now time.Time) *meAnswer {
	exp := u.claims.Expiry.Time()
	body := &meAnswer{
		Subject:              u.claims.Subject,
		Roles:                u.claims.Roles,
		Scope:                u.claims.Scopes(),
		AuthenticatedBy:      u.source,
		AccessTokenExpiresAt: exp.UTC().Format(time.RFC3339),
		AccessTokenExpiresIn: max(0, int(exp.Sub(now).Seconds())),
	}
	if u.claims.AuthTime != 0 {
		body.AuthTime = u.claims.AuthTime.Time().UTC().Format(time.RFC3339)
	}
	if u.user != nil {
		body.Name, body.Email, body.EmailVerified = &u.user.Name, &u.user.Email, &u.user.EmailVerified
	}
	return body
}

// healthz answers while the process is up.
func healthz() gin.HandlerFunc {
	return func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok"}) }
}

// readyz answers 200 once the provider's metadata and keys are loaded;
// until then 503, with the reason when a setting must change.
func readyz(provider *oidc.Provider) gin.HandlerFunc {
	return func(c *gin.Context) {
		if !provider.Ready() {
			c.Header("Retry-After", "5")
			body := gin.H{"status": "waiting for the identity provider"}
			if p := provider.Problem(); p != "" {
				body["problem"] = p
			}
			c.JSON(http.StatusServiceUnavailable, body)
			return
		}
		c.JSON(http.StatusOK, gin.H{"status": "ready"})
	}
}

// appendJSON appends a's JSON encoding to dst: the bytes json.Marshal
// writes for it, field for field.
func (a *meAnswer) appendJSON(dst []byte) []byte {
	dst = append(dst, `{"access_token_expires_at":`...)
	dst = appendJSONString(dst, a.AccessTokenExpiresAt)
	dst = append(dst, `,"access_token_expires_in":`...)
	dst = strconv.AppendInt(dst, int64(a.AccessTokenExpiresIn), 10)
	if a.AuthTime != "" {
		dst = append(dst, `,"auth_time":`...)
		dst = appendJSONString(dst, a.AuthTime)
	}
	dst = append(dst, `,"authenticated_by":`...)
	dst = appendJSONString(dst, a.AuthenticatedBy)
	if a.Email != nil {
		dst = append(dst, `,"email":`...)
		dst = appendJSONString(dst, *a.Email)
	}
	if a.EmailVerified != nil {
		dst = append(dst, `,"email_verified":`...)
		dst = strconv.AppendBool(dst, *a.EmailVerified)
	}
	if a.Name != nil {
		dst = append(dst, `,"name":`...)
		dst = appendJSONString(dst, *a.Name)
	}
	dst = append(dst, `,"roles":`...)
	if a.Roles == nil {
		dst = append(dst, "null"...)
	} else {
		dst = append(dst, '[')
		for i, r := range a.Roles {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendJSONString(dst, r)
		}
		dst = append(dst, ']')
	}
	dst = append(dst, `,"scope":`...)
	dst = appendJSONString(dst, a.Scope)
	dst = append(dst, `,"sub":`...)
	dst = appendJSONString(dst, a.Subject)
	return append(dst, '}')
}

// appendJSONString appends s as a JSON string the way encoding/json writes
// one (its HTML-safe form, as gin's c.JSON used): ", \ and control bytes
// escaped (the five with a short form by it), <, > and & as \u00XX so the
// body is safe inside HTML, invalid UTF-8 as U+FFFD, and U+2028 and U+2029,
// which end a line in JavaScript, escaped.
func appendJSONString(dst []byte, s string) []byte {
	const hexDigits = "0123456789abcdef"
	dst = append(dst, '"')
	done := 0 // s[:done] is in dst
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			dst = append(dst, s[done:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			done = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, s[done:i]...)
			dst = append(dst, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			dst = append(dst, s[done:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		done = i
	}
	dst = append(dst, s[done:]...)
	return append(dst, '"')
}

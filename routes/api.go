package routes

import (
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/changebank/changebank/tokens"
)

// apiUser is what /api/me knows of the caller.
type apiUser struct {
	source string // "cookie" or "bearer"
	claims *tokens.Claims
	user   *tokens.UserInfo // cookie sessions only: the ID token's profile
}

const apiUserKey = "changebank.apiuser"

// apiSession authenticates an API call by `Authorization: Bearer <access
// token>` or, without that header, by the cookie session. It never
// redirects: 401 with WWW-Authenticate, or 503 with Retry-After.
func apiSession(log *slog.Logger, sessions *tokens.Manager, verifier *tokens.Verifier) gin.HandlerFunc {
	const realm = `Bearer realm="ChangeBank"`
	refusals := &sampler{every: bearerWarnEvery}
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
			u.claims, err = verifier.AccessToken(c.Request.Context(), strings.TrimSpace(raw))
			if err != nil && !errors.Is(err, tokens.ErrProviderUnavailable) {
				if n, ok := refusals.tally(time.Now()); ok {
					log.Warn("bearer token refused", "err", err, "refused_since_last_warning", n)
				} else {
					log.Debug("bearer token refused", "err", err)
				}
				c.Header("WWW-Authenticate", realm+`, error="invalid_token"`)
				c.AbortWithStatusJSON(http.StatusUnauthorized, gin.H{"error": "invalid_token", "error_description": "the access token is invalid or expired"})
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
			log.Warn("API call not checked: provider unavailable", "err", err)
			c.Header("Retry-After", "5")
			c.AbortWithStatusJSON(http.StatusServiceUnavailable, gin.H{"error": "temporarily_unavailable", "error_description": "the identity provider is unreachable; try again"})
			return
		}
		c.Set(apiUserKey, u)
		c.Next()
	}
}

// bearerWarnEvery paces the warning about refused bearer tokens: anyone
// can send bad ones, and a line each would let them fill the log. The
// others are logged at debug.
const bearerWarnEvery = 10 * time.Second

// sampler lets one event in every interval through, counting the rest.
type sampler struct {
	every time.Duration
	mu    sync.Mutex
	last  time.Time
	count int
}

// tally counts an event and reports whether this one may be logged, with
// how many were counted since the last one that was (itself included).
func (s *sampler) tally(now time.Time) (int, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.count++
	if !s.last.IsZero() && now.Sub(s.last) < s.every {
		return 0, false
	}
	n := s.count
	s.last, s.count = now, 0
	return n, true
}

// me is GET /api/me: who the caller is and when their access token expires.
func me(now func() time.Time) gin.HandlerFunc {
	return func(c *gin.Context) {
		c.JSON(http.StatusOK, meBody(c.MustGet(apiUserKey).(apiUser), now()))
	}
}

// meAnswer is /api/me's body. A struct, not a map: encoding/json writes a
// struct from a plan made once, where a map was sorted and reflected on
// every call. The fields are in the order of their names, as the map's
// keys were written, so the bytes are the same.
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

// readyz answers 200 once the provider's metadata and keys are loaded.
func readyz(provider *tokens.Provider) gin.HandlerFunc {
	return func(c *gin.Context) {
		if !provider.Ready() {
			c.Header("Retry-After", "5")
			c.JSON(http.StatusServiceUnavailable, gin.H{"status": "waiting for the identity provider"})
			return
		}
		c.JSON(http.StatusOK, gin.H{"status": "ready"})
	}
}

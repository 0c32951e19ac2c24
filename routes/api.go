package routes

import (
	"errors"
	"log/slog"
	"net/http"
	"strings"
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
				log.Warn("bearer token refused", "err", err)
				c.Header("WWW-Authenticate", realm+`, error="invalid_token"`)
				c.AbortWithStatusJSON(http.StatusUnauthorized, gin.H{"error": "invalid_token", "error_description": "the access token is invalid or expired"})
				return
			}
		} else {
			var s *tokens.Session
			s, err = sessions.Load(c.Request.Context(), c.Writer, c.Request)
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

// me is GET /api/me: who the caller is and when their access token expires.
func me(now func() time.Time) gin.HandlerFunc {
	return func(c *gin.Context) {
		c.JSON(http.StatusOK, meBody(c.MustGet(apiUserKey).(apiUser), now()))
	}
}

// meBody is /api/me's answer. A claim the token lacks is left out rather
// than shown as a zero (auth_time 0 would read as 1970).
func meBody(u apiUser, now time.Time) gin.H {
	exp := u.claims.Expiry.Time()
	body := gin.H{
		"sub":                     u.claims.Subject,
		"roles":                   u.claims.Roles,
		"scope":                   u.claims.Scopes(),
		"authenticated_by":        u.source,
		"access_token_expires_at": exp.UTC().Format(time.RFC3339),
		"access_token_expires_in": max(0, int(exp.Sub(now).Seconds())),
	}
	if u.claims.AuthTime != 0 {
		body["auth_time"] = u.claims.AuthTime.Time().UTC().Format(time.RFC3339)
	}
	if u.user != nil {
		body["name"], body["email"], body["email_verified"] = u.user.Name, u.user.Email, u.user.EmailVerified
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

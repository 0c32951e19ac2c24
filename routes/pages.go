package routes

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/changebank/changebank/tokens"
)

// account greets the user.
func account(csrf *tokens.CSRF, views *views) gin.HandlerFunc {
	return func(c *gin.Context) {
		s := sessionOf(c)
		views.render(c, http.StatusOK, "account", page{Title: "Your account", User: &s.User, CSRF: csrf.Token(s.User)})
	}
}

// cookieView describes one session cookie on the inspector.
type cookieView struct {
	Name     string
	Purpose  string
	Size     int // bytes of name=value, what the browser sends on every request
	Expires  time.Time
	Sealed   bool
	Contents string // decoded and shown server-side; never the raw value
}

type inspectorView struct {
	Cookies        []cookieView
	TotalSize      int
	Secure         bool
	Refreshed      bool
	Did            string
	ExpiresAt      int64
	ExpiresIn      int64
	IssuedAt       time.Time
	AuthTime       time.Time
	AuthType       string
	RefreshPrint   string
	LoginTransacts int
}

// inspector is GET /session: the session's cookies, decoded server-side.
func inspector(ck *tokens.CookieStore, csrf *tokens.CSRF, clock func() time.Time, views *views) gin.HandlerFunc {
	return func(c *gin.Context) {
		s := sessionOf(c)
		now := clock()
		v := inspectorView{
			Secure: ck.Secure(), Refreshed: s.Refreshed, Did: c.Query("did"),
			ExpiresAt: int64(s.Access.Expiry), ExpiresIn: max(0, int64(s.Access.Expiry.Time().Sub(now).Seconds())),
			IssuedAt: s.Access.IssuedAt.Time(), AuthTime: s.Access.AuthTime.Time(), AuthType: s.Access.AuthType,
			RefreshPrint: fingerprint(s.RefreshToken),
		}
		user, _ := json.MarshalIndent(s.User, "", "  ")
		// What the browser sends: name=value.
		size := func(base, value string) int { return len(ck.Name(base)) + 1 + len(value) }
		v.Cookies = []cookieView{
			{Name: ck.Name(tokens.AccessCookie), Size: size(tokens.AccessCookie, s.AccessToken), Expires: s.Access.Expiry.Time(),
				Purpose:  "The access token, a JWT signed by FusionAuth, as issued. Checked on every request against FusionAuth's keys; expires with the token.",
				Contents: decodeJWT(s.AccessToken)},
			{Name: ck.Name(tokens.RefreshCookie), Size: size(tokens.RefreshCookie, ck.Get(c.Request, tokens.RefreshCookie)), Expires: s.Expires, Sealed: true,
				Purpose:  "The refresh token, sealed (AES-256-GCM under a key for this cookie alone). It gets new access tokens silently; lives as long as the refresh token.",
				Contents: "refresh token fingerprint (SHA-256, first 8 bytes): " + v.RefreshPrint},
			{Name: ck.Name(tokens.UserInfoCookie), Size: size(tokens.UserInfoCookie, ck.Get(c.Request, tokens.UserInfoCookie)), Expires: s.Expires, Sealed: true,
				Purpose:  "Your profile from the validated ID token, sealed, bound to the access token's subject. Pages read your name from here without calling FusionAuth.",
				Contents: string(user)},
		}
		for _, cv := range v.Cookies {
			v.TotalSize += cv.Size
		}
		for _, rc := range c.Request.Cookies() {
			if strings.HasPrefix(rc.Name, ck.Name("cb_login_")) {
				v.LoginTransacts++
			}
		}
		views.render(c, http.StatusOK, "session", page{Title: "Session inspector", User: &s.User, CSRF: csrf.Token(s.User), Data: v})
	}
}

// fingerprint names a secret without revealing it.
func fingerprint(secret string) string {
	if secret == "" {
		return "(none)"
	}
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:8])
}

// decodeJWT pretty-prints a JWT's header and claims (not its signature).
func decodeJWT(raw string) string {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return "(not a JWT)"
	}
	var out strings.Builder
	for i, label := range []string{"header", "claims"} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		var pretty bytes.Buffer
		if err != nil || json.Indent(&pretty, b, "", "  ") != nil {
			return "(undecodable)"
		}
		out.WriteString(label + ": " + pretty.String() + "\n")
	}
	return out.String()
}

// expireAccess drops the access cookie: the next request refreshes silently.
func expireAccess(sessions *tokens.Manager) gin.HandlerFunc {
	return func(c *gin.Context) {
		sessions.ExpireAccess(c.Writer)
		c.Redirect(http.StatusSeeOther, "/session?did=expire")
	}
}

// refreshNow redeems the refresh token at once.
func refreshNow(log *slog.Logger, sessions *tokens.Manager, views *views) gin.HandlerFunc {
	return func(c *gin.Context) {
		err := sessions.Refresh(c.Request.Context(), c.Writer, sessionOf(c))
		switch {
		case err == nil:
			c.Redirect(http.StatusSeeOther, "/session?did=refresh")
		case errors.Is(err, tokens.ErrProviderUnavailable):
			log.Warn("refresh now: provider unavailable", "err", err)
			views.failRetry(c, http.StatusServiceUnavailable, "The identity provider is unreachable right now. You are still logged in: try again in a moment.", "/session")
		default:
			log.Info("refresh now: session ended", "err", err)
			c.Redirect(http.StatusSeeOther, "/login?return_to=/session")
		}
	}
}

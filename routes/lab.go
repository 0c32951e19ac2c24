package routes

import (
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/changebank/changebank/routes/inspect"
	"github.com/changebank/changebank/tokens"
	"github.com/changebank/changebank/tokens/check"
)

const traceKey = "changebank.trace"

// withTrace records, for the page, the checks the session's real
// validation makes on the cookies this request carries. It runs after
// sessionRequired, and changes nothing: no cookie, no refresh.
func withTrace(sessions *tokens.Sessions) gin.HandlerFunc {
	return func(c *gin.Context) {
		c.Set(traceKey, inspect.Run(c.Request.Context(), sessions, c.Request, time.Time{}))
		c.Next()
	}
}

// userRequired lets through a request whose sealed userinfo cookie is
// sound, without loading the session: unlike sessionRequired it never
// refreshes, so the lab's POST cannot change the learner's cookies.
func userRequired(sessions *tokens.Sessions) gin.HandlerFunc {
	return func(c *gin.Context) {
		if _, ok := sessions.User(c.Request); !ok {
			c.Redirect(http.StatusSeeOther, "/login?return_to="+url.QueryEscape("/session/lab"))
			c.Abort()
			return
		}
		c.Next()
	}
}

// labAttack is one button of the attack lab.
type labAttack struct {
	Name  inspect.Attack
	Title string
	What  string // what the lab does to the copy of the cookies
}

var labAttacks = []labAttack{
	{inspect.AttackFlipByte, "Flip a byte in cb_userinfo",
		"Changes one character in the middle of your sealed cb_userinfo, as someone editing the cookie to become another user would."},
	{inspect.AttackMoveRefresh, "Move the refresh cookie into cb_userinfo",
		"Sends the sealed value of your cb_refresh_token as cb_userinfo. Both were sealed by this app with the same secret: is one as good as the other?"},
	{inspect.AttackAlgNone, "alg: none",
		`Re-encodes your access token with the header alg "none" and no signature at all, the oldest JWT trick.`},
	{inspect.AttackHS256Public, "HS256 signed with the provider's public key",
		"Signs your access token's claims with HMAC-SHA256, using the provider's public key, which anyone can download from its JWKS, as the secret. A library that lets the token choose its algorithm would accept it."},
	{inspect.AttackExpired, "An expired token",
		"Sends your access token alone, without the refresh cookie, as a thief who copied it would, checked as if it were just past its exp."},
	{inspect.AttackOtherSubject, "Another user's subject",
		"Sends your genuine access token with a cb_userinfo sealed for another user: the lab seals one, as this app does for everybody who logs in."},
	{inspect.AttackForeignKey, "A key not in the JWKS",
		"Signs your access token's claims with a throwaway RSA key the lab made, under the provider's real key id (kid), so the token looks like the provider's."},
	{inspect.AttackAfterLogout, "Replay after logout",
		"Sends your cookies together with a logout marker (cb_logged_out) one second after your login: what a browser holds when an old response sets cookies again after a logout."},
}

// caughtBy says, for a learner, what each check catches and why.
var caughtBy = map[check.Name]string{
	check.UserInfo: "cb_userinfo did not open. It is sealed with AES-256-GCM under a key derived from the app secret and the cookie's own name, " +
		"so changing one character, or sending another cookie's sealed value in its place, breaks the authentication tag, and the app treats the cookie as absent.",
	check.SessionEnd: "The session's end, sealed inside cb_userinfo, has passed. A browser that keeps the cookie longer cannot make the session last longer.",
	check.Logout: "This browser logged out after this session began (the cb_logged_out marker), so every cookie from before the logout is refused, " +
		"even a genuine one set again by a response that was still on its way.",
	check.Refresh: "The access token needed renewing, and the refresh cookie did not open, had expired, or named another user, so the session ends.",
	check.Shape:   "The access token is missing, or is not a signed JWT of a sane size, so there is nothing to check and nothing to renew it with.",
	check.Header:  "The token's header asks for something this app does not do (a critical extension, or a type that is not a JWT), so it is refused before any key is looked up.",
	check.Key:     "The token names a key (kid) the provider does not publish, so nothing can verify it.",
	check.Algorithm: "The algorithm comes from the provider's published key, never from the token. A token that says none or HS256 is refused before its signature is looked at: " +
		"otherwise the attacker would choose a check they can pass.",
	check.Signature: "The signature does not verify with the provider's public key for that kid. Only the holder of the provider's private key can make one that does; borrowing the real kid changes nothing.",
	check.Claims:    "The signed content is not a set of JSON claims.",
	check.Issuer:    "The token comes from another issuer than the one this app trusts.",
	check.Audience:  "The token was issued for another application (aud).",
	check.Subject:   "The token names no user (no sub).",
	check.NotBefore: "The token says it is not valid yet (nbf or iat in the future, beyond 30 seconds of clock skew).",
	check.Expiry: "The token's exp has passed (30 seconds of clock skew are allowed). With no refresh cookie to renew it, the session ends: " +
		"a copied access token is good only for its short life, which is why it is kept short.",
	check.Kind: "This is an ID token (it carries a nonce or at_hash): it tells this app who logged in, but it is no credential for calling the app.",
	check.Binding: "The access token and cb_userinfo name different users. Each cookie is genuine on its own, but the app requires all of them to belong to one user, " +
		"so cookies from two sessions cannot be mixed.",
}

type labView struct {
	Attacks []labAttack
	Result  *labResult
}

// labResult is one attack's outcome, as the lab page shows it.
type labResult struct {
	labAttack
	Shown string // the tampered part, decoded; never a token or cookie value
	Why   string
	Trace *inspect.Trace
}

// labPage is GET /session/lab: the attacks, each a button.
func labPage(views *views) gin.HandlerFunc {
	return func(c *gin.Context) {
		s := sessionOf(c)
		views.render(c, http.StatusOK, "lab", page{Title: "Try to break it", User: &s.User, CSRF: s.CSRF, Data: labView{Attacks: labAttacks}})
	}
}

// runAttack is POST /session/lab: one attack on copies of the request's
// cookies, judged by the real checks. It sets no cookie and refreshes
// nothing, whatever the learner's access token's age.
func runAttack(log *slog.Logger, sessions *tokens.Sessions, views *views) gin.HandlerFunc {
	return func(c *gin.Context) {
		var chosen *labAttack
		for i := range labAttacks {
			if string(labAttacks[i].Name) == c.PostForm("attack") {
				chosen = &labAttacks[i]
			}
		}
		if chosen == nil {
			views.failRetry(c, http.StatusBadRequest, "The lab has no such attack. Pick one of the buttons.", "/session/lab")
			return
		}
		res, err := inspect.Try(c.Request.Context(), sessions, c.Request, chosen.Name)
		switch {
		case errors.Is(err, tokens.ErrProviderUnavailable):
			log.Warn("attack lab: provider unavailable", "attack", chosen.Name, "err", err)
			views.failRetry(c, http.StatusServiceUnavailable,
				"The identity provider's keys cannot be fetched right now, so no token can be judged. Try again in a moment.", "/session/lab")
			return
		case errors.Is(err, inspect.ErrNothingToTamper):
			views.failRetry(c, http.StatusConflict,
				"Your browser sent no access token to tamper with (it expires every few minutes). Open the lab again to get a fresh one, then try again.", "/session/lab")
			return
		case err != nil:
			log.Error("attack lab", "attack", chosen.Name, "err", err)
			views.failRetry(c, http.StatusInternalServerError, "The lab could not prepare this attack. Please try again.", "/session/lab")
			return
		}
		log.Info("attack lab", "attack", chosen.Name, "outcome", res.Trace.Outcome, "decided", res.Trace.Decided)
		user, _ := sessions.User(c.Request)
		result := &labResult{labAttack: *chosen, Shown: res.Shown, Trace: res.Trace, Why: caughtBy[res.Trace.Decided]}
		views.render(c, http.StatusOK, "lab", page{Title: "Try to break it", User: &user, CSRF: sessions.CSRF(user),
			Data: labView{Attacks: labAttacks, Result: result}})
	}
}

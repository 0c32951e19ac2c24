// Package tokens keeps a whole OpenID Connect login session in browser
// cookies, for an app on net/http: sealed (AEAD), HttpOnly, SameSite, no
// server-side state, so any number of instances serve any request. It logs
// users in (authorization code, PKCE, state, nonce, one transaction cookie
// per tab), checks the access token on every request against the
// provider's keys, refreshes it silently (once per browser, even when
// requests race), and logs out (revocation, the provider's end-session).
//
// The front door, in ten lines:
//
//	sessions, err := tokens.New(ctx, tokens.Config{
//		Issuer: "http://localhost:9011", ClientID: "...", ClientSecret: "...",
//		AppURL: "http://localhost:3000", // the callback is AppURL + "/callback"
//		Secrets: []string{"a secret of 32 bytes or more"},
//	})
//	mux.HandleFunc("GET /login", sessions.Login) // ?return_to=/path
//	mux.HandleFunc("GET /callback", sessions.Callback)
//	mux.HandleFunc("POST /logout", sessions.Logout) // form field csrf_token
//	mux.Handle("GET /account", sessions.Require(handler)) // tokens.From(r.Context()) is the *Session
//
// An app that renders its own pages uses the same flows one level down:
// Load, BeginLogin, FinishLogin, EndSession and EndAtProvider. What a
// library user never needs lives in sub-packages: tokens/cookie (sealing,
// chunks, the cookies' names), tokens/oidc (the provider's profile,
// discovery, keys and token verification) and tokens/check (the names of
// the session's checks, which Load records in order and Check reports).
//
// The files:
//
//   - doc.go: this overview.
//   - sessions.go: Config, New and the Sessions they build.
//   - handlers.go: the front door: Login, Callback, Logout, Require and From.
//   - session.go: Session and UserInfo; Load, Check and Refresh; writing the session's cookies.
//   - sessioncache.go: sessions that passed every check, remembered, and checked again on each use.
//   - login.go: the login transaction (state, nonce, PKCE, return path) and the code exchange.
//   - logout.go: ending the session here, revoking the refresh token, the provider's end-session URL.
//   - refresh.go: silent refresh, once per refresh token even when requests race, and validating token responses.
//   - client.go: the app as the provider's OAuth client: code exchange, refresh, revocation, userinfo.
//   - csrf.go: the anti-CSRF token of a session's forms.
//   - notice.go: the one-shot notice that tells the next page why a session ended.
//   - shield.go: what keeps attacker input from costing the provider more than one call.
//   - errors.go: the errors callers branch on.
//   - observe.go: the Observer an app's metrics implement, and the sizes of the bounded memories.
//
// Each file's tests are in its _test.go namesake where one exists (and
// profile_test.go, stateless_test.go, chunks_test.go for provider shapes,
// several instances and big sessions); example_test.go runs the front door
// against the FusionAuth stand-in.
package tokens

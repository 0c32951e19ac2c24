package tokens

// An Observer is told what Sessions do, for an app's metrics
// (Config.Observer). Its methods run on the goroutine doing the work and
// must return quickly. Every string they get comes from the short fixed
// lists below, never from anything a client sent, so each can be a metric's
// label as it is.
//
// The calls to the provider are not here: every one goes through
// Config.HTTPClient, whose Transport can time and count them.
type Observer interface {
	// SessionLoaded is told how each Load ended: outcome is one of
	// LoadOutcomes, and for "ended" reason is the notice that says why
	// (one of the Ended codes of NoticeCode), else "".
	SessionLoaded(outcome string, reason NoticeCode)
	// Refreshed is told how each refresh a request asked for ended: result
	// is one of RefreshResults.
	Refreshed(result string)
	// Refused is told each time attacker input was refused without a call
	// to the provider: kind is one of ShieldRefusals.
	Refused(kind string)
}

// LoadOutcomes are the outcomes Observer.SessionLoaded gets:
//   - "cached": a session that passed every check before, checked again
//     where its answer can have changed;
//   - "verified": every check made, the access token still good;
//   - "refreshed": the access token was due, and a refresh renewed it;
//   - "none": the request carried no session cookies;
//   - "ended": the session ended (the reason says why);
//   - "unavailable": the provider could not be asked (cookies kept).
var LoadOutcomes = []string{"cached", "verified", "refreshed", "none", "ended", "unavailable"}

// RefreshResults are the results Observer.Refreshed gets:
//   - "redeemed": this request's call redeemed the refresh token;
//   - "shared": it waited for a call another request made with the same token;
//   - "grace": a call made moments before answered it, with no new call;
//   - "refused": the provider refused the token (the session ends);
//   - "dead": the token was refused or revoked before, so it was not sent again;
//   - "unavailable": the provider did not answer in time (cookies kept).
var RefreshResults = []string{"redeemed", "shared", "grace", "refused", "dead", "unavailable"}

// ShieldRefusals are the kinds Observer.Refused gets:
//   - "spent_login": a login transaction whose code this instance exchanged already;
//   - "exchange_budget": a callback while too many refused codes spent the budget;
//   - "dead_refresh_token": a refresh token refused or revoked before.
var ShieldRefusals = []string{"spent_login", "exchange_budget", "dead_refresh_token"}

// A Memory is one of the bounded caches and memories a Sessions keeps.
type Memory struct {
	Name    string // what it holds, as a metric label: "sessions", "users", ...
	Entries int    // how many it holds now
	Bound   int    // the most it ever holds
}

// Memories returns the size of each cache and memory s keeps, for an
// app's metrics: they are bounded, so a flood of requests only evicts.
func (s *Sessions) Memories() []Memory {
	verified, verifiedBound := s.verifier.CacheLen()
	return []Memory{
		{"sessions", s.sessions.m.Len(), s.sessions.m.Cap()},
		{"users", s.users.Len(), s.users.Cap()},
		{"verified_tokens", verified, verifiedBound},
		{"refresh_grace", s.refresh.recent.Len(), s.refresh.recent.Cap()},
		{"csrf_tokens", s.csrf.made.Len(), s.csrf.made.Cap()},
		{"spent_logins", s.spentLogins.entries.Len(), s.spentLogins.entries.Cap()},
		{"dead_refresh_tokens", s.deadTokens.entries.Len(), s.deadTokens.entries.Cap()},
	}
}

// nopObserver is the Observer of a Config that sets none.
type nopObserver struct{}

func (nopObserver) SessionLoaded(string, NoticeCode) {}
func (nopObserver) Refreshed(string)                 {}
func (nopObserver) Refused(string)                   {}

package inspect

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/changebank/changebank/internal/oidctest"
	"github.com/changebank/changebank/tokens"
	"github.com/changebank/changebank/tokens/check"
	"github.com/changebank/changebank/tokens/cookie"
)

// traceFixture is Sessions on a provider whose one key signs the tokens,
// on a clock that stands still, and the cookies of a genuine session for
// user-1. The provider's token endpoint is never called: a trace stops
// where it would refresh.
type traceFixture struct {
	s      *tokens.Sessions
	store  *cookie.Store
	signer *oidctest.Signer
	issuer string
	now    time.Time
	user   tokens.UserInfo
}

func newTraceFixture(t *testing.T) *traceFixture {
	now := time.Now()
	signer := oidctest.NewSigner(t, "k1")
	op := oidctest.NewProvider(t, nil, signer.Pub)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	s, err := tokens.New(ctx, tokens.Config{Issuer: op.URL, ClientID: oidctest.Client, ClientSecret: "s3cret", AppURL: "http://app.test",
		Secrets: []string{"test-secret-a-0123456789abcdef-0123456789"}, Logger: slog.New(slog.DiscardHandler), Clock: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	wait, done := context.WithTimeout(ctx, 10*time.Second)
	defer done()
	if err := s.Provider().WaitReady(wait); err != nil {
		t.Fatal(err)
	}
	return &traceFixture{
		s: s, store: s.Cookies(), signer: signer, issuer: op.URL, now: now,
		user: tokens.UserInfo{Subject: "user-1", LoginID: "l1", LoginAt: now.Add(-time.Minute).Unix(), Expires: now.Add(time.Hour).Unix()},
	}
}

// claims are genuine claims of an access token from the fixture's provider.
func (f *traceFixture) claims() map[string]any {
	return oidctest.With(oidctest.Claims(f.now), "iss", f.issuer)
}

// sealed seals v for the cookie base as the app does.
func (f *traceFixture) sealed(t *testing.T, base string, v any) string {
	t.Helper()
	sealed, err := f.store.Seal(base, v)
	if err != nil {
		t.Fatal(err)
	}
	return sealed
}

// refresh is a sealed refresh cookie's content for sub.
func (f *traceFixture) refresh(sub string) map[string]any {
	return map[string]any{"rt": "rt", "sub": sub, "exp": f.user.Expires}
}

// request carries the session's cookies: access token, sealed refresh and
// userinfo cookies, changed by edit (a value of "" drops the cookie).
func (f *traceFixture) request(t *testing.T, edit func(jar map[string]string)) *http.Request {
	t.Helper()
	jar := map[string]string{
		cookie.Access:   f.signer.Sign(t, f.claims(), nil),
		cookie.Refresh:  f.sealed(t, cookie.Refresh, f.refresh("user-1")),
		cookie.UserInfo: f.sealed(t, cookie.UserInfo, f.user),
	}
	if edit != nil {
		edit(jar)
	}
	r := httptest.NewRequest(http.MethodGet, "/session", nil)
	for name, v := range jar {
		if v != "" {
			r.AddCookie(&http.Cookie{Name: name, Value: v})
		}
	}
	return r
}

// unsigned builds a token by hand: header and claims as given, signature as given.
func unsigned(header, claims map[string]any, sig string) string {
	h, _ := json.Marshal(header)
	c, _ := json.Marshal(claims)
	return base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(c) + "." + sig
}

func TestTraceShowsEveryCheckOfAGenuineSession(t *testing.T) {
	f := newTraceFixture(t)
	r := f.request(t, nil)
	tr := Run(context.Background(), f.s, r, time.Time{})
	if tr.Outcome != Accepted || tr.Kid != "k1" || tr.Decided != "" {
		t.Fatalf("outcome %q, kid %q, decided %q", tr.Outcome, tr.Kid, tr.Decided)
	}
	// Every check, in the order Load makes them, each passed; the refresh
	// cookie is not even opened while the access token is good.
	var got []check.Name
	for _, s := range tr.Steps {
		got = append(got, s.Check)
		if s.Check == check.Refresh {
			if s.Result != NotChecked || !strings.Contains(s.Value, "only to refresh") {
				t.Errorf("%s: %q %q", s.Check, s.Result, s.Value)
			}
			continue
		}
		if s.Result != Pass || s.Value == "" {
			t.Errorf("%s: %q %q", s.Check, s.Result, s.Value)
		}
	}
	// Every check but the one only an opaque access token has.
	want := slices.DeleteFunc(slices.Clone(check.All), func(c check.Name) bool { return c == check.Sealed })
	if strings.Join(checkNames(got), ",") != strings.Join(checkNames(want), ",") {
		t.Errorf("steps %q\nwant %q", got, want)
	}
	if v := tr.Step(check.Key).Value; !strings.Contains(v, "k1") {
		t.Errorf("key step: %q", v)
	}
	if v := tr.Step(check.Algorithm).Value; !strings.Contains(v, "RS256") {
		t.Errorf("algorithm step: %q", v)
	}
	for _, s := range tr.Steps {
		for _, c := range r.Cookies() {
			if strings.Contains(s.Value, c.Value) {
				t.Errorf("%s shows the value of %s", s.Check, c.Name)
			}
		}
	}
}

func checkNames(cs []check.Name) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = string(c)
	}
	return out
}

func TestTraceNamesTheCheckThatDecided(t *testing.T) {
	f := newTraceFixture(t)
	good := f.claims()
	other := oidctest.NewSigner(t, "k1") // same kid, another key
	pubDER, _ := x509.MarshalPKIXPublicKey(&f.signer.Priv.PublicKey)
	hs := strings.Join(strings.Split(unsigned(map[string]any{"alg": "HS256", "typ": "JWT", "kid": "k1"}, good, ""), ".")[:2], ".")
	mac := hmac.New(sha256.New, pubDER)
	mac.Write([]byte(hs))
	hs += "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
	access := func(tok string) func(map[string]string) {
		return func(jar map[string]string) { jar[cookie.Access] = tok }
	}
	cases := []struct {
		name    string
		edit    func(map[string]string)
		outcome Outcome
		decided check.Name
	}{
		{"userinfo changed", func(j map[string]string) { j[cookie.UserInfo] = flipByte(j[cookie.UserInfo]) }, Refused, check.UserInfo},
		{"refresh value as userinfo", func(j map[string]string) { j[cookie.UserInfo] = j[cookie.Refresh] }, Refused, check.UserInfo},
		{"userinfo past its end", func(j map[string]string) {
			u := f.user
			u.Expires = f.now.Add(-time.Second).Unix()
			j[cookie.UserInfo] = f.sealed(t, cookie.UserInfo, u)
		}, Refused, check.SessionEnd},
		{"logged out after this login", func(j map[string]string) { j[cookie.LoggedOut] = strconv.FormatInt(f.user.LoginAt+1, 10) }, Refused, check.Logout},
		{"garbage access token", access("not.a.token"), Refused, check.Shape},
		{"crit header", access(f.signer.Sign(t, good, map[string]any{"crit": []string{"x"}, "x": 1})), Refused, check.Header},
		{"unknown kid", access(oidctest.NewSigner(t, "k2").Sign(t, good, nil)), Refused, check.Key},
		{"alg none", access(unsigned(map[string]any{"alg": "none", "typ": "JWT", "kid": "k1"}, good, "")), Refused, check.Algorithm},
		{"HS256 with the public key", access(hs), Refused, check.Algorithm},
		{"another key, same kid", access(other.Sign(t, good, nil)), Refused, check.Signature},
		{"wrong issuer", access(f.signer.Sign(t, oidctest.With(good, "iss", "http://evil.test"), nil)), Refused, check.Issuer},
		{"wrong audience", access(f.signer.Sign(t, oidctest.With(good, "aud", "other"), nil)), Refused, check.Audience},
		{"no sub", access(f.signer.Sign(t, oidctest.With(good, "sub", nil), nil)), Refused, check.Subject},
		{"not yet valid", access(f.signer.Sign(t, oidctest.With(good, "nbf", f.now.Add(time.Hour).Unix()), nil)), Refused, check.NotBefore},
		{"an ID token", access(f.signer.Sign(t, oidctest.With(good, "nonce", "n"), nil)), Refused, check.Kind},
		{"another user's token", access(f.signer.Sign(t, oidctest.With(good, "sub", "user-2"), nil)), Refused, check.Binding},
		{"expired, no refresh cookie", func(j map[string]string) {
			j[cookie.Access] = f.signer.Sign(t, oidctest.With(good, "exp", f.now.Add(-time.Minute).Unix()), nil)
			j[cookie.Refresh] = ""
		}, Refused, check.Expiry},
		{"no access token, no refresh cookie", func(j map[string]string) { j[cookie.Access], j[cookie.Refresh] = "", "" }, Refused, check.Shape},
		{"expired, refresh cookie sound", access(f.signer.Sign(t, oidctest.With(good, "exp", f.now.Add(-time.Minute).Unix()), nil)), WouldRefresh, ""},
		{"refresh cookie of another user", func(j map[string]string) {
			j[cookie.Refresh] = f.sealed(t, cookie.Refresh, f.refresh("user-2"))
		}, Accepted, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tr := Run(context.Background(), f.s, f.request(t, tc.edit), time.Time{})
			if tr.Outcome != tc.outcome || tr.Decided != tc.decided {
				t.Fatalf("outcome %q decided %q, want %q %q\n%+v", tr.Outcome, tr.Decided, tc.outcome, tc.decided, tr.Steps)
			}
			if tc.decided == "" {
				return
			}
			// The deciding check failed, and nothing after it ran.
			after := false
			for _, s := range tr.Steps {
				// The refresh cookie is looked for after a missing or
				// expired token, to renew it; when none was sent, the
				// token's check decided.
				if after && s.Result != NotChecked && s.Check != check.Kind && s.Check != check.Binding && s.Check != check.Refresh {
					t.Errorf("%s ran after the deciding %s", s.Check, tc.decided)
				}
				if s.Check == tc.decided {
					after = true
				}
			}
			// The kid is named only when its key verified the signature.
			if verified := tr.Step(check.Signature).Result == Pass; (tr.Kid == "k1") != verified {
				t.Errorf("kid %q, signature %q", tr.Kid, tr.Step(check.Signature).Result)
			}
		})
	}
}

func TestTraceAtMovesEveryClock(t *testing.T) {
	f := newTraceFixture(t)
	r := f.request(t, func(j map[string]string) { j[cookie.Refresh] = "" })
	if tr := Run(context.Background(), f.s, r, f.now.Add(3*time.Minute)); tr.Decided != check.Expiry {
		t.Fatalf("3 minutes on: decided %q", tr.Decided)
	}
	if tr := Run(context.Background(), f.s, r, f.now.Add(2*time.Hour)); tr.Decided != check.SessionEnd {
		t.Fatalf("2 hours on: decided %q", tr.Decided)
	}
	if tr := Run(context.Background(), f.s, r, time.Time{}); tr.Outcome != Accepted {
		t.Fatalf("now: %q", tr.Outcome)
	}
}

func TestAttacksAreDecidedByTheRightCheck(t *testing.T) {
	f := newTraceFixture(t)
	want := map[Attack]check.Name{
		AttackFlipByte: check.UserInfo, AttackMoveRefresh: check.UserInfo, AttackAlgNone: check.Algorithm,
		AttackHS256Public: check.Algorithm, AttackExpired: check.Expiry, AttackOtherSubject: check.Binding,
		AttackForeignKey: check.Signature, AttackAfterLogout: check.Logout,
	}
	if len(want) != len(Attacks) {
		t.Fatalf("%d attacks, %d expectations", len(Attacks), len(want))
	}
	r := f.request(t, nil)
	for _, a := range Attacks {
		t.Run(string(a), func(t *testing.T) {
			res, err := Try(context.Background(), f.s, r, a)
			if err != nil {
				t.Fatal(err)
			}
			if res.Trace.Outcome != Refused || res.Trace.Decided != want[a] {
				t.Fatalf("outcome %q decided %q, want %q\n%+v", res.Trace.Outcome, res.Trace.Decided, want[a], res.Trace.Steps)
			}
			for _, c := range r.Cookies() {
				if strings.Contains(res.Shown, c.Value) {
					t.Errorf("shown part holds the value of %s", c.Name)
				}
			}
		})
	}
	// The genuine cookies still pass: the attacks worked on copies.
	if tr := Run(context.Background(), f.s, r, time.Time{}); tr.Outcome != Accepted {
		t.Fatalf("after the attacks: %q", tr.Outcome)
	}
	if _, err := Try(context.Background(), f.s, r, "drop-table"); err != ErrNoAttack {
		t.Fatalf("unknown attack: %v", err)
	}
}

// TestTraceShowsTheAccessTokensHashBinding: with the access token's hash in
// cb_userinfo, the trace says the token is the session's own, and a genuine
// token of the same user swapped in is refused by the kind check.
func TestTraceShowsTheAccessTokensHashBinding(t *testing.T) {
	f := newTraceFixture(t)
	own := f.signer.Sign(t, f.claims(), nil)
	sum := sha256.Sum256([]byte(own))
	f.user.AccessHash = sum[:]
	tr := Run(context.Background(), f.s, f.request(t, func(j map[string]string) { j[cookie.Access] = own }), time.Time{})
	if tr.Outcome != Accepted || !strings.Contains(tr.Step(check.Kind).Value, "issued to this session") {
		t.Fatalf("own token: %q, kind %q", tr.Outcome, tr.Step(check.Kind).Value)
	}
	swapped := f.signer.Sign(t, oidctest.With(f.claims(), "jti", "another"), nil)
	tr = Run(context.Background(), f.s, f.request(t, func(j map[string]string) { j[cookie.Access] = swapped }), time.Time{})
	if tr.Outcome != Refused || tr.Decided != check.Kind || !strings.Contains(tr.Step(check.Kind).Value, "not the access token issued") {
		t.Fatalf("swapped token: %q decided %q, kind %q", tr.Outcome, tr.Decided, tr.Step(check.Kind).Value)
	}
}

// TestTraceOfAnOpaqueSession: with an opaque access token the trace shows
// what is checked on every request (the seal, the very token issued, the
// app's own expiry, the subject) and says of each JWT check that it is not
// made, and why; a changed or swapped cookie is refused where it fails.
func TestTraceOfAnOpaqueSession(t *testing.T) {
	f := newTraceFixture(t)
	const token = "ory_at_opaque-token.signature"
	sum := sha256.Sum256([]byte(token))
	f.user.OpaqueAccess, f.user.AccessHash = true, sum[:]
	opaque := func(token string) string {
		return f.sealed(t, cookie.Access, map[string]any{"at": token, "sub": "user-1", "exp": f.now.Add(time.Hour).Unix()})
	}
	genuine := opaque(token)
	tr := Run(context.Background(), f.s, f.request(t, func(j map[string]string) { j[cookie.Access] = genuine }), time.Time{})
	if tr.Outcome != Accepted || !tr.Opaque {
		t.Fatalf("a genuine opaque session: %q, opaque %v", tr.Outcome, tr.Opaque)
	}
	for _, c := range []check.Name{check.Sealed, check.Kind, check.Expiry, check.Binding} {
		if s := tr.Step(c); s.Result != Pass || s.Value == "" {
			t.Errorf("%s: %q %q", c, s.Result, s.Value)
		}
	}
	if v := tr.Step(check.Kind).Value; !strings.Contains(v, "issued to this session") {
		t.Errorf("kind: %q", v)
	}
	for _, c := range []check.Name{check.Signature, check.Issuer, check.Audience} {
		if s := tr.Step(c); s.Result != NotChecked || !strings.Contains(s.Value, "opaque") {
			t.Errorf("%s on an opaque session: %q %q", c, s.Result, s.Value)
		}
	}
	for _, s := range tr.Steps {
		if strings.Contains(s.Value, token) {
			t.Fatalf("the trace shows the access token in %s", s.Check)
		}
	}

	flipped := []byte(genuine)
	flipped[len(flipped)/2] ^= 1
	for name, tc := range map[string]struct {
		cookie string
		want   check.Name
	}{
		"a changed byte":          {string(flipped), check.Sealed},
		"another session's token": {opaque("ory_at_someone-else.sig"), check.Kind},
		"a JWT in its place":      {f.signer.Sign(t, f.claims(), nil), check.Sealed},
	} {
		tr := Run(context.Background(), f.s, f.request(t, func(j map[string]string) { j[cookie.Access] = tc.cookie }), time.Time{})
		if tr.Outcome != Refused || tr.Decided != tc.want {
			t.Errorf("%s: %q at %q, want refused at %q", name, tr.Outcome, tr.Decided, tc.want)
		}
	}
}

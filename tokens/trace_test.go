package tokens

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

// traceFixture is a Manager whose Verifier trusts one static key, and the
// cookies of a genuine session for user-1. Its Client is nil: a trace that
// tried to refresh would panic.
type traceFixture struct {
	m       *Manager
	cookies *CookieStore
	signer  *testSigner
	now     time.Time
	user    UserInfo
}

func newTraceFixture(t *testing.T) *traceFixture {
	now := time.Now()
	signer := newTestSigner(t, "k1")
	clock := func() time.Time { return now }
	cookies := NewCookieStore("http://app.test", mustSealer(t, secretA))
	v := NewVerifier(staticKeys{"k1": signer.pub}, Profile{Issuer: testIssuer, ClientID: testClient}, clock)
	return &traceFixture{
		// The client is never called: a trace stops where it would refresh.
		m:       NewManager(cookies, NewClient(NewProvider(Profile{Issuer: testIssuer}, nil, clock, discard), ClientConfig{ID: testClient}, nil), v, time.Hour, clock, discard),
		cookies: cookies, signer: signer, now: now,
		user: UserInfo{Subject: "user-1", LoginID: "l1", LoginAt: now.Add(-time.Minute).Unix(), Expires: now.Add(time.Hour).Unix()},
	}
}

// request carries the session's cookies: access token, sealed refresh and
// userinfo cookies, changed by edit (a value of "" drops the cookie).
func (f *traceFixture) request(t *testing.T, edit func(jar map[string]string)) *http.Request {
	t.Helper()
	jar := map[string]string{
		AccessCookie:   f.signer.sign(t, goodClaims(f.now), nil),
		RefreshCookie:  sealedCookie(t, f.cookies, RefreshCookie, refreshCookie{Token: "rt", Subject: "user-1", Expires: f.user.Expires}).Value,
		UserInfoCookie: sealedCookie(t, f.cookies, UserInfoCookie, f.user).Value,
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

func TestTraceShowsEveryCheckOfAGenuineSession(t *testing.T) {
	f := newTraceFixture(t)
	r := f.request(t, nil)
	tr := f.m.Trace(context.Background(), r)
	if tr.Outcome != Accepted || tr.Kid != "k1" || tr.Decided != "" {
		t.Fatalf("outcome %q, kid %q, decided %q", tr.Outcome, tr.Kid, tr.Decided)
	}
	// Every check, in the order Load makes them, each passed; the refresh
	// cookie is not even opened while the access token is good.
	var got []Check
	for _, s := range tr.Steps {
		got = append(got, s.Check)
		if s.Check == CheckRefresh {
			if s.Result != NotChecked || !strings.Contains(s.Value, "only to refresh") {
				t.Errorf("%s: %q %q", s.Check, s.Result, s.Value)
			}
			continue
		}
		if s.Result != Pass || s.Value == "" {
			t.Errorf("%s: %q %q", s.Check, s.Result, s.Value)
		}
	}
	if strings.Join(checkNames(got), ",") != strings.Join(checkNames(allChecks), ",") {
		t.Errorf("steps %q\nwant %q", got, allChecks)
	}
	if v := tr.Step(CheckKey).Value; !strings.Contains(v, "k1") {
		t.Errorf("key step: %q", v)
	}
	if v := tr.Step(CheckAlgorithm).Value; !strings.Contains(v, "RS256") {
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

func checkNames(cs []Check) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = string(c)
	}
	return out
}

func TestTraceNamesTheCheckThatDecided(t *testing.T) {
	f := newTraceFixture(t)
	good := goodClaims(f.now)
	other := newTestSigner(t, "k1") // same kid, another key
	pubDER, _ := x509.MarshalPKIXPublicKey(&f.signer.priv.PublicKey)
	hs := strings.Join(strings.Split(unsigned(map[string]any{"alg": "HS256", "typ": "JWT", "kid": "k1"}, good, ""), ".")[:2], ".")
	mac := hmac.New(sha256.New, pubDER)
	mac.Write([]byte(hs))
	hs += "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
	access := func(tok string) func(map[string]string) {
		return func(jar map[string]string) { jar[AccessCookie] = tok }
	}
	cases := []struct {
		name    string
		edit    func(map[string]string)
		outcome Outcome
		decided Check
	}{
		{"userinfo changed", func(j map[string]string) { j[UserInfoCookie] = flipByte(j[UserInfoCookie]) }, Refused, CheckUserInfo},
		{"refresh value as userinfo", func(j map[string]string) { j[UserInfoCookie] = j[RefreshCookie] }, Refused, CheckUserInfo},
		{"userinfo past its end", func(j map[string]string) {
			u := f.user
			u.Expires = f.now.Add(-time.Second).Unix()
			j[UserInfoCookie] = sealedCookie(t, f.cookies, UserInfoCookie, u).Value
		}, Refused, CheckSessionEnd},
		{"logged out after this login", func(j map[string]string) { j[LogoutCookie] = strconv.FormatInt(f.user.LoginAt+1, 10) }, Refused, CheckLogout},
		{"garbage access token", access("not.a.token"), Refused, CheckShape},
		{"crit header", access(f.signer.sign(t, good, map[string]any{"crit": []string{"x"}, "x": 1})), Refused, CheckHeader},
		{"unknown kid", access(newTestSigner(t, "k2").sign(t, good, nil)), Refused, CheckKey},
		{"alg none", access(unsigned(map[string]any{"alg": "none", "typ": "JWT", "kid": "k1"}, good, "")), Refused, CheckAlgorithm},
		{"HS256 with the public key", access(hs), Refused, CheckAlgorithm},
		{"another key, same kid", access(other.sign(t, good, nil)), Refused, CheckSignature},
		{"wrong issuer", access(f.signer.sign(t, with(good, "iss", "http://evil.test"), nil)), Refused, CheckIssuer},
		{"wrong audience", access(f.signer.sign(t, with(good, "aud", "other"), nil)), Refused, CheckAudience},
		{"no sub", access(f.signer.sign(t, with(good, "sub", nil), nil)), Refused, CheckSubject},
		{"not yet valid", access(f.signer.sign(t, with(good, "nbf", f.now.Add(time.Hour).Unix()), nil)), Refused, CheckNotBefore},
		{"an ID token", access(f.signer.sign(t, with(good, "nonce", "n"), nil)), Refused, CheckKind},
		{"another user's token", access(f.signer.sign(t, with(good, "sub", "user-2"), nil)), Refused, CheckBinding},
		{"expired, no refresh cookie", func(j map[string]string) {
			j[AccessCookie] = f.signer.sign(t, with(good, "exp", f.now.Add(-time.Minute).Unix()), nil)
			j[RefreshCookie] = ""
		}, Refused, CheckExpiry},
		{"no access token, no refresh cookie", func(j map[string]string) { j[AccessCookie], j[RefreshCookie] = "", "" }, Refused, CheckShape},
		{"expired, refresh cookie sound", access(f.signer.sign(t, with(good, "exp", f.now.Add(-time.Minute).Unix()), nil)), WouldRefresh, ""},
		{"refresh cookie of another user", func(j map[string]string) {
			j[RefreshCookie] = sealedCookie(t, f.cookies, RefreshCookie, refreshCookie{Token: "rt", Subject: "user-2", Expires: f.user.Expires}).Value
		}, Accepted, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tr := f.m.Trace(context.Background(), f.request(t, tc.edit))
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
				if after && s.Result != NotChecked && s.Check != CheckKind && s.Check != CheckBinding && s.Check != CheckRefresh {
					t.Errorf("%s ran after the deciding %s", s.Check, tc.decided)
				}
				if s.Check == tc.decided {
					after = true
				}
			}
			// The kid is named only when its key verified the signature.
			if verified := tr.Step(CheckSignature).Result == Pass; (tr.Kid == "k1") != verified {
				t.Errorf("kid %q, signature %q", tr.Kid, tr.Step(CheckSignature).Result)
			}
		})
	}
}

func TestTraceAtMovesEveryClock(t *testing.T) {
	f := newTraceFixture(t)
	r := f.request(t, func(j map[string]string) { j[RefreshCookie] = "" })
	if tr := f.m.TraceAt(context.Background(), r, f.now.Add(3*time.Minute)); tr.Decided != CheckExpiry {
		t.Fatalf("3 minutes on: decided %q", tr.Decided)
	}
	if tr := f.m.TraceAt(context.Background(), r, f.now.Add(2*time.Hour)); tr.Decided != CheckSessionEnd {
		t.Fatalf("2 hours on: decided %q", tr.Decided)
	}
	if tr := f.m.Trace(context.Background(), r); tr.Outcome != Accepted {
		t.Fatalf("now: %q", tr.Outcome)
	}
}

func TestAttacksAreDecidedByTheRightCheck(t *testing.T) {
	f := newTraceFixture(t)
	want := map[Attack]Check{
		AttackFlipByte: CheckUserInfo, AttackMoveRefresh: CheckUserInfo, AttackAlgNone: CheckAlgorithm,
		AttackHS256Public: CheckAlgorithm, AttackExpired: CheckExpiry, AttackOtherSubject: CheckBinding,
		AttackForeignKey: CheckSignature, AttackAfterLogout: CheckLogout,
	}
	if len(want) != len(Attacks) {
		t.Fatalf("%d attacks, %d expectations", len(Attacks), len(want))
	}
	r := f.request(t, nil)
	for _, a := range Attacks {
		t.Run(string(a), func(t *testing.T) {
			res, err := f.m.Attack(context.Background(), r, a)
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
	if tr := f.m.Trace(context.Background(), r); tr.Outcome != Accepted {
		t.Fatalf("after the attacks: %q", tr.Outcome)
	}
	if _, err := f.m.Attack(context.Background(), r, "drop-table"); err != ErrNoAttack {
		t.Fatalf("unknown attack: %v", err)
	}
}

// TestTraceShowsTheAccessTokensHashBinding: with the access token's hash in
// cb_userinfo, the trace says the token is the session's own, and a genuine
// token of the same user swapped in is refused by the kind check.
func TestTraceShowsTheAccessTokensHashBinding(t *testing.T) {
	f := newTraceFixture(t)
	own := f.signer.sign(t, goodClaims(f.now), nil)
	sum := sha256.Sum256([]byte(own))
	f.user.AccessHash = sum[:]
	tr := f.m.Trace(context.Background(), f.request(t, func(j map[string]string) { j[AccessCookie] = own }))
	if tr.Outcome != Accepted || !strings.Contains(tr.Step(CheckKind).Value, "issued to this session") {
		t.Fatalf("own token: %q, kind %q", tr.Outcome, tr.Step(CheckKind).Value)
	}
	swapped := f.signer.sign(t, with(goodClaims(f.now), "jti", "another"), nil)
	tr = f.m.Trace(context.Background(), f.request(t, func(j map[string]string) { j[AccessCookie] = swapped }))
	if tr.Outcome != Refused || tr.Decided != CheckKind || !strings.Contains(tr.Step(CheckKind).Value, "not the access token issued") {
		t.Fatalf("swapped token: %q decided %q, kind %q", tr.Outcome, tr.Decided, tr.Step(CheckKind).Value)
	}
}

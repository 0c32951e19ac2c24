package tokens

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/changebank/changebank/tokens/oidc"
)

func TestRefresherRedeemsOncePerToken(t *testing.T) {
	now := time.Now()
	clock := func() time.Time { return now }
	f := newRefresher(clock, refreshGrace, time.Minute)
	var calls atomic.Int32
	release := make(chan struct{})
	redeem := func(context.Context) (*refreshed, error) {
		calls.Add(1)
		<-release
		return &refreshed{access: "new-access", refreshToken: "rt-2"}, nil
	}

	var wg sync.WaitGroup
	results := make(chan string, 20)
	for range 20 {
		wg.Go(func() {
			res, err := f.do(context.Background(), "rt-1", time.Time{}, redeem)
			if err != nil {
				t.Error(err)
				return
			}
			results <- res.access
		})
	}
	time.Sleep(50 * time.Millisecond) // let them all pile up on the one call
	close(release)
	wg.Wait()
	close(results)
	for got := range results {
		if got != "new-access" {
			t.Fatalf("a caller got %q", got)
		}
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("20 concurrent refreshes of one token made %d token calls, want 1", n)
	}

	// A late request with the old token, inside the grace window: same result, no call.
	res, err := f.do(context.Background(), "rt-1", time.Time{}, redeem)
	if err != nil || res.refreshToken != "rt-2" || calls.Load() != 1 {
		t.Fatalf("late request: %+v, %v, calls %d", res, err, calls.Load())
	}
	// After the window the old token is redeemed again (and, if spent, refused by the provider).
	now = now.Add(refreshGrace + time.Second)
	if _, err := f.do(context.Background(), "rt-1", time.Time{}, redeem); err != nil || calls.Load() != 2 {
		t.Fatalf("after the grace window: %v, calls %d", err, calls.Load())
	}
}

// TestRefresherAsksAgainWhenTheRememberedTokenIsDue: a provider that keeps
// the refresh token (Google, FusionAuth's Reusable policy) with access
// tokens shorter than the grace window: the next refresh, once the
// remembered access token is itself due, reaches the provider instead of
// handing back the tokens it replaces (which would never refresh again
// until the window closed, and serve an expired token meanwhile).
func TestRefresherAsksAgainWhenTheRememberedTokenIsDue(t *testing.T) {
	now := time.Now()
	f := newRefresher(func() time.Time { return now }, refreshGrace, time.Minute)
	calls := 0
	redeem := func(context.Context) (*refreshed, error) {
		calls++
		return &refreshed{access: "access", refreshToken: "rt", claims: &Claims{Expiry: oidc.UnixTime(now.Add(8 * time.Second).Unix())}}, nil
	}
	for i, at := range []time.Duration{0, time.Second, 4 * time.Second} {
		now = now.Add(at)
		if _, err := f.do(context.Background(), "rt", time.Time{}, redeem); err != nil {
			t.Fatal(err)
		}
		if want := map[int]int{0: 1, 1: 1, 2: 2}[i]; calls != want {
			t.Fatalf("refresh %d (%s after the previous): %d token calls, want %d", i+1, at, calls, want)
		}
	}
}

func TestRefresherDoesNotRememberFailures(t *testing.T) {
	f := newRefresher(time.Now, refreshGrace, time.Minute)
	calls := 0
	fail := func(context.Context) (*refreshed, error) { calls++; return nil, ErrProviderUnavailable }
	for range 2 {
		if _, err := f.do(context.Background(), "rt", time.Time{}, fail); !errors.Is(err, ErrProviderUnavailable) {
			t.Fatal(err)
		}
	}
	if calls != 2 {
		t.Fatalf("a failed refresh was remembered: %d calls, want 2 (the second try must reach the provider)", calls)
	}
}

func TestSafeReturnPath(t *testing.T) {
	cases := map[string]string{
		"/make-change":           "/make-change",
		"/account?tab=1":         "/account?tab=1",
		"":                       "",
		"//evil.example":         "",
		"/\\evil.example":        "",
		"\\\\evil.example":       "",
		"https://evil.example/":  "",
		"javascript:alert(1)":    "",
		"evil.example":           "",
		"/ok\r\nSet-Cookie: x=1": "",
		"/tab\tthere":            "",
		"/%0d%0aLocation:x":      "/%0d%0aLocation:x", // stays encoded: a path, harmless
	}
	for in, want := range cases {
		if got := SafeReturnPath(in); got != want {
			t.Errorf("SafeReturnPath(%q) = %q, want %q", in, got, want)
		}
	}
}

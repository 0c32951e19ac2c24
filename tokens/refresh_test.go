package tokens

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
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

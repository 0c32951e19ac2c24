package tokens

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

// recorder is an Observer that keeps what it is told.
type recorder struct {
	mu       sync.Mutex
	loads    []string
	results  []string
	refusals []string
}

func (r *recorder) SessionLoaded(outcome string, reason NoticeCode) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.loads = append(r.loads, outcome+" "+string(reason))
}

func (r *recorder) Refreshed(result string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.results = append(r.results, result)
}

func (r *recorder) Refused(kind string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.refusals = append(r.refusals, kind)
}

func (r *recorder) count(list []string, v string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, x := range list {
		if x == v {
			n++
		}
	}
	return n
}

// An app's metrics learn how each refresh ended: the one call that
// redeemed, the requests that shared it, the late one the grace window
// answered, the provider's refusal, and the dead token not sent again.
func TestRefresherTellsItsObserver(t *testing.T) {
	now := time.Now()
	f := newRefresher(func() time.Time { return now }, refreshGrace, time.Minute)
	rec := &recorder{}
	f.observe, f.dead = rec, newHashSet()
	release := make(chan struct{})
	redeem := func(context.Context) (*refreshed, error) {
		<-release
		return &refreshed{access: "new-access", refreshToken: "rt-2"}, nil
	}
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() { f.do(context.Background(), "rt-1", time.Time{}, redeem) })
	}
	time.Sleep(50 * time.Millisecond)
	close(release)
	wg.Wait()
	f.do(context.Background(), "rt-1", time.Time{}, redeem)
	if r, s, g := rec.count(rec.results, "redeemed"), rec.count(rec.results, "shared"), rec.count(rec.results, "grace"); r != 1 || s != 9 || g != 1 {
		t.Errorf("redeemed %d, shared %d, grace %d; want 1, 9, 1 (%v)", r, s, g, rec.results)
	}

	refused := func(context.Context) (*refreshed, error) {
		return nil, &tokenEndpointError{grant: "the refresh token", kind: ErrNoSession, re: &oauth2.RetrieveError{ErrorCode: "invalid_grant"}}
	}
	until := now.Add(time.Hour)
	f.do(context.Background(), "rt-spent", until, refused)
	f.do(context.Background(), "rt-spent", until, refused)
	if rec.count(rec.results, "refused") != 1 || rec.count(rec.results, "dead") != 1 || rec.count(rec.refusals, "dead_refresh_token") != 1 {
		t.Errorf("a refused token, then the same again: %v, refusals %v", rec.results, rec.refusals)
	}
	f.do(context.Background(), "rt-other", until, func(context.Context) (*refreshed, error) { return nil, ErrProviderUnavailable })
	if rec.count(rec.results, "unavailable") != 1 {
		t.Errorf("a provider that cannot answer: %v", rec.results)
	}
	for _, r := range rec.results {
		if !slices.Contains(RefreshResults, r) {
			t.Errorf("result %q is not in RefreshResults", r)
		}
	}
}

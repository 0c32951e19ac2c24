package routes

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"
)

// The cost of the session on the hot path, measured through the real
// handler (no network): a page with a valid session (verify the JWT, open
// two sealed cookies), and a burst of requests that all carry an expired
// token and share one refresh.

// loggedIn logs a browser in and returns a handler and its cookies.
func loggedIn(b *testing.B, o stackOptions) (*stack, http.Handler, []*http.Cookie) {
	s := newStack(b, o)
	br := s.browser()
	br.login("")
	u, _ := url.Parse(s.appURL)
	return s, s.handler, br.jar.Cookies(u)
}

// serve answers one GET with the cookies, in process.
func serve(h http.Handler, path string, cookies []*http.Cookie) int {
	req := httptest.NewRequest(http.MethodGet, path, nil)
	for _, c := range cookies {
		req.AddCookie(c)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code
}

func BenchmarkAccountPage(b *testing.B) {
	_, h, cookies := loggedIn(b, stackOptions{})
	b.ReportAllocs()
	for b.Loop() {
		if code := serve(h, "/account", cookies); code != http.StatusOK {
			b.Fatalf("status %d", code)
		}
	}
}

func BenchmarkAPIMeParallel(b *testing.B) {
	_, h, cookies := loggedIn(b, stackOptions{})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if code := serve(h, "/api/me", cookies); code != http.StatusOK {
				b.Errorf("status %d", code)
			}
		}
	})
}

// BenchmarkExpiredBurst measures 20 simultaneous requests with one expired
// access token: one refresh at the provider, 19 answered from it.
func BenchmarkExpiredBurst(b *testing.B) {
	s, h, cookies := loggedIn(b, stackOptions{refreshPolicy: "Reusable"})
	b.ReportAllocs()
	for b.Loop() {
		s.clock.Advance(expireAndLeaveGrace)
		var wg sync.WaitGroup
		for range 20 {
			wg.Go(func() {
				if code := serve(h, "/api/me", cookies); code != http.StatusOK {
					b.Errorf("status %d", code)
				}
			})
		}
		wg.Wait()
	}
	b.ReportMetric(float64(s.idp.TokenCalls("refresh_token"))/float64(b.N), "token-calls/burst")
}

// Far enough to expire the access token and leave the last burst's grace window.
const expireAndLeaveGrace = 3 * time.Minute

package routes

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/changebank/changebank/tokens"
)

// The cost of the session on the hot path, measured through the real
// handler (no network), logging at info as the app does by default.
//
// BenchmarkHotPath runs the public page first, then the protected routes,
// and reports each one's throughput as a fraction of the public page's
// ("x-public": 0.90 means 90% of its requests per second) beside its
// allocations per request. Run it as
//
//	go test ./routes -run '^$' -bench HotPath -benchtime 2s
func BenchmarkHotPath(b *testing.B) {
	s, h, cookies := loggedIn(b, stackOptions{infoLogs: true})
	var bearer string
	for _, c := range cookies {
		if c.Name == tokens.AccessCookie {
			bearer = c.Value
		}
	}
	cases := []struct {
		name    string
		path    string
		cookies []*http.Cookie
		bearer  string
	}{
		{"public", "/", nil, ""},
		{"healthz", "/healthz", nil, ""},
		{"account", "/account", cookies, ""},
		{"api-cookies", "/api/me", cookies, ""},
		{"api-bearer", "/api/me", nil, bearer},
	}
	var publicNs float64
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			req := httptest.NewRequest(http.MethodGet, tc.path, nil)
			for _, c := range tc.cookies {
				req.AddCookie(c)
			}
			if tc.bearer != "" {
				req.Header.Set("Authorization", "Bearer "+tc.bearer)
			}
			b.ReportAllocs()
			for b.Loop() {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK {
					b.Fatalf("status %d", rec.Code)
				}
			}
			ns := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
			if tc.name == "public" {
				publicNs = ns
			} else if publicNs > 0 {
				b.ReportMetric(publicNs/ns, "x-public")
			}
		})
	}
	s.checkLogs()
}

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

func BenchmarkAPIMeParallel(b *testing.B) {
	_, h, cookies := loggedIn(b, stackOptions{infoLogs: true})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if code := serve(h, "/api/me", cookies); code != http.StatusOK {
				b.Errorf("status %d", code)
			}
		}
	})
}

// BenchmarkExpiredBurst measures 100 simultaneous requests with one expired
// access token: one refresh at the provider, the others answered from it.
func BenchmarkExpiredBurst(b *testing.B) {
	s, h, cookies := loggedIn(b, stackOptions{refreshPolicy: "Reusable", infoLogs: true})
	b.ReportAllocs()
	calls := s.idp.TokenCalls("refresh_token")
	for b.Loop() {
		s.clock.Advance(expireAndLeaveGrace)
		var wg sync.WaitGroup
		for range 100 {
			wg.Go(func() {
				if code := serve(h, "/api/me", cookies); code != http.StatusOK {
					b.Errorf("status %d", code)
				}
			})
		}
		wg.Wait()
	}
	b.ReportMetric(float64(s.idp.TokenCalls("refresh_token")-calls)/float64(b.N), "token-calls/burst")
}

// Far enough to expire the access token and leave the last burst's grace window.
const expireAndLeaveGrace = 3 * time.Minute

package routes

import (
	"bufio"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/changebank/changebank/tokens/cookie"
)

// The cost of the session on the hot path, measured through the real
// handler (no network) with request logging off (LOG_LEVEL=warn), as
// cmd/load measures over HTTP. Nothing test-only runs in the timed loop: the
// answer goes to a reused writer that keeps no body (a server writes it to
// the socket), and the log's secret scan runs once, after every route.
//
// BenchmarkHotPath reports each route's allocations, the CPU time its
// thread spent per request ("cpu-ns/op", on Linux: unlike ns/op it leaves
// out the time other processes held the core, so it holds still on a
// shared machine), and its throughput by that CPU time as a fraction of its
// baseline's ("x-base": 0.90 means 90% of its requests per CPU second), the
// public page for /account, /healthz for the API, as the goals
// compare them; "account-metrics" is /account on a second stack with the
// Prometheus metrics on, against /account without (what the metrics cost
// a page). Run it as
//
//	go test ./routes -run '^$' -bench HotPath -benchtime 1s -count 5
func BenchmarkHotPath(b *testing.B) {
	s, h, cookies := loggedIn(b, stackOptions{quietLogs: true})
	sm, hm, metricsCookies := loggedIn(b, stackOptions{quietLogs: true, metrics: true})
	var bearer string
	for _, c := range cookies {
		if c.Name == cookie.Access {
			bearer = c.Value
		}
	}
	cases := []struct {
		name    string
		path    string
		cookies []*http.Cookie
		bearer  string
		base    string       // the case this one is compared with
		h       http.Handler // nil: the stack without metrics
	}{
		{"public", "/", nil, "", "", nil},
		{"healthz", "/healthz", nil, "", "", nil},
		{"account", "/account", cookies, "", "public", nil},
		{"account-metrics", "/account", metricsCookies, "", "account", hm},
		{"api-cookies", "/api/me", cookies, "", "healthz", nil},
		{"api-bearer", "/api/me", nil, bearer, "healthz", nil},
	}
	nsPerOp := map[string]float64{}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			req := httptest.NewRequest(http.MethodGet, tc.path, nil)
			for _, c := range tc.cookies {
				req.AddCookie(c)
			}
			if tc.bearer != "" {
				req.Header.Set("Authorization", "Bearer "+tc.bearer)
			}
			w := &discardWriter{header: http.Header{}}
			b.ReportAllocs()
			// The handler runs on this goroutine, so on this thread.
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			before, cpuOK := threadCPU()
			handler := h
			if tc.h != nil {
				handler = tc.h
			}
			for b.Loop() {
				w.reset()
				handler.ServeHTTP(w, req)
				if w.code != http.StatusOK || w.n == 0 {
					b.Fatalf("status %d, %d bytes", w.code, w.n)
				}
			}
			after, _ := threadCPU()
			if !cpuOK {
				return
			}
			nsPerOp[tc.name] = float64(after-before) / float64(b.N)
			b.ReportMetric(nsPerOp[tc.name], "cpu-ns/op")
			if base := nsPerOp[tc.base]; base > 0 {
				b.ReportMetric(base/nsPerOp[tc.name], "x-base")
			}
		})
	}
	s.checkLogs()
	sm.checkLogs()
}

// threadCPU returns the CPU time the calling thread has used, where the
// system tells it (getrusage's RUSAGE_THREAD, Linux).
func threadCPU() (time.Duration, bool) {
	const rusageThread = 1
	var ru syscall.Rusage
	if runtime.GOOS != "linux" || syscall.Getrusage(rusageThread, &ru) != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}

// discardWriter is a ResponseWriter that keeps the status and the header
// and counts the body's bytes, reused from request to request as a
// server's connection reuses its buffers.
type discardWriter struct {
	header http.Header
	code   int
	n      int
}

func (w *discardWriter) Header() http.Header { return w.header }

func (w *discardWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
}

func (w *discardWriter) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	w.n += len(p)
	return len(p), nil
}

func (w *discardWriter) reset() {
	clear(w.header)
	w.code, w.n = 0, 0
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

// BenchmarkReadRequest measures what net/http spends reading a request
// before any handler runs, without and with a session's Cookie header (the
// real cookies of a logged-in stand-in session): the floor under every
// cookie-session request, which no handler can take back. net/http checks
// every byte of every header value as it reads it. Run it as
//
//	go test ./routes -run '^$' -bench ReadRequest -count 5
func BenchmarkReadRequest(b *testing.B) {
	_, _, cookies := loggedIn(b, stackOptions{quietLogs: true})
	withCookies := httptest.NewRequest(http.MethodGet, "/account", nil)
	for _, c := range cookies {
		withCookies.AddCookie(c)
	}
	for _, tc := range []struct {
		name   string
		cookie string
	}{
		{"no-cookie", ""},
		{"session-cookies", "Cookie: " + withCookies.Header.Get("Cookie") + "\r\n"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			raw := "GET /account HTTP/1.1\r\nHost: localhost:8080\r\nUser-Agent: wrk\r\n" + tc.cookie + "\r\n"
			src := strings.NewReader(raw)
			br := bufio.NewReaderSize(src, 8<<10)
			b.ReportAllocs()
			for b.Loop() {
				src.Reset(raw)
				br.Reset(src)
				if _, err := http.ReadRequest(br); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(tc.cookie)), "header-bytes")
		})
	}
}

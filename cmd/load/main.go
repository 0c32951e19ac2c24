// Command load measures ChangeBank's hot path over HTTP, as
// docs/performance.md quotes it. It builds the app, starts it with the
// embedded FusionAuth stand-in on free loopback ports (access tokens living
// an hour, so nothing refreshes during the run), logs in as
// richard@example.com, then loads each route in turn, for several
// interleaved rounds, and prints each route's median requests per second,
// p50 and p99 latency and the app's CPU time per request (from /proc, on
// Linux), then ratios, each the median of the rounds' own ratios: a
// protected route against the public one it is compared with, measured
// minutes apart at most. It prints figures only: what they mean is for the
// reader (docs/performance.md says it for one machine).
//
// Run it from the repository root:
//
//	go run ./cmd/load
//
// With -pin (the default where taskset exists) the app runs on CPU 0 and
// the load generator on the others, so that they do not share a core. The
// generator is wrk where it is installed (Go's HTTP client on one core
// caps the fast routes), else a Go client. Request logging is off by
// default (-log-level warn), so that the figures are the request's own;
// -log-level info logs a line per request, as deployed.
//
// With -oauth2-proxy naming an oauth2-proxy binary (docs/performance.md says
// how to build one), it
// also starts oauth2-proxy against the same stand-in, pinned like the app,
// logs in through it and loads its cookie check (/oauth2/auth) and /ping in
// the same rounds, for the side-by-side ratio.
package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/changebank/changebank/idp"
)

// The demo application and user of the load kickstart, and the second
// application it registers for oauth2-proxy.
const (
	clientID          = "e9fdb985-9173-4e01-9d73-ac2d60d1dc8e"
	clientSecret      = "changebank-demo-client-secret-not-for-production"
	proxyClientID     = "0a2f7c1e-3b5d-4e6f-8a9b-0c1d2e3f4a5b"
	proxyClientSecret = "oauth2-proxy-load-client-secret-not-for-production"
	kickstart         = "testdata/kickstart-hour-tokens.json"
	email             = "richard@example.com"
	password          = "password"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		os.Exit(1)
	}
}

// target is one route under load.
type target struct {
	name, path string
	proxy      bool   // oauth2-proxy's, not the app's
	metrics    bool   // the app's second instance, whose Prometheus metrics are on (METRICS_ADDR)
	cookies    bool   // send the session cookies
	padding    bool   // send a cookie no route reads, as long as the session's: the header's cost alone
	bearer     bool   // send the access token as a Bearer token
	want       int    // the status every answer must have
	contains   string // and a piece of its body, to be sure it is the right page
}

var targets = []target{
	{name: "GET / (public page)", path: "/", want: http.StatusOK, contains: "Dollars in, coins out"},
	{name: "GET /healthz", path: "/healthz", want: http.StatusOK, contains: "ok"},
	{name: "GET / (padding cookie)", path: "/", padding: true, want: http.StatusOK, contains: "Dollars in, coins out"},
	{name: "GET /healthz (cookies)", path: "/healthz", cookies: true, want: http.StatusOK, contains: "ok"},
	{name: "GET /account (cookies)", path: "/account", cookies: true, want: http.StatusOK, contains: `id="name"`},
	{name: "GET /account (cookies, metrics on)", path: "/account", cookies: true, metrics: true, want: http.StatusOK, contains: `id="name"`},
	{name: "GET /api/me (cookies)", path: "/api/me", cookies: true, want: http.StatusOK, contains: `"authenticated_by":"cookie"`},
	{name: "GET /api/me (Bearer)", path: "/api/me", bearer: true, want: http.StatusOK, contains: `"authenticated_by":"bearer"`},
}

var proxyTargets = []target{
	{name: "oauth2-proxy /oauth2/auth", path: "/oauth2/auth", proxy: true, cookies: true, want: http.StatusAccepted},
	{name: "oauth2-proxy /ping", path: "/ping", proxy: true, want: http.StatusOK, contains: "OK"},
}

// ratio is one comparison the script prints: num's req/s over den's, and
// den's CPU time per request over num's.
type ratio struct {
	num, den string // target names
}

var ratios = []ratio{
	{num: "GET /account (cookies)", den: "GET / (public page)"},
	{num: "GET /api/me (cookies)", den: "GET /healthz"},
	{num: "GET /api/me (Bearer)", den: "GET /healthz"},
	// The same comparisons with a Cookie header as long on both sides:
	// what the session's checks cost, apart from net/http reading its cookies.
	{num: "GET /account (cookies)", den: "GET / (padding cookie)"},
	{num: "GET /api/me (cookies)", den: "GET /healthz (cookies)"},
	// What the Prometheus metrics cost a page: the same route on the
	// same build, with METRICS_ADDR set and not.
	{num: "GET /account (cookies, metrics on)", den: "GET /account (cookies)"},
	{num: "GET /api/me (cookies)", den: "oauth2-proxy /oauth2/auth"},
	{num: "GET /healthz", den: "oauth2-proxy /ping"},
}

// server is a process under load.
type server struct {
	cmd  *exec.Cmd
	url  string
	jar  http.CookieJar
	auth string // the access token, for Bearer targets
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	duration := fs.Duration("d", 5*time.Second, "how long to load each route in each round")
	conns := fs.Int("c", 32, "concurrent connections")
	warmup := fs.Duration("warmup", time.Second, "load before measuring each route")
	rounds := fs.Int("rounds", 5, "rounds over every route; the figures are the rounds' medians")
	logLevel := fs.String("log-level", "warn", "the app's LOG_LEVEL: warn logs no request line, info one per request, as deployed")
	_, tasksetErr := exec.LookPath("taskset")
	pin := fs.Bool("pin", tasksetErr == nil && runtime.NumCPU() > 1, "run the app on CPU 0 and the load generator on the others (needs taskset)")
	wrkPath, _ := exec.LookPath("wrk")
	gen := fs.String("wrk", wrkPath, "the wrk binary generating the load; empty: a Go client")
	proxyBin := fs.String("oauth2-proxy", "", "an oauth2-proxy binary to load side by side (docs/performance.md says how to build it)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *rounds < 1 {
		return errors.New("-rounds must be at least 1")
	}

	dir, err := os.MkdirTemp("", "changebank-load-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "changebank")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("building the app (run this from the repository root): %w", err)
	}

	ports := make([]string, 6) // app, stand-in, oauth2-proxy; the app with metrics on, its stand-in, its metrics
	for i := range ports {
		if ports[i], err = freePort(); err != nil {
			return err
		}
	}
	issuer, proxyURL := "http://127.0.0.1:"+ports[1], "http://127.0.0.1:"+ports[2]
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// startApp starts the app with its stand-in on the ports given, and
	// logs in; extra settings come last.
	startApp := func(name, port, idpPort string, extra ...string) (*server, error) {
		url := "http://127.0.0.1:" + port
		srv := &server{url: url, cmd: onCPU0(ctx, *pin, bin, "-embedded-idp")}
		srv.cmd.Dir = "."
		srv.cmd.Env = append(append(os.Environ(),
			"APP_URL="+url, "LISTEN_ADDR=127.0.0.1:"+port, "ISSUER=http://127.0.0.1:"+idpPort,
			"CLIENT_ID="+clientID, "CLIENT_SECRET="+clientSecret,
			"APP_SECRET_KEY="+base64.RawURLEncoding.EncodeToString(secret),
			"KICKSTART_FILE="+kickstart, "LOG_LEVEL="+*logLevel,
			"OAUTH2_PROXY_CALLBACK="+proxyURL+"/oauth2/callback", // the kickstart authorizes oauth2-proxy's callback
			"ATTACKER_ADDR=",           // .env's attacker page would share the app's 127.0.0.1 host, which the app refuses; set, so .env does not apply
			"METRICS_ADDR="), extra...) // off unless extra turns it on
		if err := start(srv.cmd, filepath.Join(dir, name+".log")); err != nil {
			return nil, fmt.Errorf("starting the %s: %w", name, err)
		}
		if err := waitReady(ctx, url+"/readyz"); err != nil {
			return srv, err
		}
		var err error
		if srv.jar, srv.auth, err = login(url+"/login", url+"/callback?", "cb_access_token"); err != nil {
			return srv, fmt.Errorf("logging in to the %s: %w", name, err)
		}
		return srv, nil
	}
	app, err := startApp("app", ports[0], ports[1])
	if app != nil {
		defer stop(app.cmd)
	}
	if err != nil {
		return err
	}
	// The same build with its metrics on, loaded in the same rounds: what
	// the metrics cost a page.
	metricsAddr := "127.0.0.1:" + ports[5]
	withMetrics, err := startApp("app-with-metrics", ports[3], ports[4], "METRICS_ADDR="+metricsAddr)
	if withMetrics != nil {
		defer stop(withMetrics.cmd)
	}
	if err != nil {
		return err
	}
	all := slices.Clone(targets)
	var proxy *server
	if *proxyBin != "" {
		cookieSecret := make([]byte, 32)
		_, _ = rand.Read(cookieSecret)
		proxy = &server{url: proxyURL, cmd: onCPU0(ctx, *pin, *proxyBin,
			"--provider=oidc", "--oidc-issuer-url="+issuer,
			"--client-id="+proxyClientID, "--client-secret="+proxyClientSecret,
			"--code-challenge-method=S256", "--redirect-url="+proxyURL+"/oauth2/callback",
			"--http-address=127.0.0.1:"+ports[2], "--upstream=static://200",
			"--cookie-secret="+base64.RawURLEncoding.EncodeToString(cookieSecret), "--cookie-secure=false",
			"--email-domain=*", "--skip-provider-button",
			"--request-logging=false", "--auth-logging=false")} // off, as the app's are
		if err := start(proxy.cmd, filepath.Join(dir, "oauth2-proxy.log")); err != nil {
			return fmt.Errorf("starting oauth2-proxy: %w", err)
		}
		defer stop(proxy.cmd)
		if err := waitReady(ctx, proxyURL+"/ping"); err != nil {
			return fmt.Errorf("oauth2-proxy: %w", err)
		}
		if proxy.jar, _, err = login(proxyURL+"/oauth2/start?rd=%2F", proxyURL+"/oauth2/callback?", ""); err != nil {
			log, _ := os.ReadFile(filepath.Join(dir, "oauth2-proxy.log"))
			return fmt.Errorf("logging in through oauth2-proxy: %w\n%s", err, log)
		}
		all = append(all, proxyTargets...)
	}
	if *pin {
		// The generator keeps off the servers' core.
		cpus := "1-" + strconv.Itoa(runtime.NumCPU()-1)
		if out, err := exec.Command("taskset", "-a", "-p", "-c", cpus, strconv.Itoa(os.Getpid())).CombinedOutput(); err != nil {
			return fmt.Errorf("pinning the load generator: %v: %s", err, out)
		}
	}

	generator := "a Go client"
	if *gen != "" {
		generator = *gen
	}
	fmt.Fprintf(stdout, "ChangeBank load: %d connections, %d rounds of %s per route after %s warm-up, generator %s, LOG_LEVEL=%s, servers pinned to CPU 0: %v\n",
		*conns, *rounds, *duration, *warmup, generator, *logLevel, *pin)
	fmt.Fprintf(stdout, "machine: %d CPUs, %s, %s\n", runtime.NumCPU(), cpuModel(), runtime.Version())
	if proxy == nil {
		fmt.Fprintln(stdout, "oauth2-proxy: not measured (give -oauth2-proxy PATH; docs/performance.md says how to build it)")
	}

	results := map[string][]result{}
	for range *rounds {
		for _, t := range all {
			srv := app
			switch {
			case t.proxy:
				srv = proxy
			case t.metrics:
				srv = withMetrics
			}
			var r result
			var err error
			if *gen != "" {
				r, err = loadWrk(ctx, *gen, srv, t, *conns, *warmup, *duration)
			} else {
				r, err = load(ctx, srv, t, *conns, *warmup, *duration)
			}
			if err != nil {
				return fmt.Errorf("%s: %w", t.name, err)
			}
			results[t.name] = append(results[t.name], r)
		}
	}

	fmt.Fprintf(stdout, "\nmedians of %d rounds\n%-28s %9s %9s %9s %11s\n", *rounds, "route", "req/s", "p50", "p99", "CPU/req")
	for _, t := range all {
		rs := results[t.name]
		cpu := "-"
		if c := median(rs, func(r result) float64 { return float64(r.cpu) }); c > 0 {
			cpu = fmt.Sprintf("%.1fµs", c/float64(time.Microsecond))
		}
		fmt.Fprintf(stdout, "%-28s %9.0f %9s %9s %11s\n", t.name,
			median(rs, func(r result) float64 { return r.rate }),
			time.Duration(median(rs, func(r result) float64 { return float64(r.p50) })).Round(time.Microsecond),
			time.Duration(median(rs, func(r result) float64 { return float64(r.p99) })).Round(time.Microsecond), cpu)
	}
	if n, err := scrapedRequests(ctx, "http://"+metricsAddr+"/metrics", "/account"); err != nil {
		return fmt.Errorf("the metrics of the app with metrics on: %w", err)
	} else {
		fmt.Fprintf(stdout, "metrics on: its /metrics counted %d answers to /account\n", n)
	}
	fmt.Fprintf(stdout, "\nratios, each the median of the %d rounds' own (req/s; CPU per request, den's over num's)\n", *rounds)
	for _, q := range ratios {
		num, den := results[q.num], results[q.den]
		if len(num) == 0 || len(den) == 0 {
			continue
		}
		rates, cpus := make([]float64, len(num)), make([]float64, 0, len(num))
		for i := range num {
			rates[i] = num[i].rate / den[i].rate
			if num[i].cpu > 0 && den[i].cpu > 0 {
				cpus = append(cpus, float64(den[i].cpu)/float64(num[i].cpu))
			}
		}
		line := fmt.Sprintf("%-24s ÷ %-26s %6.2f", q.num, q.den, middle(rates))
		if len(cpus) == len(num) {
			line += fmt.Sprintf("   CPU %5.2f", middle(cpus))
		}
		fmt.Fprintln(stdout, line)
	}
	return nil
}

// median returns the median of f over rs.
func median(rs []result, f func(result) float64) float64 {
	xs := make([]float64, len(rs))
	for i, r := range rs {
		xs[i] = f(r)
	}
	return middle(xs)
}

// middle returns the median of xs (the mean of the middle two for an even count).
func middle(xs []float64) float64 {
	xs = slices.Clone(xs)
	slices.Sort(xs)
	n := len(xs)
	if n%2 == 1 {
		return xs[n/2]
	}
	return (xs[n/2-1] + xs[n/2]) / 2
}

// onCPU0 returns the command that runs name with args, on CPU 0 when pin.
func onCPU0(ctx context.Context, pin bool, name string, args ...string) *exec.Cmd {
	if pin {
		return exec.CommandContext(ctx, "taskset", append([]string{"-c", "0", name}, args...)...)
	}
	return exec.CommandContext(ctx, name, args...)
}

// start starts cmd with its output going to logPath: nobody reads it
// during the run, but it is there to show what went wrong.
func start(cmd *exec.Cmd, logPath string) error {
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return err
	}
	return nil
}

// stop ends a process start started.
func stop(cmd *exec.Cmd) {
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	if f, ok := cmd.Stdout.(*os.File); ok {
		f.Close()
	}
}

// freePort returns a loopback port nobody listens on right now.
func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port, nil
}

// waitReady waits until url answers 200.
func waitReady(ctx context.Context, url string) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s did not answer 200 within 30 s", url)
}

// login goes through the authorization code flow as a browser would, from
// startURL (which redirects to the provider) back to the URL starting with
// callback, and returns the cookie jar and the value of the cookie named
// tokenCookie ("" when not asked for).
func login(startURL, callback, tokenCookie string) (*cookiejar.Jar, string, error) {
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Get(startURL)
	if err != nil {
		return nil, "", err
	}
	resp.Body.Close()
	authorize, err := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusFound || err != nil {
		return nil, "", fmt.Errorf("%s answered %d %q", startURL, resp.StatusCode, resp.Header.Get("Location"))
	}
	// The stand-in's login form posts the authorize parameters back with
	// the credentials and its token.
	form, err := idp.LoginForm(client, authorize.String())
	if err != nil {
		return nil, "", err
	}
	form.Set("loginId", email)
	form.Set("password", password)
	post := *authorize
	post.RawQuery = ""
	resp, err = client.PostForm(post.String(), form)
	if err != nil {
		return nil, "", err
	}
	resp.Body.Close()
	back := resp.Header.Get("Location")
	if !strings.HasPrefix(back, callback) {
		return nil, "", fmt.Errorf("the provider answered the login with %d %q", resp.StatusCode, back)
	}
	resp, err = client.Get(back)
	if err != nil {
		return nil, "", err
	}
	resp.Body.Close()
	u, _ := url.Parse(back)
	cookies := jar.Cookies(u)
	if tokenCookie == "" && len(cookies) > 0 {
		return jar, "", nil
	}
	for _, c := range cookies {
		if c.Name == tokenCookie {
			return jar, c.Value, nil
		}
	}
	return nil, "", fmt.Errorf("no session cookies after the callback (%d)", resp.StatusCode)
}

type result struct {
	rate     float64
	p50, p99 time.Duration
	cpu      time.Duration // the server's CPU time per request, when known
	requests int64         // answered while measured
}

// cpuTime returns the process's user and system CPU time so far, from
// /proc/<pid>/stat (Linux; USER_HZ is 100), or -1 where that cannot be read.
func cpuTime(pid int) time.Duration {
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return -1
	}
	// Fields after the command name, which is in parentheses and may hold spaces.
	i := strings.LastIndexByte(string(raw), ')')
	fields := strings.Fields(string(raw[i+1:]))
	if len(fields) < 13 {
		return -1
	}
	utime, err1 := strconv.ParseInt(fields[11], 10, 64)
	stime, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err1 != nil || err2 != nil {
		return -1
	}
	return time.Duration(utime+stime) * (time.Second / 100)
}

// headers returns the request headers t is loaded with.
func headers(srv *server, t target) map[string]string {
	h := map[string]string{}
	if t.cookies || t.padding {
		u, _ := url.Parse(srv.url + t.path)
		var parts []string
		for _, c := range srv.jar.Cookies(u) {
			parts = append(parts, c.Name+"="+c.Value)
		}
		h["Cookie"] = strings.Join(parts, "; ")
		if t.padding {
			h["Cookie"] = "padding=" + strings.Repeat("p", max(0, len(h["Cookie"])-len("padding=")))
		}
	}
	if t.bearer {
		h["Authorization"] = "Bearer " + srv.auth
	}
	return h
}

// checker returns a function that sends t's request once on client and
// checks the answer, reading its body into buf.
func checker(ctx context.Context, client *http.Client, srv *server, t target) func(buf []byte) error {
	hdr := headers(srv, t)
	return func(buf []byte) error {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.url+t.path, nil)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		n, _ := io.ReadFull(bufio.NewReader(resp.Body), buf)
		_, _ = io.Copy(io.Discard, resp.Body)
		if resp.StatusCode != t.want || !strings.Contains(string(buf[:n]), t.contains) {
			return fmt.Errorf("answered %d, want %d with %q", resp.StatusCode, t.want, t.contains)
		}
		return nil
	}
}

// loadWrk loads t with wrk (one thread, conns connections) for warmup, then
// for d. wrk checks only the status class (a redirect to the login page
// would pass), so one answer is checked as load checks every one, before
// and after.
func loadWrk(ctx context.Context, wrk string, srv *server, t target, conns int, warmup, d time.Duration) (result, error) {
	client := &http.Client{Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	check := checker(ctx, client, srv, t)
	buf := make([]byte, 64<<10)
	if err := check(buf); err != nil {
		return result{}, err
	}
	args := []string{"-t1", "-c" + strconv.Itoa(conns), "--latency"}
	for k, v := range headers(srv, t) {
		args = append(args, "-H", k+": "+v)
	}
	seconds := func(d time.Duration) string { return strconv.Itoa(max(1, int(d.Round(time.Second).Seconds()))) + "s" }
	if warmup > 0 {
		if out, err := exec.CommandContext(ctx, wrk, append(args, "-d"+seconds(warmup), srv.url+t.path)...).CombinedOutput(); err != nil {
			return result{}, fmt.Errorf("wrk: %v: %s", err, out)
		}
	}
	before := cpuTime(srv.cmd.Process.Pid)
	out, err := exec.CommandContext(ctx, wrk, append(args, "-d"+seconds(d), srv.url+t.path)...).CombinedOutput()
	after := cpuTime(srv.cmd.Process.Pid)
	if err != nil {
		return result{}, fmt.Errorf("wrk: %v: %s", err, out)
	}
	r, err := parseWrk(string(out))
	if err != nil {
		return result{}, err
	}
	if err := check(buf); err != nil {
		return result{}, fmt.Errorf("after the run: %w", err)
	}
	r.cpu = -1
	if before >= 0 && after >= 0 && r.requests > 0 {
		r.cpu = (after - before) / time.Duration(r.requests)
	}
	return r, nil
}

// parseWrk reads the figures of a wrk --latency report, and fails when any
// answer was not 2xx or 3xx, or any socket error occurred.
func parseWrk(out string) (result, error) {
	r := result{}
	for line := range strings.SplitSeq(out, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) == 2 && f[0] == "Requests/sec:":
			r.rate, _ = strconv.ParseFloat(f[1], 64)
		case len(f) == 2 && (f[0] == "50%" || f[0] == "99%"):
			d, err := time.ParseDuration(f[1]) // wrk writes us, which Go reads too
			if err != nil {
				return result{}, fmt.Errorf("wrk: latency %q: %w", f[1], err)
			}
			if f[0] == "50%" {
				r.p50 = d
			} else {
				r.p99 = d
			}
		case len(f) >= 4 && f[1] == "requests" && f[2] == "in":
			r.requests, _ = strconv.ParseInt(f[0], 10, 64)
		case strings.HasPrefix(strings.TrimSpace(line), "Non-2xx or 3xx responses:"),
			strings.HasPrefix(strings.TrimSpace(line), "Socket errors:"):
			return result{}, fmt.Errorf("wrk: %s", strings.TrimSpace(line))
		}
	}
	if r.rate == 0 || r.requests == 0 || r.p50 == 0 {
		return result{}, fmt.Errorf("wrk: no figures in its report:\n%s", out)
	}
	return r, nil
}

// load sends requests for t on conns keep-alive connections, each as soon
// as the last one's answer is read, for warmup and then for d, and checks
// every answer.
func load(ctx context.Context, srv *server, t target, conns int, warmup, d time.Duration) (result, error) {
	transport := &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns, DisableCompression: true}
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	one := checker(ctx, client, srv, t)
	appPID := srv.cmd.Process.Pid

	var (
		mu        sync.Mutex
		latencies []time.Duration
		firstErr  error
		wg        sync.WaitGroup
	)
	start := time.Now()
	measureFrom := start.Add(warmup)
	end := measureFrom.Add(d)
	cpu := make(chan time.Duration, 1)
	go func() {
		time.Sleep(time.Until(measureFrom))
		before := cpuTime(appPID)
		time.Sleep(time.Until(end))
		after := cpuTime(appPID)
		if before < 0 || after < 0 {
			after, before = -1, 0
		}
		cpu <- after - before
	}()
	for range conns {
		wg.Go(func() {
			buf := make([]byte, 64<<10)
			var mine []time.Duration
			for {
				t0 := time.Now()
				// Each connection measures one request at least: on a
				// machine so loaded that a request outlasts a short run,
				// the run still ends with a figure (a poor one) rather
				// than none.
				if !t0.Before(end) && len(mine) > 0 {
					break
				}
				if err := one(buf); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					return
				}
				if t0.After(measureFrom) {
					mine = append(mine, time.Since(t0))
				}
			}
			mu.Lock()
			latencies = append(latencies, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	if firstErr != nil {
		return result{}, firstErr
	}
	if len(latencies) == 0 {
		return result{}, errors.New("no request completed")
	}
	slices.Sort(latencies)
	at := func(q float64) time.Duration { return latencies[min(len(latencies)-1, int(q*float64(len(latencies))))] }
	r := result{rate: float64(len(latencies)) / d.Seconds(), p50: at(0.50), p99: at(0.99), cpu: -1, requests: int64(len(latencies))}
	if used := <-cpu; used >= 0 {
		r.cpu = used / time.Duration(len(latencies))
	}
	return r, nil
}

// cpuModel reads the CPU's name from /proc/cpuinfo, where there is one.
func cpuModel() string {
	raw, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "CPU model unknown"
	}
	for line := range strings.SplitSeq(string(raw), "\n") {
		if name, value, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(name) == "model name" {
			return strings.TrimSpace(value)
		}
	}
	return "CPU model unknown"
}

// scrapedRequests scrapes url and returns how many answers to route the
// app's request histogram counted: proof that the metrics were on.
func scrapedRequests(ctx context.Context, url, route string) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var total int64
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "changebank_http_request_duration_seconds_count{") && strings.Contains(line, `route="`+route+`"`) {
			n, err := strconv.ParseInt(line[strings.LastIndexByte(line, ' ')+1:], 10, 64)
			if err == nil {
				total += n
			}
		}
	}
	if total == 0 {
		return 0, fmt.Errorf("%s counted no answer to %s", url, route)
	}
	return total, sc.Err()
}

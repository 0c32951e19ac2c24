// Command load measures ChangeBank's hot path over HTTP, as the README's
// Performance section quotes it. It builds the app, starts it with the
// embedded FusionAuth stand-in on free loopback ports (access tokens living
// an hour, so nothing refreshes during the run), logs in as
// richard@example.com, then loads each route in turn and prints requests per
// second, p50 and p99 latency, the app's CPU time per request (from
// /proc, on Linux), and each route's throughput and CPU cost as a fraction
// of the public page's, all from one run. Where the generator, not the app,
// is the bottleneck, req/s ratios flatter the slow routes; the CPU ratio
// does not.
//
// Run it from the repository root:
//
//	go run ./cmd/load
//
// With -pin (the default where taskset exists) the app runs on CPU 0 and
// the load generator on the others, so that they do not share a core.
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

// The demo application and user of the project's kickstart.
const (
	clientID     = "e9fdb985-9173-4e01-9d73-ac2d60d1dc8e"
	clientSecret = "changebank-demo-client-secret-not-for-production"
	kickstart    = "testdata/kickstart-hour-tokens.json"
	email        = "richard@example.com"
	password     = "password"
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
	cookies    bool   // send the session cookies
	bearer     bool   // send the access token as a Bearer token
	want       int    // the status every answer must have
	contains   string // and a piece of its body, to be sure it is the right page
}

var targets = []target{
	{name: "GET / (public page)", path: "/", want: http.StatusOK, contains: "Dollars in, coins out"},
	{name: "GET /healthz", path: "/healthz", want: http.StatusOK, contains: "ok"},
	{name: "GET /account (cookies)", path: "/account", cookies: true, want: http.StatusOK, contains: `id="name"`},
	{name: "GET /api/me (cookies)", path: "/api/me", cookies: true, want: http.StatusOK, contains: `"authenticated_by":"cookie"`},
	{name: "GET /api/me (Bearer)", path: "/api/me", bearer: true, want: http.StatusOK, contains: `"authenticated_by":"bearer"`},
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	duration := fs.Duration("d", 5*time.Second, "how long to load each route")
	conns := fs.Int("c", 32, "concurrent connections")
	warmup := fs.Duration("warmup", time.Second, "load before measuring each route")
	_, tasksetErr := exec.LookPath("taskset")
	pin := fs.Bool("pin", tasksetErr == nil && runtime.NumCPU() > 1, "run the app on CPU 0 and the load generator on the others (needs taskset)")
	if err := fs.Parse(args); err != nil {
		return err
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

	appPort, err := freePort()
	if err != nil {
		return err
	}
	idpPort, err := freePort()
	if err != nil {
		return err
	}
	appURL := "http://127.0.0.1:" + appPort
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var cmd *exec.Cmd
	if *pin {
		cmd = exec.CommandContext(ctx, "taskset", "-c", "0", bin, "-embedded-idp")
	} else {
		cmd = exec.CommandContext(ctx, bin, "-embedded-idp")
	}
	cmd.Dir = "."
	cmd.Env = append(os.Environ(),
		"APP_URL="+appURL, "LISTEN_ADDR=127.0.0.1:"+appPort,
		"ISSUER=http://127.0.0.1:"+idpPort,
		"CLIENT_ID="+clientID, "CLIENT_SECRET="+clientSecret,
		"APP_SECRET_KEY="+base64.RawURLEncoding.EncodeToString(secret),
		"KICKSTART_FILE="+kickstart, "LOG_LEVEL=info",
		"ATTACKER_ADDR=") // .env's attacker page would share the app's 127.0.0.1 host, which the app refuses; set, so .env does not apply
	logFile, err := os.Create(filepath.Join(dir, "app.log"))
	if err != nil {
		return err
	}
	defer logFile.Close()
	cmd.Stdout, cmd.Stderr = logFile, logFile // the app logs at info, as deployed; nobody reads it here
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting the app: %w", err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	if *pin {
		// The generator keeps off the app's core.
		cpus := "1-" + strconv.Itoa(runtime.NumCPU()-1)
		if out, err := exec.Command("taskset", "-a", "-p", "-c", cpus, strconv.Itoa(os.Getpid())).CombinedOutput(); err != nil {
			return fmt.Errorf("pinning the load generator: %v: %s", err, out)
		}
	}
	if err := waitReady(ctx, appURL); err != nil {
		return err
	}
	jar, access, err := login(appURL)
	if err != nil {
		return fmt.Errorf("logging in: %w", err)
	}

	fmt.Fprintf(stdout, "ChangeBank load: %d connections, %s per route after %s warm-up, app pinned to CPU 0: %v\n",
		*conns, *duration, *warmup, *pin)
	fmt.Fprintf(stdout, "machine: %d CPUs, %s, %s\n\n", runtime.NumCPU(), cpuModel(), runtime.Version())
	fmt.Fprintf(stdout, "%-24s %9s %9s %9s %9s %11s %11s\n", "route", "req/s", "p50", "p99", "x public", "app CPU/req", "x public")
	var public float64
	var publicCPU time.Duration
	for _, t := range targets {
		r, err := load(ctx, appURL, t, jar, access, *conns, cmd.Process.Pid, *warmup, *duration)
		if err != nil {
			return fmt.Errorf("%s: %w", t.name, err)
		}
		if t.path == "/" {
			public, publicCPU = r.rate, r.cpu
		}
		ratio, cpuRatio, cpu := "-", "-", "-"
		if t.path != "/" {
			ratio = fmt.Sprintf("%.2f", r.rate/public)
			if r.cpu > 0 && publicCPU > 0 {
				cpuRatio = fmt.Sprintf("%.2f", float64(publicCPU)/float64(r.cpu))
			}
		}
		if r.cpu > 0 {
			cpu = fmt.Sprintf("%.1fµs", float64(r.cpu)/float64(time.Microsecond))
		}
		fmt.Fprintf(stdout, "%-24s %9.0f %9s %9s %9s %11s %11s\n", t.name, r.rate, r.p50.Round(time.Microsecond), r.p99.Round(time.Microsecond), ratio, cpu, cpuRatio)
	}
	return nil
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

func waitReady(ctx context.Context, appURL string) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(appURL + "/readyz"); err == nil {
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
	return errors.New("the app was not ready within 30 s")
}

// login goes through the authorization code flow as a browser would and
// returns the session's cookie jar and its access token.
func login(appURL string) (*cookiejar.Jar, string, error) {
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Get(appURL + "/login")
	if err != nil {
		return nil, "", err
	}
	resp.Body.Close()
	authorize, err := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusFound || err != nil {
		return nil, "", fmt.Errorf("/login answered %d %q", resp.StatusCode, resp.Header.Get("Location"))
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
	callback := resp.Header.Get("Location")
	if !strings.HasPrefix(callback, appURL+"/callback?") {
		return nil, "", fmt.Errorf("the provider answered the login with %d %q", resp.StatusCode, callback)
	}
	resp, err = client.Get(callback)
	if err != nil {
		return nil, "", err
	}
	resp.Body.Close()
	u, _ := url.Parse(appURL)
	for _, c := range jar.Cookies(u) {
		if c.Name == "cb_access_token" {
			return jar, c.Value, nil
		}
	}
	return nil, "", fmt.Errorf("no session cookies after the callback (%d)", resp.StatusCode)
}

type result struct {
	rate     float64
	p50, p99 time.Duration
	cpu      time.Duration // the app's CPU time per request, when known
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

// load sends requests for t on conns keep-alive connections, each as soon
// as the last one's answer is read, for warmup and then for d, and checks
// every answer.
func load(ctx context.Context, appURL string, t target, jar http.CookieJar, access string, conns, appPID int, warmup, d time.Duration) (result, error) {
	transport := &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns, DisableCompression: true}
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	u, _ := url.Parse(appURL + t.path)
	var cookieHeader string
	if t.cookies {
		var parts []string
		for _, c := range jar.Cookies(u) {
			parts = append(parts, c.Name+"="+c.Value)
		}
		cookieHeader = strings.Join(parts, "; ")
	}
	one := func(buf []byte) error {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
		if cookieHeader != "" {
			req.Header.Set("Cookie", cookieHeader)
		}
		if t.bearer {
			req.Header.Set("Authorization", "Bearer "+access)
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
				if !t0.Before(end) {
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
	r := result{rate: float64(len(latencies)) / d.Seconds(), p50: at(0.50), p99: at(0.99), cpu: -1}
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

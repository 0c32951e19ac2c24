package e2e

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/changebank/changebank/internal/app"
	"github.com/changebank/changebank/internal/apptest"
)

// A rolling deploy as Kubernetes runs one: a balancer that learns which
// instances are ready only by polling their /readyz, instances replaced one
// after another (the new one ready before the old one gets SIGTERM), and
// logged-in people loading pages and refreshing throughout.

// pollEvery is how often the balancer asks each instance's /readyz. The
// drain period must outlast it with room, as in a cluster it must outlast
// the removal of the pod's endpoint.
const pollEvery = 250 * time.Millisecond

// readinessBalancer sends each request, round-robin, to one of the
// instances its last poll found ready, as a Kubernetes Service does.
type readinessBalancer struct {
	url       string
	transport http.RoundTripper

	mu       sync.Mutex
	backends []*backend
	next     atomic.Uint64
	polling  sync.Mutex // held by each round of polls

	undelivered atomic.Int64 // requests no instance answered: none ready, or its connection failed
}

// backend is one instance as the balancer knows it.
type backend struct {
	u        *url.URL
	ready    atomic.Bool
	wasReady atomic.Bool
	sawDrain atomic.Bool  // a poll found it answering 503 after it had been ready
	routed   atomic.Int64 // requests sent to it
	served   atomic.Int64 // requests it answered
}

func newReadinessBalancer(t *testing.T) *readinessBalancer {
	t.Helper()
	b := &readinessBalancer{transport: http.DefaultTransport.(*http.Transport).Clone()}
	srv := httptest.NewServer(b)
	t.Cleanup(srv.Close)
	b.url = srv.URL
	stop := make(chan struct{})
	polled := make(chan struct{})
	go func() {
		defer close(polled)
		poller := &http.Client{Timeout: time.Second}
		for {
			select {
			case <-stop:
				return
			case <-time.After(pollEvery):
			}
			b.polling.Lock()
			b.mu.Lock()
			backends := slices.Clone(b.backends)
			b.mu.Unlock()
			for _, be := range backends {
				ready := false
				if resp, err := poller.Get(be.u.String() + "/readyz"); err == nil {
					resp.Body.Close()
					ready = resp.StatusCode == http.StatusOK
					if resp.StatusCode == http.StatusServiceUnavailable && be.wasReady.Load() {
						be.sawDrain.Store(true)
					}
				}
				be.ready.Store(ready)
				if ready {
					be.wasReady.Store(true)
				}
			}
			b.polling.Unlock()
		}
	}()
	t.Cleanup(func() { close(stop); <-polled })
	return b
}

func (b *readinessBalancer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b.mu.Lock()
	var ready []*backend
	for _, be := range b.backends {
		if be.ready.Load() {
			ready = append(ready, be)
		}
	}
	b.mu.Unlock()
	if len(ready) == 0 {
		b.undelivered.Add(1)
		http.Error(w, "no instance ready", http.StatusServiceUnavailable)
		return
	}
	be := ready[b.next.Add(1)%uint64(len(ready))]
	be.routed.Add(1)
	proxy := &httputil.ReverseProxy{
		Transport: b.transport,
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(be.u)
			r.Out.Host = r.In.Host // the apps see the address the browser used
		},
		ModifyResponse: func(*http.Response) error { be.served.Add(1); return nil },
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
			b.undelivered.Add(1)
			http.Error(w, "instance unreachable", http.StatusBadGateway)
		},
	}
	proxy.ServeHTTP(w, r)
}

// instance is one app.Run behind the balancer.
type instance struct {
	be        *backend
	terminate context.CancelCauseFunc
	done      chan error
	logs      *apptest.Logs
}

// start runs an instance on a fresh port and adds it to the balancer, not
// ready until a poll finds it so (a new pod's endpoint).
func (b *readinessBalancer) start(t *testing.T, c *cluster, drain time.Duration) *instance {
	t.Helper()
	addr := apptest.FreePort(t)
	env := map[string]string{"APP_URL": b.url, "LISTEN_ADDR": addr, "ISSUER": c.idpURL, "DRAIN_PERIOD": drain.String()}
	for k, v := range apptest.DemoEnv {
		if _, set := env[k]; !set {
			env[k] = v
		}
	}
	ctx, terminate := context.WithCancelCause(context.Background())
	in := &instance{be: &backend{u: &url.URL{Scheme: "http", Host: addr}}, terminate: terminate, done: make(chan error, 1), logs: &apptest.Logs{}}
	go func() { in.done <- app.Run(ctx, nil, apptest.Getenv(env), io.Discard, in.logs) }()
	b.mu.Lock()
	b.backends = append(b.backends, in.be)
	b.mu.Unlock()
	t.Cleanup(func() {
		terminate(app.ErrInterrupted)
		<-in.done
		in.done <- nil
	})
	return in
}

// awaitReady waits until the balancer sends requests to in.
func (b *readinessBalancer) awaitReady(t *testing.T, in *instance) {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); !in.be.ready.Load(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the balancer never found %s ready\n%s", in.be.u, in.logs)
		}
	}
}

// stop sends in SIGTERM (its context ends with no Ctrl-C cause) and waits
// until it has shut down. The balancer is not told: like a Service whose
// endpoints are updated asynchronously, it learns only from its polls, and
// its next poll comes only after in has reacted to the signal and prober
// has sent it a request through the balancer: the moment a Service's
// endpoint lags behind its pod. It returns that request's outcome.
func (b *readinessBalancer) stop(t *testing.T, in *instance, prober *visitor) (probe rollingCounts) {
	b.polling.Lock()
	in.terminate(context.Canceled)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		resp, err := http.Get(in.be.u.String() + "/readyz")
		if err != nil {
			break // stopped listening
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			break // draining
		}
		if time.Now().After(deadline) {
			t.Errorf("%s still ready 30 s after SIGTERM", in.be.u)
			break
		}
	}
	// Round-robin over the instances the balancer last found ready: a
	// few requests reach this one (the people's requests count too).
	for sent := in.be.routed.Load(); in.be.routed.Load() == sent; {
		probe = probe.add(prober.round(t, 0, 0))
	}
	b.polling.Unlock()

	if err := <-in.done; err != nil {
		t.Errorf("an instance stopped with %v", err)
	}
	in.done <- nil
	if strings.Contains(in.logs.String(), "eyJ") {
		t.Errorf("a token or cookie value was logged:\n%s", in.logs)
	}
	return probe
}

// rollingCounts is what the people saw during the deploy.
type rollingCounts struct {
	requests, failed, lost int
}

func (n rollingCounts) add(m rollingCounts) rollingCounts {
	return rollingCounts{n.requests + m.requests, n.failed + m.failed, n.lost + m.lost}
}

// browse keeps v loading pages until stop closes, dropping its access
// cookie every refreshEvery rounds (0: never) so that its next request
// refreshes.
func browse(t *testing.T, v *visitor, refreshEvery int, stop <-chan struct{}) rollingCounts {
	var n rollingCounts
	for round := 1; ; round++ {
		select {
		case <-stop:
			return n
		case <-time.After(10 * time.Millisecond): // a person, not a load test
		}
		n = n.add(v.round(t, round, refreshEvery))
	}
}

// round loads the account page and the API once, the access cookie
// dropped first when refreshEvery divides round. A failed request is one no
// instance answered or answered with a server error; a lost session is a
// request sent to the login page or refused as logged out, after which v
// logs in again.
func (v *visitor) round(t *testing.T, round, refreshEvery int) rollingCounts {
	noFollow := &http.Client{Jar: v.jar, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	if refreshEvery > 0 && round%refreshEvery == 0 {
		v.expireAccess()
	}
	var n rollingCounts
	lost := false
	for _, path := range []string{"/account", "/api/me"} {
		n.requests++
		resp, err := noFollow.Get(v.c.proxyURL + path)
		if err != nil {
			n.failed++
			t.Logf("GET %s: %v", path, err)
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		switch {
		case resp.StatusCode == http.StatusOK && (path != "/account" || strings.Contains(string(body), "Richard Hendricks")):
		case resp.StatusCode == http.StatusUnauthorized, strings.Contains(resp.Header.Get("Location"), "/login"):
			lost = true
		default:
			n.failed++
		}
	}
	if lost {
		n.lost++
		v.login(t)
	}
	return n
}

// rollingDeploy replaces each of three instances (DRAIN_PERIOD drain) in
// turn while six logged-in people browse, half of them refreshing far more
// often than their 8-second tokens need, and returns what they saw.
func rollingDeploy(t *testing.T, drain time.Duration) rollingCounts {
	const instances, people = 3, 6
	b := newReadinessBalancer(t)
	c := &cluster{proxyURL: b.url}
	c.startStandIn(t, "testdata/kickstart-short-tokens.json", 0)

	var old []*instance
	for range instances {
		old = append(old, b.start(t, c, drain))
	}
	for _, in := range old {
		b.awaitReady(t, in)
	}
	visitors := make([]*visitor, people+1)
	for i := range visitors {
		visitors[i] = c.visitor()
		visitors[i].login(t)
	}
	prober, visitors := visitors[people], visitors[:people]
	refreshesBefore := c.idp.TokenCalls("refresh_token")

	stop := make(chan struct{})
	counts := make([]rollingCounts, people)
	var browsing sync.WaitGroup
	for i, v := range visitors {
		refreshEvery := 0 // these refresh when their tokens come due
		if i%2 == 1 {
			refreshEvery = 5 // a refresh in flight at almost every moment
		}
		browsing.Go(func() { counts[i] = browse(t, v, refreshEvery, stop) })
	}

	// The rollout: maxSurge 1, maxUnavailable 0. Each old instance gets
	// SIGTERM once its replacement is ready, and drains while the next
	// replacement starts.
	time.Sleep(time.Second)
	var replacements []*instance
	var stopping sync.WaitGroup
	probes := make([]rollingCounts, instances)
	for i, in := range old {
		next := b.start(t, c, drain)
		b.awaitReady(t, next)
		replacements = append(replacements, next)
		stopping.Go(func() { probes[i] = b.stop(t, in, prober) })
		time.Sleep(time.Second)
	}
	stopping.Wait()
	time.Sleep(2 * time.Second) // the new fleet alone
	close(stop)
	browsing.Wait()

	var total rollingCounts
	for _, n := range append(counts, probes...) {
		total = total.add(n)
	}
	refreshes := c.idp.TokenCalls("refresh_token") - refreshesBefore
	drained := 0
	for _, in := range old {
		if in.be.sawDrain.Load() {
			drained++
		}
	}
	t.Logf("DRAIN_PERIOD %s: %d requests by %d people, %d refreshes, %d failed requests (%d undelivered by the balancer), %d sessions lost; the balancer saw %d of %d old instances drain",
		drain, total.requests, people+1, refreshes, total.failed, b.undelivered.Load(), total.lost, drained, instances)

	// The deploy really happened under load: people refreshed, and the
	// new instances served them.
	if refreshes < people {
		t.Errorf("only %d refreshes during the deploy, want at least one per person (%d)", refreshes, people)
	}
	for i, in := range replacements {
		if in.be.served.Load() == 0 {
			t.Errorf("replacement %d served no request", i+1)
		}
	}
	return total
}

// TestRollingDeployLosesNothing: with a drain period longer than the
// balancer takes to see /readyz fail, nobody sees a failed request or
// loses the session while every instance is replaced.
func TestRollingDeployLosesNothing(t *testing.T) {
	// 3 s: twelve of the balancer's polls. In a cluster the default 15 s
	// must outlast the endpoint's removal in the same way.
	n := rollingDeploy(t, 3*time.Second)
	if n.failed != 0 || n.lost != 0 {
		t.Errorf("a rolling deploy cost %d failed requests and %d lost sessions, want 0 and 0", n.failed, n.lost)
	}
}

// TestRollingDeployWithoutDrainFailsRequests: the same deploy with an
// immediate shutdown (DRAIN_PERIOD=0s) fails the requests the balancer
// sends before it notices: at least the one sent to each stopped instance
// before the next poll.
func TestRollingDeployWithoutDrainFailsRequests(t *testing.T) {
	n := rollingDeploy(t, 0)
	if n.failed < 3 {
		t.Errorf("an immediate shutdown cost %d failed requests, want at least one per replaced instance", n.failed)
	}
}

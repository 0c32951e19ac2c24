// Package metrics keeps ChangeBank's Prometheus metrics and serves them for
// scraping, on a listener of their own (METRICS_ADDR), never on the public
// port. Every label takes values from a short list the app itself fixes
// (its routes, HTTP methods and status codes, the outcomes the session
// library names): nothing a client sends becomes a label value, so no
// request can grow the number of series.
package metrics

import (
	"net/http"
	"runtime/debug"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/changebank/changebank/tokens"
)

// Metrics holds the app's collectors in a registry of its own, so that
// two instances in one process (the tests run several) never share one.
type Metrics struct {
	reg       *prometheus.Registry
	requests  *prometheus.HistogramVec
	loads     *prometheus.CounterVec
	refreshes *prometheus.CounterVec
	refusals  *prometheus.CounterVec
	provider  *prometheus.HistogramVec

	// Each request's series, found once by its labels and kept: the
	// label values are a short fixed list, so this stays small, and a
	// request then pays a map lookup, not the vector's hashing.
	seen    sync.Map                      // requestKey: prometheus.Observer
	loadsOf map[string]prometheus.Counter // by outcome, for loads with no reason; read only after New
}

type requestKey struct {
	route, method string
	code          int
}

// latencyBuckets span what the app's answers take: a page from a cached
// session in well under a millisecond, a refresh that waits for the
// provider up to its 5-second bound.
var latencyBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// New makes the app's metrics: its requests, its build, and the Go
// runtime's and the process's own.
func New() *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		reg: reg,
		requests: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "changebank",
			Subsystem: "http",
			Name:      "request_duration_seconds",
			Help:      "Requests the app answered, by route (as the app lists it), method and status code, and how long each answer took.",
			Buckets:   latencyBuckets,
		}, []string{"route", "method", "code"}),
	}
	m.loads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "changebank", Subsystem: "session", Name: "loads_total",
		Help: "Session loads by outcome (cached, verified, refreshed, none, ended, unavailable) and, for ended ones, the reason.",
	}, []string{"outcome", "reason"})
	m.refreshes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "changebank", Subsystem: "session", Name: "refreshes_total",
		Help: "Refreshes requests asked for, by result (redeemed, shared, grace, refused, dead, unavailable).",
	}, []string{"result"})
	m.refusals = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "changebank", Subsystem: "shield", Name: "refusals_total",
		Help: "Attacker input refused without a call to the provider, by kind.",
	}, []string{"kind"})
	m.provider = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "changebank", Subsystem: "provider", Name: "request_duration_seconds",
		Help:    "Calls to the identity provider by endpoint (discovery, jwks, token, userinfo, revocation, other) and result (ok, refused, error, unreachable), and how long each took to answer.",
		Buckets: latencyBuckets,
	}, []string{"endpoint", "result"})
	m.loadsOf = map[string]prometheus.Counter{}
	for _, outcome := range tokens.LoadOutcomes {
		if outcome != "ended" {
			m.loadsOf[outcome] = m.loads.WithLabelValues(outcome, "")
		}
	}
	version, revision := build()
	buildInfo := prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace:   "changebank",
		Name:        "build_info",
		Help:        "Always 1: the labels say which build of the app runs.",
		ConstLabels: prometheus.Labels{"version": version, "revision": revision, "goversion": goVersion()},
	})
	buildInfo.Set(1)
	reg.MustRegister(m.requests, m.loads, m.refreshes, m.refusals, m.provider, buildInfo,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the metrics in Prometheus' text format (or OpenMetrics,
// when the scraper asks for it).
func (m *Metrics) Handler() http.Handler {
	return promhttp.InstrumentMetricHandler(m.reg, promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		Registry:          m.reg,
		EnableOpenMetrics: true,
	}))
}

// ObserveRequest counts one answered request. route is the route as the
// router lists it ("" for a path no route serves); method and code are
// folded into short fixed lists.
func (m *Metrics) ObserveRequest(method, route string, code int, elapsed time.Duration) {
	if route == "" {
		route = "unmatched"
	}
	key := requestKey{route, methodLabel(method), code}
	o, ok := m.seen.Load(key)
	if !ok {
		o, _ = m.seen.LoadOrStore(key, m.requests.WithLabelValues(route, key.method, codeLabel(code)))
	}
	o.(prometheus.Observer).Observe(elapsed.Seconds())
}

// methodLabel keeps the methods HTTP defines and folds the rest, which a
// client may invent by the million, into "other".
func methodLabel(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return method
	}
	return "other"
}

// codes are the status codes' labels, made once: the label of every
// request is then a lookup, not an allocation.
var codes = func() [600]string {
	var c [600]string
	for i := 100; i < len(c); i++ {
		c[i] = strconv.Itoa(i)
	}
	return c
}()

func codeLabel(code int) string {
	if code >= 100 && code < len(codes) {
		return codes[code]
	}
	return "other"
}

// build returns the module version and VCS revision the Go toolchain
// stamped into the binary; "unknown" where it stamped none (a build from a
// tree without .git, as in the Docker image).
func build() (version, revision string) {
	version, revision = "unknown", "unknown"
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return
	}
	if v := info.Main.Version; v != "" && v != "(devel)" {
		version = v
	}
	for _, s := range info.Settings {
		if s.Key == "vcs.revision" && s.Value != "" {
			revision = s.Value
		}
	}
	return
}

func goVersion() string {
	if info, ok := debug.ReadBuildInfo(); ok {
		return info.GoVersion
	}
	return "unknown"
}

package metrics

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/changebank/changebank/tokens"
)

// SessionLoaded counts a session load (tokens.Observer).
func (m *Metrics) SessionLoaded(outcome string, reason tokens.NoticeCode) {
	if c, ok := m.loadsOf[outcome]; ok && reason == "" {
		c.Inc()
		return
	}
	m.loads.WithLabelValues(outcome, string(reason)).Inc()
}

// Refreshed counts a refresh (tokens.Observer).
func (m *Metrics) Refreshed(result string) { m.refreshes.WithLabelValues(result).Inc() }

// Refused counts a refusal of the provider shield (tokens.Observer).
func (m *Metrics) Refused(kind string) { m.refusals.WithLabelValues(kind).Inc() }

// Watch exports the sizes of the caches and memories s keeps, read at each
// scrape (so a request pays nothing for them), and starts every refresh
// result's and refusal's counter at zero, as New does the load outcomes',
// so that rates exist before the first of each.
func (m *Metrics) Watch(s *tokens.Sessions) {
	for _, result := range tokens.RefreshResults {
		m.refreshes.WithLabelValues(result)
	}
	for _, kind := range tokens.ShieldRefusals {
		m.refusals.WithLabelValues(kind)
	}
	m.reg.MustRegister(memoryCollector{s})
}

var (
	memoryEntries = prometheus.NewDesc("changebank_memory_entries", "Entries in each bounded cache and memory of the sessions.", []string{"memory"}, nil)
	memoryBound   = prometheus.NewDesc("changebank_memory_max_entries", "The most entries each bounded cache and memory holds.", []string{"memory"}, nil)
)

// memoryCollector reads the sessions' memory sizes at scrape time.
type memoryCollector struct{ s *tokens.Sessions }

func (c memoryCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- memoryEntries
	ch <- memoryBound
}

func (c memoryCollector) Collect(ch chan<- prometheus.Metric) {
	for _, mem := range c.s.Memories() {
		ch <- prometheus.MustNewConstMetric(memoryEntries, prometheus.GaugeValue, float64(mem.Entries), mem.Name)
		ch <- prometheus.MustNewConstMetric(memoryBound, prometheus.GaugeValue, float64(mem.Bound), mem.Name)
	}
}

// ProviderTransport times and counts every call to the identity provider
// made through base (nil: http.DefaultTransport), the transport of the
// HTTP client given to tokens.New, by endpoint and result. It learns the
// endpoints' paths from the discovery document each discovery brings back,
// so it needs nothing from the sessions it serves: discovery and the key
// set's first fetch come before tokens.New returns.
func (m *Metrics) ProviderTransport(base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	var paths atomic.Pointer[map[string]string] // an endpoint's path: its name
	return roundTripper(func(r *http.Request) (*http.Response, error) {
		endpoint := "other"
		switch {
		case strings.HasSuffix(r.URL.Path, "/.well-known/openid-configuration"):
			endpoint = "discovery"
		case r.URL.Path == "/api/jwt/refresh":
			endpoint = "revocation" // FusionAuth's own API, used where it has no RFC 7009 endpoint
		default:
			if known := paths.Load(); known != nil && (*known)[r.URL.Path] != "" {
				endpoint = (*known)[r.URL.Path]
			}
		}
		start := time.Now()
		resp, err := base.RoundTrip(r)
		m.provider.WithLabelValues(endpoint, callResult(resp, err)).Observe(time.Since(start).Seconds())
		if endpoint == "discovery" && err == nil && resp.StatusCode == http.StatusOK {
			resp.Body = learnEndpoints(resp.Body, &paths)
		}
		return resp, err
	})
}

// maxDiscoveryBytes bounds the discovery document read here, as tokens bounds its own read.
const maxDiscoveryBytes = 1 << 20

// learnEndpoints reads a discovery document from body, files its
// endpoints' paths in paths, and returns the same bytes for the caller.
func learnEndpoints(body io.ReadCloser, paths *atomic.Pointer[map[string]string]) io.ReadCloser {
	raw, err := io.ReadAll(io.LimitReader(body, maxDiscoveryBytes))
	body.Close()
	var doc struct {
		Token      string `json:"token_endpoint"`
		JWKS       string `json:"jwks_uri"`
		Userinfo   string `json:"userinfo_endpoint"`
		Revocation string `json:"revocation_endpoint"`
	}
	if json.Unmarshal(raw, &doc) == nil {
		known := map[string]string{}
		for name, u := range map[string]string{"token": doc.Token, "jwks": doc.JWKS, "userinfo": doc.Userinfo, "revocation": doc.Revocation} {
			if parsed, perr := url.Parse(u); perr == nil && u != "" {
				known[parsed.Path] = name
			}
		}
		paths.Store(&known)
	}
	return readCloser{bytes.NewReader(raw), err}
}

// readCloser gives back what was read, then the read's error, if any.
type readCloser struct {
	r   *bytes.Reader
	err error
}

func (rc readCloser) Read(p []byte) (int, error) {
	n, err := rc.r.Read(p)
	if err == io.EOF && rc.err != nil {
		err = rc.err
	}
	return n, err
}

func (readCloser) Close() error { return nil }

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// callResult sorts an answer: ok (2xx, 3xx), refused (4xx: an OAuth error
// such as invalid_grant), error (5xx), unreachable (no answer: network,
// timeout).
func callResult(resp *http.Response, err error) string {
	switch {
	case err != nil:
		return "unreachable"
	case resp.StatusCode >= 500:
		return "error"
	case resp.StatusCode >= 400:
		return "refused"
	}
	return "ok"
}

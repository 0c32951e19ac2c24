package e2e

import (
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/changebank/changebank/internal/apptest"
	"github.com/changebank/changebank/tokens/cookie"
)

// scrapeMetrics fetches url as Prometheus would and parses the text format.
func scrapeMetrics(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s: %d", url, resp.StatusCode)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("the scrape does not parse: %v", err)
	}
	return families
}

// series sums a family's samples (a counter's value, a histogram's count)
// by the values of the labels named.
func series(f *dto.MetricFamily, names ...string) map[string]float64 {
	out := map[string]float64{}
	for _, m := range f.GetMetric() {
		var key []string
		for _, n := range names {
			for _, l := range m.GetLabel() {
				if l.GetName() == n {
					key = append(key, l.GetValue())
				}
			}
		}
		v := m.GetCounter().GetValue() + m.GetGauge().GetValue() + float64(m.GetHistogram().GetSampleCount())
		out[strings.Join(key, " ")] += v
	}
	return out
}

// TestMetricsAfterALoginAndARefresh runs the app with METRICS_ADDR, logs
// in, loads pages, lets the access token go so that the next page
// refreshes, forges a cookie, asks for a path no route serves, and scrapes: every family
// the docs list is there with the values those requests must have left,
// and no label holds anything a client sent. The Grafana dashboard's
// every query is then held to that scrape.
func TestMetricsAfterALoginAndARefresh(t *testing.T) {
	metricsAddr := apptest.FreePort(t)
	d := startDemo(t, map[string]string{"METRICS_ADDR": metricsAddr})
	jar, _ := cookiejar.New(nil)
	if landed, _ := logInWithJar(t, d, jar); landed != d.appURL+"/account" {
		t.Fatalf("login landed on %s", landed)
	}
	browser := &http.Client{Jar: jar}
	get := func(c *http.Client, path string, want int) {
		t.Helper()
		resp, err := c.Get(d.appURL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("%s: %d, want %d", path, resp.StatusCode, want)
		}
	}
	get(browser, "/account", http.StatusOK)
	get(browser, "/account", http.StatusOK)
	u, _ := url.Parse(d.appURL)
	jar.SetCookies(u, []*http.Cookie{{Name: cookie.Access, Value: "", Path: "/", MaxAge: -1}})
	get(browser, "/account", http.StatusOK) // refreshes
	// A forged userinfo cookie ends the session.
	forged := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	jar.SetCookies(u, []*http.Cookie{{Name: cookie.UserInfo, Value: "forged", Path: "/"}})
	get(forged, "/account", http.StatusSeeOther)
	invented := "/no-such-page-" + rand.Text()
	get(browser, invented, http.StatusNotFound)
	anonymous := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get(anonymous, "/account", http.StatusSeeOther)
	get(anonymous, "/metrics", http.StatusNotFound) // not on the public port

	fams := scrapeMetrics(t, "http://"+metricsAddr+"/metrics")
	family := func(name string) *dto.MetricFamily {
		t.Helper()
		f := fams[name]
		if f == nil {
			t.Fatalf("no %s in the scrape", name)
		}
		return f
	}
	atLeast := func(what string, got map[string]float64, key string, n float64) {
		t.Helper()
		if got[key] < n {
			t.Errorf("%s %q: %v, want at least %v (all: %v)", what, key, got[key], n, got)
		}
	}

	requests := series(family("changebank_http_request_duration_seconds"), "route", "code")
	atLeast("requests", requests, "/account 200", 4) // the login's landing and three loads
	atLeast("requests", requests, "/callback 303", 1)
	atLeast("requests", requests, "unmatched 404", 1)
	atLeast("requests", requests, "/account 303", 1)
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if strings.Contains(l.GetValue(), "no-such-page") {
					t.Errorf("%s has a label holding the path a client sent: %s=%q", f.GetName(), l.GetName(), l.GetValue())
				}
			}
		}
	}

	loads := series(family("changebank_session_loads_total"), "outcome")
	for _, outcome := range []string{"verified", "cached", "refreshed", "none"} {
		atLeast("session loads", loads, outcome, 1)
	}
	atLeast("sessions ended", series(family("changebank_session_loads_total"), "outcome", "reason"), "ended ended-tampered", 1)
	atLeast("refreshes", series(family("changebank_session_refreshes_total"), "result"), "redeemed", 1)
	if n := len(family("changebank_shield_refusals_total").GetMetric()); n != 3 {
		t.Errorf("shield refusals: %d kinds, want 3, each from zero", n)
	}

	provider := series(family("changebank_provider_request_duration_seconds"), "endpoint", "result")
	atLeast("provider calls", provider, "discovery ok", 1)
	atLeast("provider calls", provider, "jwks ok", 1)
	atLeast("provider calls", provider, "token ok", 2) // the code exchange and the refresh
	for _, m := range family("changebank_provider_request_duration_seconds").GetMetric() {
		if h := m.GetHistogram(); h.GetSampleCount() > 0 && h.GetSampleSum() <= 0 {
			t.Errorf("provider calls took no time: %v", m)
		}
	}

	entries, bounds := series(family("changebank_memory_entries"), "memory"), series(family("changebank_memory_max_entries"), "memory")
	if len(entries) < 7 {
		t.Errorf("memories: %v", entries)
	}
	for name, n := range entries {
		if bounds[name] <= 0 || n > bounds[name] {
			t.Errorf("memory %s: %v entries of at most %v", name, n, bounds[name])
		}
	}
	atLeast("memory", entries, "sessions", 1)
	atLeast("memory", entries, "users", 1)

	info := family("changebank_build_info").GetMetric()
	if len(info) != 1 || info[0].GetGauge().GetValue() != 1 {
		t.Errorf("build info: %v", info)
	}
	if g := family("go_goroutines").GetMetric()[0].GetGauge().GetValue(); g <= 0 {
		t.Errorf("go_goroutines %v", g)
	}

	t.Run("the dashboard queries what the app exports", func(t *testing.T) {
		checkDashboard(t, repo("deploy/grafana-dashboard.json"), fams)
	})
}

// promQLMetric finds the metric names in a query: the app's own, the Go
// runtime's and the process's.
var promQLMetric = regexp.MustCompile(`\b(?:changebank|go|process)_[a-z0-9_]+\b`)

// checkDashboard holds every query of the Grafana dashboard at path to a
// scrape: each names at least one metric, every metric it names is in the
// scrape (a histogram's _bucket, _count and _sum included), and every
// label it groups by or matches on is one those metrics have (or one
// Prometheus adds to every target: job, instance).
func checkDashboard(t *testing.T, path string, fams map[string]*dto.MetricFamily) {
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Type    string `json:"type"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Name       string `json:"name"`
				Definition string `json:"definition"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	// Each series name the scrape has, with the labels it carries.
	labels := map[string][]string{}
	for name, f := range fams {
		var names []string
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if !slices.Contains(names, l.GetName()) {
					names = append(names, l.GetName())
				}
			}
		}
		labels[name] = names
		if f.GetType() == dto.MetricType_HISTOGRAM {
			labels[name+"_bucket"] = append(slices.Clone(names), "le")
			labels[name+"_count"], labels[name+"_sum"] = names, names
		}
	}
	var queries []string
	for _, p := range dash.Panels {
		if p.Type != "row" && len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, q := range p.Targets {
			queries = append(queries, q.Expr)
		}
	}
	for _, v := range dash.Templating.List {
		if v.Definition != "" {
			queries = append(queries, v.Definition)
		}
	}
	if len(queries) < 10 {
		t.Fatalf("%d queries in %s", len(queries), path)
	}
	grouped := regexp.MustCompile(`\b(?:by|without)\s*\(([^)]*)\)|\{([^}]*)\}|label_values\([^,]+,\s*([a-z_]+)\)`)
	matcher := regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)`)
	for _, q := range queries {
		names := promQLMetric.FindAllString(q, -1)
		if len(names) == 0 {
			t.Errorf("%q names no metric of the app's", q)
		}
		have := []string{"job", "instance"}
		for _, n := range names {
			l, ok := labels[n]
			if !ok {
				t.Errorf("%q: the app exports no %s", q, n)
			}
			have = append(have, l...)
		}
		for _, g := range grouped.FindAllStringSubmatch(q, -1) {
			var used []string
			switch {
			case g[1] != "":
				for _, n := range strings.Split(g[1], ",") {
					used = append(used, strings.TrimSpace(n))
				}
			case g[2] != "":
				for _, m := range matcher.FindAllStringSubmatch(g[2], -1) {
					used = append(used, m[1])
				}
			default:
				used = append(used, g[3])
			}
			for _, n := range used {
				if n != "" && !slices.Contains(have, n) {
					t.Errorf("%q uses label %s, which %v do not have", q, n, names)
				}
			}
		}
	}
}

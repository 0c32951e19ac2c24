package metrics

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrape fetches m's metrics as Prometheus would (the text format) and
// parses them.
func scrape(t *testing.T, m *Metrics) map[string]*dto.MetricFamily {
	t.Helper()
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("the scrape does not parse: %v", err)
	}
	return families
}

// labels returns a metric's labels as a map.
func labels(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, l := range m.GetLabel() {
		out[l.GetName()] = l.GetValue()
	}
	return out
}

func TestRequestsAreCountedByRouteMethodAndCode(t *testing.T) {
	m := New()
	m.ObserveRequest("GET", "/account", 200, 2*time.Millisecond)
	m.ObserveRequest("GET", "/account", 200, 3*time.Millisecond)
	m.ObserveRequest("POST", "/make-change", 422, time.Millisecond)
	// What a client makes up lands in fixed labels, never in new ones.
	for i := range 50 {
		m.ObserveRequest("BREW"+string(rune('A'+i%26)), "", 404, time.Millisecond)
	}
	m.ObserveRequest("GET", "/readyz", 1000, time.Millisecond)

	fam := scrape(t, m)["changebank_http_request_duration_seconds"]
	if fam == nil || fam.GetType() != dto.MetricType_HISTOGRAM {
		t.Fatalf("no request histogram: %v", fam)
	}
	got := map[[3]string]uint64{}
	for _, s := range fam.GetMetric() {
		l := labels(s)
		got[[3]string{l["route"], l["method"], l["code"]}] = s.GetHistogram().GetSampleCount()
	}
	want := map[[3]string]uint64{
		{"/account", "GET", "200"}:      2,
		{"/make-change", "POST", "422"}: 1,
		{"unmatched", "other", "404"}:   50,
		{"/readyz", "GET", "other"}:     1,
	}
	if len(got) != len(want) {
		t.Errorf("series %v, want %v", got, want)
	}
	for k, n := range want {
		if got[k] != n {
			t.Errorf("%v: %d requests, want %d", k, got[k], n)
		}
	}
	for _, s := range fam.GetMetric() {
		if l := labels(s); l["route"] == "/account" {
			if sum := s.GetHistogram().GetSampleSum(); sum < 0.0049 || sum > 0.0051 {
				t.Errorf("/account's latencies add up to %gs, want 0.005s", sum)
			}
		}
	}
}

func TestBuildInfoAndRuntime(t *testing.T) {
	fams := scrape(t, New())
	info := fams["changebank_build_info"]
	if info == nil || len(info.GetMetric()) != 1 || info.GetMetric()[0].GetGauge().GetValue() != 1 {
		t.Fatalf("build info: %v", info)
	}
	l := labels(info.GetMetric()[0])
	for _, name := range []string{"version", "revision", "goversion"} {
		if l[name] == "" {
			t.Errorf("build info has no %s: %v", name, l)
		}
	}
	for _, name := range []string{"go_goroutines", "process_resident_memory_bytes"} {
		if fams[name] == nil {
			t.Errorf("no %s", name)
		}
	}
}

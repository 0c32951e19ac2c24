package main

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"
	"time"
)

// docs/performance.md's figures come from this script: it must keep
// working as the app's configuration changes (it once stopped starting the
// app when .env gained a setting). A short run proves that every route
// answers as the script expects and that every ratio is printed as a
// figure; the figures themselves are not checked. The script prints
// figures, never a verdict against a goal a reader does not know.
func TestLoadScriptRunsEveryRoute(t *testing.T) {
	t.Chdir("../..") // the script builds and runs the app from the repository root
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var out bytes.Buffer
	if err := run(ctx, []string{"-d", "200ms", "-warmup", "50ms", "-c", "2", "-rounds", "2", "-pin=false", "-wrk="}, &out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	for _, tg := range targets {
		if !strings.Contains(out.String(), tg.name) {
			t.Errorf("no line for %s:\n%s", tg.name, out.String())
		}
	}
	figure := regexp.MustCompile(`÷ .*\s\d+\.\d\d(\s|$)`)
	checked := 0
	for _, q := range ratios {
		if strings.HasPrefix(q.den, "oauth2-proxy") { // needs -oauth2-proxy
			continue
		}
		checked++
		found := false
		for line := range strings.Lines(out.String()) {
			found = found || strings.HasPrefix(line, q.num) && strings.Contains(line, "÷ "+q.den+" ") && figure.MatchString(line)
		}
		if !found {
			t.Errorf("no ratio %s ÷ %s with its figure:\n%s", q.num, q.den, out.String())
		}
	}
	if checked < 5 {
		t.Errorf("checked %d ratios: the list no longer has the five without oauth2-proxy", checked)
	}
	for _, verdict := range []string{"goal", "meets", "below", "target"} {
		if strings.Contains(out.String(), verdict) {
			t.Errorf("the output judges its figures (%q):\n%s", verdict, out.String())
		}
	}
}

// A wrk report gives the figures; one with answers other than 2xx or 3xx
// (the session refused: 401), or socket errors, is a failed run, never a
// figure.
func TestParseWrk(t *testing.T) {
	const report = `Running 1s test @ http://127.0.0.1:18765/
  1 threads and 2 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     5.26ms    3.08ms  24.42ms   80.68%
    Req/Sec   385.20     59.93   480.00     60.00%
  Latency Distribution
     50%  425.10us
     75%    6.41ms
     90%    8.72ms
     99%   18.36ms
  384 requests in 1.00s, 1.62MB read
Requests/sec:    382.14
Transfer/sec:      1.62MB
`
	r, err := parseWrk(report)
	if err != nil {
		t.Fatal(err)
	}
	if r.rate != 382.14 || r.requests != 384 || r.p50 != 425100*time.Nanosecond || r.p99 != 18360*time.Microsecond {
		t.Errorf("parsed %+v", r)
	}
	for _, bad := range []string{
		strings.Replace(report, "Requests/sec", "  Non-2xx or 3xx responses: 617\nRequests/sec", 1),
		strings.Replace(report, "Requests/sec", "  Socket errors: connect 0, read 3, write 0, timeout 0\nRequests/sec", 1),
		"unable to connect to 127.0.0.1:1 Connection refused\n",
	} {
		if _, err := parseWrk(bad); err == nil {
			t.Errorf("no error for\n%s", bad)
		}
	}
}

package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

// The README's Performance figures come from this script: it must keep
// working as the app's configuration changes (it once stopped starting the
// app when .env gained a setting). A short run proves that every route
// answers as the script expects; the figures themselves are not checked.
func TestLoadScriptRunsEveryRoute(t *testing.T) {
	t.Chdir("../..") // the script builds and runs the app from the repository root
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var out bytes.Buffer
	if err := run(ctx, []string{"-d", "200ms", "-warmup", "50ms", "-c", "2", "-pin=false"}, &out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	for _, tg := range targets {
		if !strings.Contains(out.String(), tg.name) {
			t.Errorf("no line for %s:\n%s", tg.name, out.String())
		}
	}
}

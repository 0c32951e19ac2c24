package main

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// startRun calls run with args and exactly the settings in env (no demo
// defaults), waits until the app at env's APP_URL is ready, and stops it
// when the test ends. Its logs must hold no secret of env's or its own.
func startRun(t testing.TB, env map[string]string, args ...string) demo {
	t.Helper()
	d := demo{appURL: env["APP_URL"], issuer: env["ISSUER"], base: env["APP_URL"], logs: &syncBuffer{}, secrets: &secretList{}}
	d.secrets.remember(env["CLIENT_SECRET"], env["FUSIONAUTH_API_KEY"])
	for _, secret := range strings.Split(env["APP_SECRET_KEY"], ",") {
		d.secrets.remember(strings.TrimSpace(secret))
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, args, getenvFrom(env), io.Discard, d.logs) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run %v: %v", args, err)
		}
		for _, before := range d.secrets.leaked(d.logs.String()) {
			t.Errorf("a secret, token or cookie value was logged after ...%s", before)
		}
	})
	deadline := time.Now().Add(30 * time.Second) // a loaded machine
	for {
		resp, err := http.Get(d.base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return d
			}
		}
		select {
		case err := <-done:
			t.Fatalf("run %v stopped: %v\n%s", args, err, d.logs)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("run %v never became ready\n%s", args, d.logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

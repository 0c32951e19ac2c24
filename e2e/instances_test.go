package e2e

import (
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/changebank/changebank/internal/app"
	"github.com/changebank/changebank/internal/apptest"
)

// startRun calls app.Run with args and exactly the settings in env (no demo
// defaults), waits until the app at env's APP_URL is ready, and stops it
// when the test ends. Its logs must hold no secret of env's or its own.
func startRun(t testing.TB, env map[string]string, args ...string) demo {
	t.Helper()
	d := demo{appURL: env["APP_URL"], issuer: env["ISSUER"], base: env["APP_URL"], logs: &apptest.Logs{}, secrets: &secretList{}}
	d.secrets.remember(env["CLIENT_SECRET"], env["FUSIONAUTH_API_KEY"])
	for _, secret := range strings.Split(env["APP_SECRET_KEY"], ",") {
		d.secrets.remember(strings.TrimSpace(secret))
	}
	// Stopped as Ctrl-C stops it, without the drain period.
	ctx, cancel := context.WithCancelCause(context.Background())
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx, args, apptest.Getenv(env), io.Discard, d.logs) }()
	t.Cleanup(func() {
		cancel(app.ErrInterrupted)
		if err := <-done; err != nil {
			t.Errorf("run %v: %v", args, err)
		}
		for _, before := range d.secrets.leaked(d.logs.String()) {
			t.Errorf("a secret, token or cookie value was logged after ...%s", before)
		}
	})
	awaitReady(t, d.base, done, 30*time.Second /* a loaded machine */, d.logs)
	return d
}

// TestATakenPortNamesTheSettingToChange: a port already in use stops the
// app with the setting that moves it, before any word about the provider
// (whose discovery, started early, used to warn of a reset connection).
func TestATakenPortNamesTheSettingToChange(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	busy := taken.Addr().String()
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want []string
	}{
		{"the app's port", map[string]string{"APP_URL": "http://" + busy, "ISSUER": "http://" + apptest.FreePort(t)}, []string{"-embedded-idp"},
			[]string{"the app cannot listen on :" + strings.Split(busy, ":")[1], "set APP_URL to another port", "LISTEN_ADDR", "address already in use"}},
		{"the stand-in's port", map[string]string{"APP_URL": "http://" + apptest.FreePort(t), "ISSUER": "http://" + busy}, []string{"-embedded-idp"},
			[]string{"the embedded identity provider cannot listen on " + busy, "drop -embedded-idp", "set ISSUER to another port"}},
		{"the attacker page's port", map[string]string{"APP_URL": "http://localhost:" + strings.Split(apptest.FreePort(t), ":")[1], "ISSUER": "http://" + apptest.FreePort(t), "ATTACKER_ADDR": busy}, []string{"-embedded-idp"},
			[]string{"the attacker page cannot listen on " + busy, "set ATTACKER_ADDR"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range apptest.DemoEnv {
				tt.env[k] = v
			}
			tt.env["LOG_LEVEL"] = "info"
			tt.env["KICKSTART_FILE"] = repo("kickstart/kickstart.json")
			logs := &apptest.Logs{}
			err := app.Run(context.Background(), tt.args, apptest.Getenv(tt.env), io.Discard, logs)
			if err == nil || !apptest.ContainsAll(err.Error(), tt.want) {
				t.Fatalf("run = %v, want an error saying %q", err, tt.want)
			}
			// Give a discovery started too early the time to fail and say so.
			time.Sleep(500 * time.Millisecond)
			if strings.Contains(logs.String(), "identity provider not ready") {
				t.Errorf("a provider warning came with the port error:\n%s", logs)
			}
		})
	}
}

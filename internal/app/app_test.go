package app

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/changebank/changebank/internal/apptest"
)

func TestRunStopsOnABadKickstart(t *testing.T) {
	env := map[string]string{"KICKSTART_FILE": "../../idp/testdata/bad-json.json", "APP_URL": "http://" + apptest.FreePort(t), "ISSUER": "http://" + apptest.FreePort(t)}
	for k, v := range apptest.DemoEnv {
		env[k] = v
	}
	err := Run(context.Background(), []string{"-embedded-idp"}, apptest.Getenv(env), io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "bad-json.json") {
		t.Fatalf("run = %v, want an error naming the kickstart file", err)
	}
}

func TestServeStopsEveryServerWhenOneFails(t *testing.T) {
	listen := func() net.Listener {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		return ln
	}
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {})
	idpLn, appLn := listen(), listen()
	appAddr := appLn.Addr().String()
	done := make(chan error, 1)
	go func() {
		done <- serve(context.Background(), slog.New(slog.DiscardHandler), 0,
			server{name: "embedded identity provider", srv: newServer(ok), ln: idpLn},
			server{name: "app", srv: newServer(ok), ln: appLn})
	}()
	apptest.WaitServing(t, appAddr)
	idpLn.Close() // the provider's server fails
	err := <-done
	if err == nil || !strings.Contains(err.Error(), "embedded identity provider") {
		t.Fatalf("serve = %v, want the provider's failure", err)
	}
	if c, err := net.Dial("tcp", appAddr); err == nil {
		c.Close()
		t.Fatal("the app server still accepts connections after serve returned")
	}
}

func TestRunNamesTheProviderItCannotReach(t *testing.T) {
	env := map[string]string{"APP_URL": "http://" + apptest.FreePort(t), "ISSUER": "http://" + apptest.FreePort(t)}
	for k, v := range apptest.DemoEnv {
		env[k] = v
	}
	logs := &apptest.Logs{}
	// Stopped as Ctrl-C stops it, without the drain period.
	ctx, cancel := context.WithCancelCause(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, nil, apptest.Getenv(env), io.Discard, logs) }()
	defer func() {
		cancel(ErrInterrupted)
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	}()
	want := []string{"cannot reach the identity provider at " + env["ISSUER"], "restart it with the built-in stand-in, `go run . -embedded-idp`", "docker compose up"}
	deadline := time.Now().Add(20 * time.Second)
	for !apptest.ContainsAll(logs.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("the logs never say %q:\n%s", want, logs)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

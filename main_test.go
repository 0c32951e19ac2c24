package main

import (
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/changebank/changebank/internal/apptest"
)

// runAsMain makes this test binary run main instead of the tests: the
// signal tests start it as a child process and signal it.
const runAsMain = "CHANGEBANK_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(runAsMain) == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// child is ChangeBank run by main in another process, with the embedded
// stand-in on free ports.
type child struct {
	cmd    *exec.Cmd
	appURL string
	exited chan error
}

// startMain runs main in a child process with drain as DRAIN_PERIOD, in an
// empty folder (so no .env is read), and waits until it is ready.
func startMain(t *testing.T, drain string) *child {
	t.Helper()
	kickstart, err := filepath.Abs("kickstart/kickstart.json")
	if err != nil {
		t.Fatal(err)
	}
	c := &child{appURL: "http://" + apptest.FreePort(t), exited: make(chan error, 1)}
	c.cmd = exec.Command(os.Args[0], "-embedded-idp")
	c.cmd.Dir = t.TempDir()
	c.cmd.Env = append(os.Environ(), runAsMain+"=1", "APP_URL="+c.appURL, "ISSUER=http://"+apptest.FreePort(t),
		"KICKSTART_FILE="+kickstart, "DRAIN_PERIOD="+drain, "LOG_LEVEL=warn")
	for k, v := range apptest.DemoEnv {
		if k != "LOG_LEVEL" {
			c.cmd.Env = append(c.cmd.Env, k+"="+v)
		}
	}
	logs := &apptest.Logs{}
	c.cmd.Stdout, c.cmd.Stderr = logs, logs
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { c.exited <- c.cmd.Wait() }()
	t.Cleanup(func() {
		c.cmd.Process.Kill()
		<-c.exited
		if t.Failed() {
			t.Logf("the child's output:\n%s", logs)
		}
	})
	for deadline := time.Now().Add(30 * time.Second); c.status(t, "/readyz") != http.StatusOK; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("main never became ready")
		}
	}
	return c
}

// status is the status of GET path on a new connection, or 0 when none opens.
func (c *child) status(t *testing.T, path string) int {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	resp, err := client.Get(c.appURL + path)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// signal sends sig to the child and returns how it exited, failing the test
// when it is still running after within, far below the drain period the
// tests set: only a process that skipped the drain ends in time.
func (c *child) signal(t *testing.T, sig os.Signal, within time.Duration) error {
	t.Helper()
	if err := c.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-c.exited:
		c.exited <- err // for the cleanup
		return err
	case <-time.After(within):
		t.Fatalf("still running %s after %v", within, sig)
		return nil
	}
}

// Ctrl-C at a terminal stops the app at once, whatever the drain period:
// a person running the demo does not wait for it.
func TestInterruptSkipsTheDrain(t *testing.T) {
	c := startMain(t, "10m")
	if err := c.signal(t, os.Interrupt, time.Minute); err != nil {
		t.Fatalf("main after Ctrl-C: %v, want a clean exit", err)
	}
}

// SIGTERM drains: /readyz turns 503 while pages are still served on new
// connections; a second SIGTERM then ends the process at once.
func TestTerminateDrainsAndASecondSignalStops(t *testing.T) {
	c := startMain(t, "10m")
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); c.status(t, "/readyz") != http.StatusServiceUnavailable; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("/readyz never answered 503 after SIGTERM")
		}
	}
	for _, path := range []string{"/", "/healthz", "/login"} {
		if s := c.status(t, path); s == 0 || s >= 500 {
			t.Errorf("draining, GET %s on a new connection: %d, want it served", path, s)
		}
	}
	err := c.signal(t, syscall.SIGTERM, time.Minute)
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGTERM {
		t.Fatalf("main after a second SIGTERM: %v, want it ended by the signal", err)
	}
}

// With a short drain period, SIGTERM ends in a clean exit once it is over.
func TestTerminateExitsCleanlyAfterTheDrain(t *testing.T) {
	c := startMain(t, "1s")
	if err := c.signal(t, syscall.SIGTERM, time.Minute); err != nil {
		t.Fatalf("main after SIGTERM and a 1 s drain: %v, want a clean exit", err)
	}
}

// Package apptest is what the app's own tests (internal/app) and the
// end-to-end tests (e2e) share to run ChangeBank: the demo's settings, free
// ports and a log buffer the servers' goroutines can write to.
package apptest

import (
	"bytes"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// DemoEnv is the shipped .env's settings, as tests pass them to app.Run.
var DemoEnv = map[string]string{
	"CLIENT_ID":          "e9fdb985-9173-4e01-9d73-ac2d60d1dc8e",
	"CLIENT_SECRET":      "changebank-demo-client-secret-not-for-production",
	"APP_SECRET_KEY":     "main-test-secret-0123456789-abcdefghijklmn",
	"FUSIONAUTH_API_KEY": "changebank-demo-api-key-not-for-production-0000000000",
	"LOG_LEVEL":          "warn",
}

// RealSecrets are settings no file of this repository publishes, for runs over https.
var RealSecrets = map[string]string{
	"CLIENT_SECRET":      "main-test-client-secret-0123456789-abcdefgh",
	"FUSIONAUTH_API_KEY": "",
}

// Getenv reads settings from m, as os.Getenv reads the environment.
func Getenv(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// FreePort returns a loopback address with a port free at the time of the call.
func FreePort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).AddrPort().String()
}

// Logs is an io.Writer safe for the server's goroutines.
type Logs struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *Logs) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *Logs) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// ContainsAll tells whether s holds every one of subs.
func ContainsAll(s string, subs []string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

// WaitServing waits, up to 10 s, until addr answers HTTP.
func WaitServing(t testing.TB, addr string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/")
		if err == nil {
			resp.Body.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never answered: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

//go:build unix

package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image/png"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// What these tests' own tools promise: a failing browser test leaves a
// picture of the page it failed on, and a diagram test without mermaid never
// passes unnoticed.

// redPixels counts the pixels of a PNG that are clearly red.
func redPixels(t *testing.T, data []byte) int {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("not a PNG: %v", err)
	}
	n := 0
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			if r > 0xc000 && g < 0x4000 && bl < 0x4000 {
				n++
			}
		}
	}
	return n
}

// TestFailureScreenshotShowsThePage: the picture a failing test leaves is
// the page it was on, even when the test failed by running out of time;
// before any page was opened there is no picture, and a line says why,
// rather than a blank image.
func TestFailureScreenshotShowsThePage(t *testing.T) {
	ctx := newBrowser(t)
	if shot, why := failureShot(ctx); shot != nil || !strings.Contains(why, "before the browser opened a page") {
		t.Fatalf("before any page: a %d-byte picture, %q; want none, and why", len(shot), why)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `<!doctype html><title>failed here</title><h1 style="color:#f00;font-size:96px">The page that failed</h1>`)
	}))
	defer srv.Close()
	run1(t, ctx, chromedp.Navigate(srv.URL), chromedp.WaitVisible(chromedp.CSS("h1")))

	// The test's own time runs out, as when a WaitVisible never ends.
	expired, cancel := context.WithTimeout(ctx, time.Millisecond)
	defer cancel()
	<-expired.Done()
	if _, err := chromedp.Run(expired, chromedp.Location()); err == nil {
		t.Fatal("the expired context still drives the browser: the check below proves nothing")
	}
	shot, where := failureShot(expired)
	if shot == nil {
		t.Fatalf("no picture after the test's time ran out: %s", where)
	}
	if where != srv.URL+"/" {
		t.Errorf("the picture is of %q, want the page the test was on, %s", where, srv.URL+"/")
	}
	if n := redPixels(t, shot); n < 2000 {
		t.Errorf("the picture shows %d red pixels of the page's heading: it is not the page", n)
	}
}

// TestDiagramTestsWithoutMermaidAreNeverSilent runs the diagram test where
// `npm ci` has not been run: under CI=true it fails naming the fix; outside
// CI it skips, and the package prints one line saying what to install.
func TestDiagramTestsWithoutMermaidAreNeverSilent(t *testing.T) {
	bin, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// Two levels below a fresh directory, ../node_modules does not exist.
	dir := filepath.Join(t.TempDir(), "e2e")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, ci := range []string{"true", ""} {
		t.Run("CI="+ci, func(t *testing.T) {
			cmd := exec.Command(bin, "-test.run=^TestMermaidRenderCatchesErrors$", "-test.v")
			cmd.Dir = dir
			cmd.Env = append(slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "CI=") }), "CI="+ci)
			// No controlling terminal: tell writes to stderr, which this
			// test reads, and nothing reaches the terminal of whoever runs
			// the tests.
			cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
			out, err := cmd.CombinedOutput()
			var exit *exec.ExitError
			if err != nil && !errors.As(err, &exit) {
				t.Fatal(err)
			}
			if ci == "true" {
				if err == nil || !strings.Contains(string(out), "CI=true") || !strings.Contains(string(out), "npm ci") {
					t.Fatalf("under CI=true without mermaid: %v\n%s", err, out)
				}
				return
			}
			if err != nil || !strings.Contains(string(out), "--- SKIP: TestMermaidRenderCatchesErrors") {
				t.Fatalf("outside CI without mermaid the test must skip: %v\n%s", err, out)
			}
			if n := strings.Count(string(out), "changebank: skipping the diagram tests: "+noMermaid); n != 1 {
				t.Fatalf("the line saying what to install appears %d times, want once:\n%s", n, out)
			}
		})
	}
}

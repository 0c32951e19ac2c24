package e2e

import (
	"maps"
	"net"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/joho/godotenv"
)

// docPointer is how .env and the compose file point a reader at the
// documentation: a page of docs/ or the README, with an optional anchor.
var docPointer = regexp.MustCompile(`\b((?:README|docs/[\w-]+)\.md(?:#[\w-]+)?)`)

// TestPointersIntoTheDocsArrive: a newcomer sent to a page or a section of
// the documentation by .env or the compose file finds it there.
func TestPointersIntoTheDocsArrive(t *testing.T) {
	found := 0
	for _, name := range []string{".env", "docker-compose.yml"} {
		data, err := os.ReadFile(repo(name))
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range docPointer.FindAllStringSubmatch(string(data), -1) {
			found++
			if msg := checkLink(repo("."), "README.md", m[1]); msg != "" {
				t.Errorf("%s points at %s, which %s", name, m[1], msg)
			}
		}
		if strings.Contains(string(data), "README, \"") {
			t.Errorf(`%s still points at a README section by name: point at docs/page.md#anchor, which this test checks`, name)
		}
	}
	if found < 3 {
		t.Fatalf("found %d pointers into the documentation: the pattern no longer matches how the files point", found)
	}
}

// readmeCommands returns the commands of the first ```sh block after
// marker in the page at path: for each line, the environment assignments before
// `go run .` and the arguments after it.
func readmeCommands(t *testing.T, path, marker string) []readmeCommand {
	t.Helper()
	data, err := os.ReadFile(repo(path))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(data), marker)
	if !ok {
		t.Fatalf("%s has no %q", path, marker)
	}
	_, rest, ok = strings.Cut(rest, "```sh\n")
	block, _, closed := strings.Cut(rest, "\n```")
	if !ok || !closed {
		t.Fatalf("no sh block after %q", marker)
	}
	var cmds []readmeCommand
	for _, line := range strings.Split(block, "\n") {
		line, _, _ = strings.Cut(line, "#")
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		cmd := readmeCommand{env: map[string]string{}}
		for len(fields) > 0 && strings.Contains(fields[0], "=") {
			k, v, _ := strings.Cut(fields[0], "=")
			cmd.env[k] = v
			fields = fields[1:]
		}
		if len(fields) < 3 || fields[0] != "go" || fields[1] != "run" || fields[2] != "." {
			t.Fatalf("%s, after %q: %q is not a `go run .` this test can run", path, marker, line)
		}
		cmd.args = fields[3:]
		cmds = append(cmds, cmd)
	}
	return cmds
}

type readmeCommand struct {
	env  map[string]string
	args []string
}

// TestREADMESecondInstanceWithoutDocker runs the README's two terminals as
// written, on the ports written there (so it needs 8080, 8081, 8090, 8091
// and 9011 free), with .env read as main reads it, then logs in and out on
// the second instance in a browser.
func TestREADMESecondInstanceWithoutDocker(t *testing.T) {
	cmds := readmeCommands(t, "docs/instances.md", "\n## A second instance without Docker\n")
	if len(cmds) != 2 {
		t.Fatalf("docs/instances.md gives %d commands, want two terminals", len(cmds))
	}
	dotenv, err := godotenv.Read(repo(".env"))
	if err != nil {
		t.Fatal(err)
	}
	t.Chdir(repo(".")) // where the README's `go run .` runs, so the default KICKSTART_FILE is found
	ctx := newBrowser(t)
	var instances []demo
	for _, cmd := range cmds {
		env := maps.Clone(dotenv)
		maps.Copy(env, cmd.env) // the command line's environment wins, as over .env
		for _, addr := range []string{strings.TrimPrefix(env["APP_URL"], "http://"), env["ATTACKER_ADDR"]} {
			if c, err := net.Dial("tcp", addr); err == nil {
				c.Close()
				t.Fatalf("%s is in use: this test runs the README's commands on the ports written there", addr)
			}
		}
		instances = append(instances, startRun(t, env, cmd.args...))
	}
	first, second := instances[0], instances[1]
	if first.appURL == second.appURL || first.issuer != second.issuer {
		t.Fatalf("the two instances: %s and %s, issuers %s and %s", first.appURL, second.appURL, first.issuer, second.issuer)
	}

	// Log in on the second instance; the first serves the same session.
	run1(t, ctx, chromedp.Navigate(second.appURL+"/account"))
	logIn(t, ctx, "richard@example.com", "password")
	run1(t, ctx, chromedp.WaitVisible(chromedp.CSS("#name")))
	if u := location(t, ctx); u != second.appURL+"/account" {
		t.Fatalf("login on the second instance landed on %s", u)
	}
	for _, d := range instances {
		rememberCookies(t, ctx, d)
	}
	run1(t, ctx, chromedp.Navigate(first.appURL+"/account"), chromedp.WaitVisible(chromedp.CSS("#name")))

	// Log out on the second: through the provider's logout and back to it.
	run1(t, ctx, chromedp.Navigate(second.appURL+"/account"), chromedp.WaitVisible(chromedp.CSS("#logout")),
		chromedp.Click(chromedp.CSS("#logout")), chromedp.WaitVisible(chromedp.CSS("#hero-login")))
	if u := location(t, ctx); u != second.appURL+"/" {
		t.Fatalf("logout on the second instance landed on %s", u)
	}
	if msg := landingNotice(t, ctx); !strings.Contains(msg, "You are logged out of ChangeBank and of the identity provider") {
		t.Fatalf("the second instance after logout says %q", msg)
	}
	run1(t, ctx, chromedp.Navigate(first.appURL+"/account"), chromedp.WaitVisible(chromedp.CSS("#loginId")))
}

package e2e

import (
	"maps"
	"net"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/joho/godotenv"
)

// readmeHeadings returns the text of every heading of README.md.
func readmeHeadings(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile(repo("README.md"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range regexp.MustCompile(`(?m)^#+ (.+)$`).FindAllStringSubmatch(string(data), -1) {
		out = append(out, strings.TrimSpace(m[1]))
	}
	return out
}

// TestPointersIntoTheREADMEArrive: a newcomer told to see README, "X" in
// .env or the compose file finds a section named X.
func TestPointersIntoTheREADMEArrive(t *testing.T) {
	headings := readmeHeadings(t)
	pointer := regexp.MustCompile(`README, "([^"]+)"`)
	found := 0
	for _, name := range []string{".env", "docker-compose.yml"} {
		data, err := os.ReadFile(repo(name))
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range pointer.FindAllStringSubmatch(string(data), -1) {
			found++
			if !slices.Contains(headings, m[1]) {
				t.Errorf("%s points at README, %q: no such section", name, m[1])
			}
		}
	}
	if found == 0 {
		t.Fatal(`no README, "..." pointer found: the pattern no longer matches how the files point`)
	}
}

// readmeCommands returns the commands of the first ```sh block after
// marker in README.md: for each line, the environment assignments before
// `go run .` and the arguments after it.
func readmeCommands(t *testing.T, marker string) []readmeCommand {
	t.Helper()
	data, err := os.ReadFile(repo("README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(data), marker)
	if !ok {
		t.Fatalf("README.md has no %q", marker)
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
			t.Fatalf("README.md, after %q: %q is not a `go run .` this test can run", marker, line)
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
	cmds := readmeCommands(t, "**A second instance without Docker.**")
	if len(cmds) != 2 {
		t.Fatalf("the README gives %d commands, want two terminals", len(cmds))
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

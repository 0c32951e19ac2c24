package e2e

import (
	"encoding/json"
	"maps"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/joho/godotenv"

	"github.com/changebank/changebank/internal/apptest"
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

// hostPort returns the host:port part of a setting that names an address
// (APP_URL, ISSUER: a URL; ATTACKER_ADDR: host:port), and whether it has one.
func hostPort(name, value string) (string, bool) {
	if name == "ATTACKER_ADDR" {
		_, _, err := net.SplitHostPort(value)
		return value, err == nil && value != ""
	}
	u, err := url.Parse(value)
	if err != nil || u.Port() == "" {
		return "", false
	}
	return u.Host, true
}

// portSettings are the settings of the two terminals that name a port.
var portSettings = []string{"APP_URL", "ISSUER", "ATTACKER_ADDR"}

// redirectURLs returns the authorizedRedirectURLs the kickstart gives the
// application clientID, and a function that writes a copy of the kickstart
// with more of them.
func redirectURLs(t *testing.T, kickstart []byte, clientID string) ([]string, func(path string, more ...string)) {
	t.Helper()
	var ks map[string]any
	if err := json.Unmarshal(kickstart, &ks); err != nil {
		t.Fatal(err)
	}
	vars, _ := ks["variables"].(map[string]any)
	var oauth map[string]any
	requests, _ := ks["requests"].([]any)
	for _, r := range requests {
		req, _ := r.(map[string]any)
		u, _ := req["url"].(string)
		for k, v := range vars {
			if s, ok := v.(string); ok {
				u = strings.ReplaceAll(u, "#{"+k+"}", s)
			}
		}
		body, _ := req["body"].(map[string]any)
		application, _ := body["application"].(map[string]any)
		if c, ok := application["oauthConfiguration"].(map[string]any); ok && u == "/api/application/"+clientID {
			oauth = c
		}
	}
	urls, _ := oauth["authorizedRedirectURLs"].([]any)
	if len(urls) == 0 {
		t.Fatalf("the kickstart registers no application %s with authorizedRedirectURLs", clientID)
	}
	var out []string
	for _, u := range urls {
		s, _ := u.(string)
		out = append(out, s)
	}
	return out, func(path string, more ...string) {
		for _, m := range more {
			urls = append(urls, m)
		}
		oauth["authorizedRedirectURLs"] = urls
		data, err := json.MarshalIndent(ks, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestSecondInstanceWithoutDocker holds docs/instances.md's two terminals
// true. As written, they need 8080, 8081, 8090, 8091 and 9011, which the
// demo may be using while the tests run: so the test checks what the ports
// as written rely on (the kickstart authorizes the second terminal's URLs),
// then runs the page's "On other ports" version of the same two commands,
// every port moved to a free one and the kickstart copied with the second
// terminal's URLs added, exactly as the page says, with .env read as main
// reads it; and logs in and out on the second instance in a browser.
func TestSecondInstanceWithoutDocker(t *testing.T) {
	written := readmeCommands(t, "docs/instances.md", "\n## A second instance without Docker\n")
	moved := readmeCommands(t, "docs/instances.md", "\n### On other ports\n")
	if len(written) != 2 || len(moved) != 2 {
		t.Fatalf("docs/instances.md gives %d commands and %d on other ports, want two terminals each", len(written), len(moved))
	}
	dotenv, err := godotenv.Read(repo(".env"))
	if err != nil {
		t.Fatal(err)
	}
	kickstart, err := os.ReadFile(repo("kickstart/kickstart.json"))
	if err != nil {
		t.Fatal(err)
	}
	authorized, writeKickstart := redirectURLs(t, kickstart, dotenv["CLIENT_ID"])

	// As written: the first terminal runs the stand-in, the second uses it,
	// and the kickstart lets the second log in and out.
	settings := func(cmd readmeCommand) map[string]string {
		env := maps.Clone(dotenv)
		maps.Copy(env, cmd.env) // the command line's environment wins, as over .env
		return env
	}
	first, second := settings(written[0]), settings(written[1])
	if !slices.Contains(written[0].args, "-embedded-idp") || slices.Contains(written[1].args, "-embedded-idp") {
		t.Fatalf("the first terminal must run the stand-in, the second not: %v, %v", written[0].args, written[1].args)
	}
	if first["ISSUER"] != second["ISSUER"] || first["APP_URL"] == second["APP_URL"] || first["ATTACKER_ADDR"] == second["ATTACKER_ADDR"] {
		t.Fatalf("as written, the terminals share ISSUER and nothing else: %v / %v", first, second)
	}
	for _, u := range []string{second["APP_URL"] + "/callback", second["APP_URL"] + "/"} {
		if !slices.Contains(authorized, u) {
			t.Errorf("the kickstart does not authorize %s: the second terminal as written could not log in or out", u)
		}
	}

	// On other ports: the same commands, every port moved (one port always
	// to the same new one), ISSUER given to both, and the kickstart copy
	// named in the first.
	for i := range written {
		if !slices.Equal(written[i].args, moved[i].args) {
			t.Errorf("terminal %d: %v on other ports, %v as written", i+1, moved[i].args, written[i].args)
		}
		w, m := settings(written[i]), settings(moved[i])
		for _, name := range portSettings {
			wa, _ := hostPort(name, w[name])
			ma, ok := hostPort(name, m[name])
			if !ok || ma == wa || strings.Replace(w[name], wa, "", 1) != strings.Replace(m[name], ma, "", 1) {
				t.Errorf("terminal %d: %s=%s on other ports, %s as written: want the same with another port", i+1, name, m[name], w[name])
			}
		}
	}
	if moved[0].env["ISSUER"] == "" || moved[0].env["ISSUER"] != moved[1].env["ISSUER"] {
		t.Errorf("on other ports both terminals set the stand-in's new ISSUER: %q, %q", moved[0].env["ISSUER"], moved[1].env["ISSUER"])
	}
	if moved[0].env["KICKSTART_FILE"] == "" || moved[1].env["KICKSTART_FILE"] != "" {
		t.Errorf("on other ports the first terminal, alone, names the kickstart's copy: %q, %q", moved[0].env["KICKSTART_FILE"], moved[1].env["KICKSTART_FILE"])
	}
	if t.Failed() {
		return
	}

	// Run them on ports free now. The page's example ports may be taken
	// too, so each is mapped to a free one, the same everywhere.
	free := map[string]string{}
	var envs []map[string]string
	for _, cmd := range moved {
		env := settings(cmd)
		for _, name := range portSettings {
			addr, _ := hostPort(name, env[name])
			_, port, _ := net.SplitHostPort(addr)
			if free[port] == "" {
				_, free[port], _ = net.SplitHostPort(apptest.FreePort(t))
			}
			env[name] = strings.Replace(env[name], ":"+port, ":"+free[port], 1)
		}
		envs = append(envs, env)
	}
	copyPath := filepath.Join(t.TempDir(), "kickstart.json")
	writeKickstart(copyPath, envs[1]["APP_URL"]+"/callback", envs[1]["APP_URL"]+"/")
	envs[0]["KICKSTART_FILE"] = copyPath
	t.Chdir(repo(".")) // where the page's `go run .` runs
	var instances []demo
	for i, env := range envs {
		instances = append(instances, startRun(t, env, moved[i].args...))
	}
	one, two := instances[0], instances[1]
	if one.appURL == two.appURL || one.issuer != two.issuer {
		t.Fatalf("the two instances: %s and %s, issuers %s and %s", one.appURL, two.appURL, one.issuer, two.issuer)
	}

	// Log in on the second instance; the first serves the same session.
	ctx := newBrowser(t)
	run1(t, ctx, chromedp.Navigate(two.appURL+"/account"))
	logIn(t, ctx, "richard@example.com", "password")
	run1(t, ctx, chromedp.WaitVisible(chromedp.CSS("#name")))
	if u := location(t, ctx); u != two.appURL+"/account" {
		t.Fatalf("login on the second instance landed on %s", u)
	}
	for _, d := range instances {
		rememberCookies(t, ctx, d)
	}
	run1(t, ctx, chromedp.Navigate(one.appURL+"/account"), chromedp.WaitVisible(chromedp.CSS("#name")))

	// Log out on the second: through the provider's logout and back to it.
	run1(t, ctx, chromedp.Navigate(two.appURL+"/account"), chromedp.WaitVisible(chromedp.CSS("#logout")),
		chromedp.Click(chromedp.CSS("#logout")), chromedp.WaitVisible(chromedp.CSS("#hero-login")))
	if u := location(t, ctx); u != two.appURL+"/" {
		t.Fatalf("logout on the second instance landed on %s", u)
	}
	if msg := landingNotice(t, ctx); !strings.Contains(msg, "You are logged out of ChangeBank and of the identity provider") {
		t.Fatalf("the second instance after logout says %q", msg)
	}
	run1(t, ctx, chromedp.Navigate(one.appURL+"/account"), chromedp.WaitVisible(chromedp.CSS("#loginId")))
}

package e2e

import (
	"cmp"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/joho/godotenv"

	"github.com/changebank/changebank/idp"
)

// Docker does not run where this project is built, so the compose stack is
// checked on paper: the file as docker compose would load it, against the
// kickstart and the facts FusionAuth depends on.

func loadCompose(t *testing.T) *types.Project {
	t.Helper()
	opts, err := cli.NewProjectOptions([]string{repo("docker-compose.yml")},
		cli.WithWorkingDirectory(repo(".")), cli.WithEnvFiles(repo(".env")), cli.WithDotEnv, cli.WithName("changebank"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("docker compose would refuse docker-compose.yml: %v", err)
	}
	return p
}

func service(t *testing.T, p *types.Project, name string) types.ServiceConfig {
	t.Helper()
	s, err := p.GetService(name)
	if err != nil {
		t.Fatalf("service %s: %v", name, err)
	}
	return s
}

var releaseTag = regexp.MustCompile(`^[a-z0-9./_-]+:[0-9]+\.[0-9]+(\.[0-9]+)?(-[a-z0-9]+)?$`)

func TestComposeStack(t *testing.T) {
	p := loadCompose(t)
	db, fa, app := service(t, p, "db"), service(t, p, "fusionauth"), service(t, p, "app")

	t.Run("images pinned to releases", func(t *testing.T) {
		for _, s := range []types.ServiceConfig{db, fa} {
			if !releaseTag.MatchString(s.Image) {
				t.Errorf("%s: image %q is not pinned to a release tag", s.Name, s.Image)
			}
		}
		if !strings.HasPrefix(fa.Image, "fusionauth/fusionauth-app:1.") {
			t.Errorf("fusionauth image %q", fa.Image)
		}
		// A current 16 patch release (docker-library's 16 line reached 16.13);
		// 18 would move the data directory the volume is mounted on.
		pg := regexp.MustCompile(`^postgres:16\.([0-9]+)(-[a-z0-9]+)?$`).FindStringSubmatch(db.Image)
		if pg == nil {
			t.Errorf("db image %q: want postgres:16.<patch>", db.Image)
		} else if patch, _ := strconv.Atoi(pg[1]); patch < 13 {
			t.Errorf("db image %q: a patch release older than 16.13 misses years of fixes", db.Image)
		}
		if app.Build == nil || app.Build.Context == "" {
			t.Error("app is not built from this repository")
		}
	})
	t.Run("healthchecks and start order", func(t *testing.T) {
		if db.HealthCheck == nil || !strings.Contains(strings.Join(db.HealthCheck.Test, " "), "pg_isready") {
			t.Errorf("db healthcheck: %+v", db.HealthCheck)
		}
		if fa.HealthCheck == nil || !strings.Contains(strings.Join(fa.HealthCheck.Test, " "), "/api/status") ||
			fa.HealthCheck.StartPeriod == nil || time.Duration(*fa.HealthCheck.StartPeriod) < 30*time.Second {
			t.Errorf("fusionauth healthcheck (needs /api/status and a start period): %+v", fa.HealthCheck)
		}
		if d := fa.DependsOn["db"]; d.Condition != types.ServiceConditionHealthy {
			t.Errorf("fusionauth must wait for a healthy db (fresh-database race): %+v", d)
		}
		if d, ok := app.DependsOn["fusionauth"]; !ok || d.Condition != types.ServiceConditionHealthy {
			t.Errorf("app depends_on fusionauth: %+v", d)
		}
	})
	t.Run("only 8080 and 9011 published", func(t *testing.T) {
		published := map[string]string{}
		for _, s := range p.Services {
			for _, port := range s.Ports {
				published[port.Published] = s.Name
			}
		}
		want := map[string]string{"8080": "app", "9011": "fusionauth"}
		if len(published) != 2 || published["8080"] != want["8080"] || published["9011"] != want["9011"] {
			t.Errorf("published ports: %v, want %v", published, want)
		}
	})
	t.Run("FusionAuth settings", func(t *testing.T) {
		env := fa.Environment
		for _, k := range []string{"DATABASE_ROOT_USERNAME", "DATABASE_ROOT_PASSWORD", "DATABASE_USERNAME", "DATABASE_PASSWORD"} {
			if env[k] == nil || *env[k] == "" {
				t.Errorf("fusionauth %s is empty: is it in .env?", k)
			}
		}
		for k, want := range map[string]string{
			"SEARCH_TYPE":            "database",
			"DATABASE_URL":           "jdbc:postgresql://db:5432/fusionauth",
			"DATABASE_ROOT_PASSWORD": *db.Environment["POSTGRES_PASSWORD"],
		} {
			if env[k] == nil || *env[k] != want {
				t.Errorf("fusionauth %s = %v, want %q", k, env[k], want)
			}
		}
		kickstart := env["FUSIONAUTH_APP_KICKSTART_FILE"]
		mounted := false
		for _, v := range fa.Volumes {
			if strings.HasSuffix(v.Source, "/kickstart") && kickstart != nil && strings.HasPrefix(*kickstart, v.Target+"/") && v.ReadOnly {
				mounted = true
			}
		}
		if !mounted {
			t.Errorf("the kickstart file %v is not mounted read-only from ./kickstart: %+v", kickstart, fa.Volumes)
		}
		for _, s := range []types.ServiceConfig{db, fa} {
			for _, v := range s.Volumes {
				if v.Type == types.VolumeTypeVolume && p.Volumes[v.Source].Name == "" {
					t.Errorf("%s: volume %s is not a named volume", s.Name, v.Source)
				}
			}
		}
	})
	t.Run("the app agrees with the kickstart", func(t *testing.T) {
		env := app.Environment
		get := func(k string) string {
			if env[k] == nil {
				return ""
			}
			return *env[k]
		}
		if get("ISSUER_INTERNAL_URL") != "http://fusionauth:9011" {
			t.Errorf("ISSUER_INTERNAL_URL = %q: inside compose FusionAuth is http://fusionauth:9011", get("ISSUER_INTERNAL_URL"))
		}
		ks, err := idp.LoadKickstart(repo("kickstart/kickstart.json"), os.Getenv, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		a := ks.Applications[get("CLIENT_ID")]
		if a == nil {
			t.Fatalf("CLIENT_ID %q is not an application in the kickstart", get("CLIENT_ID"))
		}
		appURL := get("APP_URL")
		checks := []struct {
			what string
			ok   bool
		}{
			{"CLIENT_SECRET is the application's clientSecret", get("CLIENT_SECRET") == a.ClientSecret},
			{"APP_URL/callback is an authorized redirect URL", slices.Contains(a.RedirectURLs, appURL+"/callback")},
			{"APP_URL/ is authorized (post-logout redirect)", slices.Contains(a.RedirectURLs, appURL+"/")},
			{"APP_URL/logout is the logoutURL", a.LogoutURL == appURL+"/logout"},
			{"ISSUER is the tenant's issuer", get("ISSUER") == ks.Issuer},
			{"FUSIONAUTH_API_KEY is a kickstart API key", slices.Contains(ks.APIKeys, get("FUSIONAUTH_API_KEY"))},
			{"REFRESH_TOKEN_TTL is the refresh token's life", get("REFRESH_TOKEN_TTL") == a.RefreshTokenTTL.String() || mustDuration(get("REFRESH_TOKEN_TTL")) == a.RefreshTokenTTL},
			{"refresh tokens are issued", a.GenerateRefreshTokens && slices.Contains(a.EnabledGrants, "refresh_token")},
			{"PKCE is required", a.PKCEPolicy == "Required"},
		}
		for _, c := range checks {
			if !c.ok {
				t.Errorf("%s: no", c.what)
			}
		}
		if env["POSTGRES_PASSWORD"] != nil || env["DATABASE_PASSWORD"] != nil {
			t.Error("the app container is given the database passwords, which it does not need")
		}
		// The running app reads the same values from .env.
		dotenv, err := godotenv.Read(repo(".env"))
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"CLIENT_ID", "CLIENT_SECRET", "APP_URL", "ISSUER", "FUSIONAUTH_API_KEY", "APP_SECRET_KEY", "REFRESH_TOKEN_TTL"} {
			if dotenv[k] == "" || dotenv[k] != get(k) {
				t.Errorf("%s: .env says %q, compose gives the app %q", k, dotenv[k], get(k))
			}
		}
	})
}

func mustDuration(s string) time.Duration {
	d, _ := time.ParseDuration(s)
	return d
}

func TestKickstartRequests(t *testing.T) {
	raw, err := os.ReadFile(repo("kickstart/kickstart.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ks struct {
		Requests []struct {
			Method   string          `json:"method"`
			URL      string          `json:"url"`
			TenantID string          `json:"tenantId"`
			Body     json.RawMessage `json:"body"`
		} `json:"requests"`
	}
	if err := json.Unmarshal(raw, &ks); err != nil {
		t.Fatalf("kickstart.json is not JSON (FusionAuth allows no comments in it): %v", err)
	}
	need := map[string]bool{"POST /api/key/generate/": false, "PATCH /api/tenant/": false, "POST /api/application/": false, "POST /api/user/registration/": false}
	for _, r := range ks.Requests {
		for prefix := range need {
			if strings.HasPrefix(r.Method+" "+r.URL, prefix) {
				need[prefix] = true
			}
		}
		// Since about FusionAuth 1.67 these answer 401 when a request names a tenant.
		global := strings.HasPrefix(r.URL, "/api/key/generate") || strings.HasPrefix(r.URL, "/api/system-configuration")
		if global && r.TenantID != "" {
			t.Errorf("%s %s has a tenantId: global-only endpoints refuse it", r.Method, r.URL)
		}
	}
	for prefix, found := range need {
		if !found {
			t.Errorf("the kickstart has no %s request", prefix)
		}
	}
	if !strings.Contains(string(raw), `"issuer": "http://localhost:9011"`) {
		t.Error("the tenant issuer is not http://localhost:9011")
	}
}

// dockerIgnored reports whether a .dockerignore's patterns leave path out
// of the build context: a pattern (filepath.Match syntax, "**/" for any
// depth) matching the path or one of its parent directories.
func dockerIgnored(patterns []string, path string) bool {
	parts := strings.Split(path, "/")
	ignored := false
	for _, p := range patterns {
		negate := strings.HasPrefix(p, "!")
		p = strings.TrimPrefix(strings.TrimPrefix(p, "!"), "/")
		anyDepth := strings.HasPrefix(p, "**/")
		p = strings.TrimPrefix(p, "**/")
		for end := 1; end <= len(parts); end++ {
			for start := 0; start < end && (start == 0 || anyDepth); start++ {
				if ok, _ := filepath.Match(p, strings.Join(parts[start:end], "/")); ok {
					ignored = !negate
				}
			}
		}
	}
	return ignored
}

func TestDockerignoreKeepsSecretsAndTestsOut(t *testing.T) {
	raw, err := os.ReadFile(repo(".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	var patterns []string
	for _, line := range strings.Split(string(raw), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			patterns = append(patterns, line)
		}
	}
	for path, out := range map[string]bool{
		".env": true, ".git/config": true, "docs/screenshots/account.png": true, "e2e/testdata/kickstart-short-tokens.json": true,
		"idp/testdata/reusable.json": true, "node_modules/x/index.js": true, "routes/stack_test.go": true,
		"main.go": false, "go.mod": false, "go.sum": false, "idp/login.html": false, "templates/account.html": false,
		"static/app.css": false, "kickstart/kickstart.json": false, "tokens/verify.go": false,
		"e2e/run_test.go": true, "internal/app/app.go": false, "templates/templates.go": false, "static/static.go": false,
	} {
		if got := dockerIgnored(patterns, path); got != out {
			t.Errorf("%s: left out of the build context %v, want %v", path, got, out)
		}
	}
}

// compareGoVersions compares "1.26", "1.26.7" and the like, a missing
// part counting as 0.
func compareGoVersions(a, b string) int {
	pa, pb := strings.Split(a, "."), strings.Split(b, ".")
	for i := range max(len(pa), len(pb)) {
		var x, y int
		if i < len(pa) {
			x, _ = strconv.Atoi(pa[i])
		}
		if i < len(pb) {
			y, _ = strconv.Atoi(pb[i])
		}
		if x != y {
			return cmp.Compare(x, y)
		}
	}
	return 0
}

func TestCompareGoVersions(t *testing.T) {
	for _, tc := range []struct {
		image, mod string
		ok         bool
	}{
		{"1.26.7", "1.26.0", true},
		{"1.26", "1.26.0", true},
		{"1.26.7", "1.26.8", false}, // the old Dockerfile/go.mod pair, had the tag existed
		{"1.25.9", "1.26.0", false},
		{"1.27", "1.26.8", true},
	} {
		if got := compareGoVersions(tc.image, tc.mod) >= 0; got != tc.ok {
			t.Errorf("image %s for go %s: builds %v, want %v", tc.image, tc.mod, got, tc.ok)
		}
	}
}

func TestDockerfileMatchesGoMod(t *testing.T) {
	mod, err := os.ReadFile(repo("go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	goVersion := regexp.MustCompile(`(?m)^go ([0-9.]+)$`).FindSubmatch(mod)
	df, err := os.ReadFile(repo("Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(df)
	from := regexp.MustCompile(`(?m)^FROM golang:([0-9.]+)[^ ]* AS build$`).FindStringSubmatch(text)
	if goVersion == nil || from == nil {
		t.Fatalf("no FROM golang:<version> ... AS build in the Dockerfile (%v), or no go line in go.mod (%s)", from, goVersion)
	}
	// The official images set GOTOOLCHAIN=local: an image older than go.mod's
	// go line refuses to build. A tag without a patch ("1.26") counts as .0.
	if compareGoVersions(from[1], string(goVersion[1])) < 0 {
		t.Fatalf("the Dockerfile builds with Go %s, older than go.mod's go %s: the build would refuse", from[1], goVersion[1])
	}
	if !regexp.MustCompile(`(?m)^RUN CGO_ENABLED=0 go build .* -o \S+ \.$`).MatchString(text) {
		t.Error("the Dockerfile does not build the root package (what `go build .` builds) with CGO off")
	}
	// distroless's nonroot user, by number: Kubernetes' runAsNonRoot
	// refuses to start an image whose user is a name it cannot check.
	if !regexp.MustCompile(`(?m)^USER 65532(:65532)?$`).MatchString(text) || !strings.Contains(text, "distroless/static-debian12:nonroot") {
		t.Error("the final image does not run as distroless's non-root user 65532")
	}
}

// TestComposeScaleProfile checks `docker compose --profile scale up` on
// paper: several app replicas behind a pinned nginx, round-robin with no
// stickiness, sharing .env, FusionAuth and the kickstart, on a port that
// does not clash with the default profile's.
func TestComposeScaleProfile(t *testing.T) {
	if _, err := loadCompose(t).GetService("balancer"); err == nil {
		t.Fatal("plain `docker compose up` starts the balancer: it belongs to the scale profile only")
	}
	opts, err := cli.NewProjectOptions([]string{repo("docker-compose.yml")}, cli.WithWorkingDirectory(repo(".")),
		cli.WithEnvFiles(repo(".env")), cli.WithDotEnv, cli.WithName("changebank"), cli.WithProfiles([]string{"scale"}))
	if err != nil {
		t.Fatal(err)
	}
	p, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("docker compose --profile scale would refuse docker-compose.yml: %v", err)
	}
	app, replica, lb := service(t, p, "app"), service(t, p, "replica"), service(t, p, "balancer")

	if !releaseTag.MatchString(lb.Image) || !strings.HasPrefix(lb.Image, "nginx:") {
		t.Errorf("balancer image %q: want nginx pinned to a release", lb.Image)
	}
	if replica.Deploy == nil || replica.Deploy.Replicas == nil || *replica.Deploy.Replicas < 2 {
		t.Errorf("replica: want several replicas, deploy = %+v", replica.Deploy)
	}
	if len(replica.Ports) != 0 {
		t.Errorf("replicas publish ports %v: several replicas cannot share one host port, and the browser must go through the balancer", replica.Ports)
	}
	if d, ok := replica.DependsOn["fusionauth"]; !ok || d.Condition != types.ServiceConditionHealthy {
		t.Errorf("replica depends_on fusionauth: %+v", d)
	}
	// Same .env, same secret, same provider as the default app.
	for _, k := range []string{"ISSUER", "ISSUER_INTERNAL_URL", "CLIENT_ID", "CLIENT_SECRET", "APP_SECRET_KEY", "REFRESH_TOKEN_TTL", "FUSIONAUTH_API_KEY", "LISTEN_ADDR"} {
		if a, r := app.Environment[k], replica.Environment[k]; a == nil || r == nil || *a != *r {
			t.Errorf("%s differs between app and replica: %v vs %v", k, a, r)
		}
	}

	published := ""
	for _, port := range lb.Ports {
		published = port.Published
	}
	appURL := replica.Environment["APP_URL"]
	if published == "" || published == "8080" || published == "9011" || appURL == nil || *appURL != "http://localhost:"+published {
		t.Errorf("balancer published on %q with replicas' APP_URL %v: want its own port, and APP_URL naming it", published, appURL)
	}

	// The nginx config it mounts: round-robin to the replicas, no stickiness.
	var conf string
	for _, v := range lb.Volumes {
		if v.Target == "/etc/nginx/nginx.conf" && v.ReadOnly {
			raw, err := os.ReadFile(v.Source)
			if err != nil {
				t.Fatalf("balancer config: %v", err)
			}
			conf = string(raw)
		}
	}
	if conf == "" {
		t.Fatalf("the balancer mounts no nginx.conf read-only: %+v", lb.Volumes)
	}
	listen := regexp.MustCompile(`(?m)^\s*listen\s+(\d+)\s*;`).FindStringSubmatch(conf)
	if listen == nil || !slices.ContainsFunc(lb.Ports, func(p types.ServicePortConfig) bool { return strconv.Itoa(int(p.Target)) == listen[1] }) {
		t.Errorf("nginx listens on %v, not on the port compose forwards to: %+v", listen, lb.Ports)
	}
	if !regexp.MustCompile(`(?m)^\s*server\s+replica:8080\b`).MatchString(conf) || !strings.Contains(conf, "proxy_pass http://changebank") {
		t.Error("nginx does not send requests to the replica service on port 8080")
	}
	for _, line := range strings.Split(conf, "\n") {
		line = strings.TrimSpace(line)
		for _, sticky := range []string{"ip_hash", "hash ", "sticky", "least_conn"} {
			if strings.HasPrefix(line, sticky) {
				t.Errorf("nginx balances with %q: want plain round-robin with no stickiness", line)
			}
		}
	}

	// The balancer's URL must be an authorized redirect (login and logout).
	raw, err := os.ReadFile(repo("kickstart/kickstart.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{*appURL + "/callback", *appURL + "/"} {
		if !strings.Contains(string(raw), `"`+want+`"`) {
			t.Errorf("kickstart: %s is not an authorized redirect URL", want)
		}
	}
}

package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/changebank/changebank/tokens"
)

// config is every setting, read once and validated together.
type config struct {
	AppURL            string
	ListenAddr        string
	Issuer            string
	IssuerInternalURL string
	ClientID          string
	ClientSecret      string
	Secrets           [][]byte
	RefreshTTL        time.Duration
	APIKey            string
	KickstartFile     string
	EmbeddedIdP       bool
	LogLevel          slog.Level

	issuerAddr string // host:port the embedded provider listens on
}

// loadConfig reads flags and environment. It reports every bad setting in
// one error, so a user fixes them all in one go.
func loadConfig(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	var cfg config
	fset := flag.NewFlagSet("changebank", flag.ContinueOnError)
	fset.SetOutput(stderr)
	fset.BoolVar(&cfg.EmbeddedIdP, "embedded-idp", false, "also run the embedded FusionAuth stand-in (development and tests only) on ISSUER's port")
	if err := fset.Parse(args); err != nil {
		return cfg, fmt.Errorf("changebank: %w", err)
	}

	var problems []string
	bad := func(name, format string, a ...any) {
		problems = append(problems, name+": "+fmt.Sprintf(format, a...))
	}
	get := func(name, fallback string) string {
		if v := strings.TrimSpace(getenv(name)); v != "" {
			return v
		}
		return fallback
	}

	var appURL, issuer *url.URL
	cfg.AppURL, appURL = baseURL("APP_URL", get("APP_URL", "http://localhost:8080"), bad)
	cfg.Issuer, issuer = baseURL("ISSUER", get("ISSUER", "http://localhost:9011"), bad)
	if v := get("ISSUER_INTERNAL_URL", ""); v != "" {
		cfg.IssuerInternalURL, _ = baseURL("ISSUER_INTERNAL_URL", v, bad)
	}
	cfg.ListenAddr = get("LISTEN_ADDR", "")
	if cfg.ListenAddr == "" && appURL != nil {
		cfg.ListenAddr = ":" + portOf(appURL)
	}
	if issuer != nil {
		cfg.issuerAddr = net.JoinHostPort(issuer.Hostname(), portOf(issuer))
	}
	if cfg.ClientID = get("CLIENT_ID", ""); cfg.ClientID == "" {
		bad("CLIENT_ID", "not set: the FusionAuth application id")
	}
	if cfg.ClientSecret = get("CLIENT_SECRET", ""); cfg.ClientSecret == "" {
		bad("CLIENT_SECRET", "not set: the FusionAuth application's client secret")
	}
	if raw := get("APP_SECRET_KEY", ""); raw == "" {
		bad("APP_SECRET_KEY", "not set: comma-separated secrets of at least %d bytes, newest first (openssl rand -base64 32)", tokens.MinSecretLen)
	} else {
		for i, s := range strings.Split(raw, ",") {
			s = strings.TrimSpace(s)
			if len(s) < tokens.MinSecretLen {
				bad("APP_SECRET_KEY", "secret #%d is %d bytes, want at least %d", i+1, len(s), tokens.MinSecretLen)
				continue
			}
			cfg.Secrets = append(cfg.Secrets, []byte(s))
		}
	}
	ttl, err := time.ParseDuration(get("REFRESH_TOKEN_TTL", "720h"))
	if err != nil || ttl <= 0 {
		bad("REFRESH_TOKEN_TTL", "want a positive duration such as 720h (30 days, the kickstart's refresh token life)")
	}
	cfg.RefreshTTL = ttl
	cfg.APIKey = get("FUSIONAUTH_API_KEY", "")
	cfg.KickstartFile = get("KICKSTART_FILE", "kickstart/kickstart.json")
	if err := cfg.LogLevel.UnmarshalText([]byte(get("LOG_LEVEL", "info"))); err != nil {
		bad("LOG_LEVEL", "want debug, info, warn or error")
	}

	if len(problems) > 0 {
		return cfg, errors.New("changebank: bad configuration (see .env and README):\n  " + strings.Join(problems, "\n  "))
	}
	return cfg, nil
}

// baseURL checks an http(s) URL with no path, query or fragment and
// returns it without a trailing slash.
func baseURL(name, raw string, bad func(name, format string, a ...any)) (string, *url.URL) {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		bad(name, "not a URL")
	case u.Scheme != "http" && u.Scheme != "https":
		bad(name, "%q: want an http:// or https:// URL", raw)
	case u.Host == "":
		bad(name, "%q: no host", raw)
	case strings.TrimSuffix(u.Path, "/") != "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil:
		bad(name, "%q: want scheme://host[:port] only", raw)
	default:
		return strings.TrimSuffix(raw, "/"), u
	}
	return "", nil
}

func portOf(u *url.URL) string {
	if p := u.Port(); p != "" {
		return p
	}
	if u.Scheme == "https" {
		return "443"
	}
	return "80"
}

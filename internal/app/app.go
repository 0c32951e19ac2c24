// Package app is the ChangeBank program behind package main: Run reads
// the configuration, starts the embedded FusionAuth stand-in when asked
// (-embedded-idp), discovers the provider in the background, and serves
// until its context is cancelled. It is a package of its own so that the
// end-to-end tests (package e2e) can run whole instances in process.
package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/changebank/changebank/idp"
	"github.com/changebank/changebank/routes"
	"github.com/changebank/changebank/tokens"
)

// Run is the whole program: main calls it with the command line, the
// environment and a context that ends at SIGINT or SIGTERM; tests call it
// with their own. Every exit path closes what it started: a failing server
// stops the others before Run returns.
func Run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := LoadConfig(args, getenv, stderr)
	if errors.Is(err, errHelp) {
		usage(stdout)
		return nil
	}
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	var services []server
	if cfg.EmbeddedIdP {
		idpService, err := embeddedIdP(cfg, getenv, log)
		if err != nil {
			return err
		}
		defer idpService.ln.Close() // until serve owns it; closing twice is harmless
		services = append(services, idpService)
	}

	client := &http.Client{Timeout: tokens.TokenCallTimeout}
	profile := tokens.Profile{
		Issuer: cfg.Issuer, InternalURL: cfg.IssuerInternalURL, ClientID: cfg.ClientID,
		Audience: cfg.Audience, Scopes: cfg.Scopes, AuthorizeParams: cfg.AuthorizeParams,
		RequireHTTPS: strings.HasPrefix(cfg.AppURL, "https://"),
	}
	provider := tokens.NewProvider(profile, client, time.Now, log)
	sealer, err := tokens.NewSealer(cfg.Secrets...)
	if err != nil {
		return fmt.Errorf("changebank: %w", err)
	}
	csrf, err := tokens.NewCSRF(cfg.Secrets...)
	if err != nil {
		return fmt.Errorf("changebank: %w", err)
	}
	cookies := tokens.NewCookieStore(cfg.AppURL, sealer)
	oidc := tokens.NewClient(provider, tokens.ClientConfig{
		ID: cfg.ClientID, Secret: cfg.ClientSecret, AppURL: cfg.AppURL, APIKey: cfg.APIKey,
	}, client)
	verifier := tokens.NewVerifier(provider, profile, time.Now)
	sessions := tokens.NewManager(cookies, oidc, verifier, cfg.RefreshTTL, time.Now, log)
	var appOpts []routes.Option
	attackerOrigin := ""
	if cfg.AttackerAddr != "" {
		attackerOrigin = "http://" + cfg.AttackerAddr
		appOpts = append(appOpts, routes.WithAttackerPage(attackerOrigin))
	}
	handler, err := routes.New(log, sessions, cookies, verifier, csrf, provider, time.Now, assets, cfg.AppURL, appOpts...)
	if err != nil {
		return fmt.Errorf("changebank: %w", err)
	}
	if cfg.AttackerAddr != "" {
		witness := routes.NewWitness()
		handler = witness.Wrap(handler)
		attacker, err := routes.Attacker(cfg.AppURL, cfg.Issuer, assets, witness)
		if err != nil {
			return fmt.Errorf("changebank: %w", err)
		}
		aln, err := net.Listen("tcp", cfg.AttackerAddr)
		if err != nil {
			return fmt.Errorf("changebank: the attacker page cannot listen on %s (set ATTACKER_ADDR, or leave it empty to turn it off): %w", cfg.AttackerAddr, err)
		}
		defer aln.Close() // until serve owns it
		services = append(services, server{name: "attacker page", srv: newServer(attacker), ln: aln})
		log.Info("attacker page listening: another site, for the cross-site lesson", "url", attackerOrigin)
	}

	ln, err := net.Listen("tcp", cfg.ListenAddr)
	if err != nil {
		return fmt.Errorf("changebank: the app cannot listen on %s (is another ChangeBank running? set APP_URL to another port, such as http://localhost:8081: the app listens on its port unless LISTEN_ADDR says otherwise): %w", cfg.ListenAddr, err)
	}
	services = append(services, server{name: "app", srv: newServer(handler), ln: ln})
	// Discovery starts once every port is held: a port already taken stops
	// the app above before it says anything about the provider.
	go provider.Start(ctx)
	if !cfg.EmbeddedIdP {
		go hintWhileUnreachable(ctx, provider, cfg, log)
	}
	log.Info("ChangeBank listening", "url", cfg.AppURL, "addr", ln.Addr().String(), "issuer", cfg.Issuer)
	fmt.Fprintf(stdout, "ChangeBank is at %s\n", cfg.AppURL)
	if attackerOrigin != "" {
		fmt.Fprintf(stdout, "The attacker page (another site) is at %s/\n", attackerOrigin)
	}
	return serve(ctx, log, services...)
}

// server is an http.Server and the listener it serves on.
type server struct {
	name string
	srv  *http.Server
	ln   net.Listener
}

// serve runs every service until ctx ends or one of them fails, then shuts
// all of them down (gracefully, for at most 10 s) and waits for them.
func serve(ctx context.Context, log *slog.Logger, services ...server) error {
	errc := make(chan error, len(services))
	var wg sync.WaitGroup
	for _, s := range services {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.srv.Serve(s.ln); !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("changebank: %s server: %w", s.name, err)
			}
		}()
	}
	var failed error
	select {
	case failed = <-errc:
		log.Error("a server failed: stopping", "err", failed)
	case <-ctx.Done():
		log.Info("shutting down")
	}
	shutdownCtx, done := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer done()
	var errs []error
	for _, s := range services {
		if err := s.srv.Shutdown(shutdownCtx); err != nil {
			s.srv.Close()
			errs = append(errs, fmt.Errorf("changebank: shutting down the %s server: %w", s.name, err))
		}
	}
	wg.Wait()
	return errors.Join(append([]error{failed}, errs...)...)
}

// newServer wraps a handler with the timeouts a server facing browsers needs.
func newServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      20 * time.Second, // above the token call's bound, so a slow refresh still answers
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    64 << 10, // a session of up to tokens.MaxSessionBytes, with room for the other headers
	}
}

// hintFirst and hintEvery pace the log line that says which provider the
// app cannot reach and how to get one.
const (
	hintFirst = 3 * time.Second
	hintEvery = 30 * time.Second
)

// hintWhileUnreachable logs, until the provider is ready, the URL the app
// is waiting for and the two ways to run a provider: a first-time user who
// typed `go run .` otherwise waits without knowing why.
func hintWhileUnreachable(ctx context.Context, provider *tokens.Provider, cfg Config, log *slog.Logger) {
	wait := hintFirst
	for {
		waitCtx, done := context.WithTimeout(ctx, wait)
		err := provider.WaitReady(waitCtx)
		done()
		if err == nil || ctx.Err() != nil {
			return
		}
		reached := cfg.Issuer
		if cfg.IssuerInternalURL != "" {
			reached = cfg.IssuerInternalURL
		}
		log.Warn("cannot reach the identity provider at "+reached+
			": stop this app and restart it with the built-in stand-in, `go run . -embedded-idp`, or start FusionAuth with `docker compose up`",
			"issuer", cfg.Issuer, "reached_at", reached)
		wait = hintEvery
	}
}

// embeddedIdP prepares the FusionAuth stand-in on the issuer's host and
// port; serve runs it.
func embeddedIdP(cfg Config, getenv func(string) string, log *slog.Logger) (server, error) {
	ks, err := idp.LoadKickstart(cfg.KickstartFile, getenv, log)
	if err != nil {
		return server{}, fmt.Errorf("changebank: %w", err)
	}
	stand, err := idp.New(ks, idp.Options{
		Issuer:            cfg.Issuer,
		ExtraRedirectURLs: []string{cfg.AppURL + "/callback", cfg.AppURL + "/"},
		LogoutURL:         cfg.AppURL + "/logout",
		Log:               log,
	})
	if err != nil {
		return server{}, fmt.Errorf("changebank: %w", err)
	}
	ln, err := net.Listen("tcp", cfg.issuerAddr)
	if err != nil {
		return server{}, fmt.Errorf("changebank: the embedded identity provider cannot listen on %s (is a provider already running there? then use it: drop -embedded-idp; or set ISSUER to another port): %w", cfg.issuerAddr, err)
	}
	log.Info("embedded FusionAuth stand-in listening: in memory, one process, for development and tests only",
		"issuer", stand.Issuer(), "kickstart", cfg.KickstartFile)
	return server{name: "embedded identity provider", srv: newServer(stand.Handler()), ln: ln}, nil
}

// Command changebank is the ChangeBank demo: a Gin web app whose whole
// login session lives in browser cookies, logged in through FusionAuth.
//
// main loads .env and calls run; run reads the configuration, starts the
// embedded FusionAuth stand-in when asked (-embedded-idp), discovers the
// provider in the background, and serves until ctx is cancelled.
package main

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/joho/godotenv"

	"github.com/changebank/changebank/idp"
	"github.com/changebank/changebank/routes"
	"github.com/changebank/changebank/tokens"
)

// assets are the templates and static files, built into the binary.
//
//go:embed templates static
var assets embed.FS

func main() {
	// The real environment wins over .env: godotenv.Load never overrides.
	if err := godotenv.Load(); err != nil && !errors.Is(err, fs.ErrNotExist) {
		fmt.Fprintln(os.Stderr, "changebank: reading .env:", err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// run is the whole program; tests call it with their own args and getenv.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := loadConfig(args, getenv, stderr)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	errc := make(chan error, 2)
	if cfg.EmbeddedIdP {
		idpServer, err := startEmbeddedIdP(ctx, cfg, getenv, log, errc)
		if err != nil {
			return err
		}
		defer idpServer.Close()
	}

	client := &http.Client{Timeout: tokens.TokenCallTimeout}
	provider := tokens.NewProvider(cfg.Issuer, cfg.IssuerInternalURL, client, time.Now, log)
	go provider.Start(ctx)
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
	verifier := tokens.NewVerifier(provider, provider.Issuer(), cfg.ClientID, time.Now)
	sessions := tokens.NewManager(cookies, oidc, verifier, cfg.RefreshTTL, time.Now, log)
	handler, err := routes.New(log, sessions, cookies, verifier, csrf, provider, time.Now, assets, cfg.AppURL)
	if err != nil {
		return fmt.Errorf("changebank: %w", err)
	}

	ln, err := net.Listen("tcp", cfg.ListenAddr)
	if err != nil {
		return fmt.Errorf("changebank: listening on %s: %w", cfg.ListenAddr, err)
	}
	srv := newServer(handler)
	go func() { errc <- srv.Serve(ln) }()
	log.Info("ChangeBank listening", "url", cfg.AppURL, "addr", ln.Addr().String(), "issuer", cfg.Issuer)
	fmt.Fprintf(stdout, "ChangeBank is at %s\n", cfg.AppURL)

	select {
	case err := <-errc:
		return fmt.Errorf("changebank: serving: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, done := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer done()
	log.Info("shutting down")
	return srv.Shutdown(shutdownCtx)
}

// newServer wraps a handler with the timeouts a server facing browsers needs.
func newServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      20 * time.Second, // above the token call's bound, so a slow refresh still answers
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    32 << 10,
	}
}

// startEmbeddedIdP serves the FusionAuth stand-in on the issuer's host and port.
func startEmbeddedIdP(ctx context.Context, cfg config, getenv func(string) string, log *slog.Logger, errc chan<- error) (*http.Server, error) {
	ks, err := idp.LoadKickstart(cfg.KickstartFile, getenv, log)
	if err != nil {
		return nil, fmt.Errorf("changebank: %w", err)
	}
	stand, err := idp.New(ks, idp.Options{
		Issuer:            cfg.Issuer,
		ExtraRedirectURLs: []string{cfg.AppURL + "/callback", cfg.AppURL + "/"},
		Log:               log,
	})
	if err != nil {
		return nil, fmt.Errorf("changebank: %w", err)
	}
	ln, err := net.Listen("tcp", cfg.issuerAddr)
	if err != nil {
		return nil, fmt.Errorf("changebank: the embedded identity provider cannot listen on %s: %w", cfg.issuerAddr, err)
	}
	srv := newServer(stand.Handler())
	go func() {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("embedded identity provider: %w", err)
		}
	}()
	go func() { <-ctx.Done(); srv.Close() }()
	log.Info("embedded FusionAuth stand-in listening: in memory, one process, for development and tests only",
		"issuer", stand.Issuer(), "kickstart", cfg.KickstartFile)
	return srv, nil
}

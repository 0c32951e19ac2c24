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
	"sync"
	"sync/atomic"
	"time"

	"github.com/changebank/changebank/idp"
	"github.com/changebank/changebank/internal/metrics"
	"github.com/changebank/changebank/routes"
	"github.com/changebank/changebank/tokens"
	"github.com/changebank/changebank/tokens/oidc"
)

// ErrInterrupted is the cause main cancels Run's context with on SIGINT
// (Ctrl-C at a terminal): Run then shuts down at once, skipping
// DRAIN_PERIOD. Any other end of the context (main's on SIGTERM, as
// Kubernetes and docker stop send it) drains first.
var ErrInterrupted = errors.New("changebank: interrupted")

// Run is the whole program: main calls it with the command line, the
// environment and a context that ends at SIGINT or SIGTERM; tests call it
// with their own. When ctx ends, the app drains (see serve), then shuts
// down gracefully. Every exit path closes what it started: a failing
// server stops the others before Run returns.
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
	// The app's own work (discovery, key refreshes) lives until serve
	// returns, not until ctx ends: a draining instance still serves.
	life, cancel := context.WithCancel(context.WithoutCancel(ctx))
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

	attackerOrigin := ""
	var aln net.Listener
	if cfg.AttackerAddr != "" {
		attackerOrigin = "http://" + cfg.AttackerAddr
		if aln, err = net.Listen("tcp", cfg.AttackerAddr); err != nil {
			return fmt.Errorf("changebank: the attacker page cannot listen on %s (set ATTACKER_ADDR, or leave it empty to turn it off): %w", cfg.AttackerAddr, err)
		}
		defer aln.Close() // until serve owns it
	}
	ln, err := net.Listen("tcp", cfg.ListenAddr)
	if err != nil {
		return fmt.Errorf("changebank: the app cannot listen on %s (is another ChangeBank running? set APP_URL to another port, such as http://localhost:8081: the app listens on its port unless LISTEN_ADDR says otherwise): %w", cfg.ListenAddr, err)
	}
	defer ln.Close() // until serve owns it
	var mln net.Listener
	if cfg.MetricsAddr != "" {
		if mln, err = net.Listen("tcp", cfg.MetricsAddr); err != nil {
			return fmt.Errorf("changebank: the metrics cannot listen on %s (set METRICS_ADDR to another port, or leave it empty to turn them off): %w", cfg.MetricsAddr, err)
		}
		defer mln.Close() // until serve owns it
	}

	// Discovery starts in New, once every port is held: a port already
	// taken stops the app above before it says anything about the provider.
	tcfg := tokens.Config{
		Issuer: cfg.Issuer, ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret, AppURL: cfg.AppURL, Secrets: cfg.Secrets,
		Audience: cfg.Audience, Scopes: cfg.Scopes, AuthorizeParams: cfg.AuthorizeParams, IssuerInternalURL: cfg.IssuerInternalURL,
		BearerIntrospection: cfg.BearerIntrospection,
		RefreshTokenTTL:     cfg.RefreshTTL, FusionAuthAPIKey: cfg.APIKey, Logger: log,
	}
	var appOpts []routes.Option
	var meters *metrics.Metrics
	if mln != nil {
		meters = metrics.New()
		appOpts = append(appOpts, routes.WithRequestObserver(meters))
		tcfg.Observer = meters
		tcfg.HTTPClient = &http.Client{Transport: meters.ProviderTransport(nil)}
	}
	sessions, err := tokens.New(life, tcfg)
	if err != nil {
		return fmt.Errorf("changebank: %w", err)
	}
	if meters != nil {
		meters.Watch(sessions)
	}
	if attackerOrigin != "" {
		appOpts = append(appOpts, routes.WithAttackerPage(attackerOrigin))
	}
	handler, err := routes.New(log, sessions, time.Now, assets, cfg.AppURL, appOpts...)
	if err != nil {
		return fmt.Errorf("changebank: %w", err)
	}
	if attackerOrigin != "" {
		witness := routes.NewWitness()
		handler = witness.Wrap(handler)
		attacker, err := routes.Attacker(cfg.AppURL, cfg.Issuer, assets, witness)
		if err != nil {
			return fmt.Errorf("changebank: %w", err)
		}
		services = append(services, server{name: "attacker page", srv: newServer(attacker), ln: aln})
		log.Info("attacker page listening: another site, for the cross-site lesson", "url", attackerOrigin)
	}
	draining := new(atomic.Bool)
	services = append(services, server{name: "app", srv: newServer(drained(handler, draining)), ln: ln, draining: draining})
	if mln != nil {
		services = append(services, server{name: "metrics", srv: newServer(metricsMux(meters)), ln: mln})
		log.Info("metrics listening", "url", "http://"+mln.Addr().String()+"/metrics")
	}
	if !cfg.EmbeddedIdP {
		go hintWhileUnreachable(life, sessions.Provider(), cfg, log)
	}
	log.Info("ChangeBank listening", "url", cfg.AppURL, "addr", ln.Addr().String(), "issuer", cfg.Issuer)
	fmt.Fprintf(stdout, "ChangeBank is at %s\n", cfg.AppURL)
	if attackerOrigin != "" {
		fmt.Fprintf(stdout, "The attacker page (another site) is at %s/\n", attackerOrigin)
	}
	return serve(ctx, log, cfg.DrainPeriod, services...)
}

// server is an http.Server and the listener it serves on.
type server struct {
	name     string
	srv      *http.Server
	ln       net.Listener
	draining *atomic.Bool // set when the drain begins; nil: the server has no /readyz
}

// ShutdownBound is how long the graceful shutdown waits for requests in
// flight (a refresh at the provider included) before it closes what is left.
const ShutdownBound = 10 * time.Second

// serve runs every service until ctx ends or one of them fails, then shuts
// all of them down (gracefully, for at most ShutdownBound) and waits for
// them. When ctx ends (unless its cause is ErrInterrupted) it first drains
// for drain: every server keeps serving, new connections included, while
// /readyz answers 503, so that a balancer polling it (a Kubernetes
// Service's endpoints) stops sending requests before the listener closes.
func serve(ctx context.Context, log *slog.Logger, drain time.Duration, services ...server) error {
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
		if drain > 0 && !errors.Is(context.Cause(ctx), ErrInterrupted) {
			for _, s := range services {
				if s.draining != nil {
					s.draining.Store(true)
				}
			}
			log.Info("draining: /readyz answers 503 while requests are still served", "drain_period", drain)
			timer := time.NewTimer(drain)
			select {
			case <-timer.C:
			case failed = <-errc:
				log.Error("a server failed while draining: stopping", "err", failed)
			}
			timer.Stop()
		}
		log.Info("shutting down")
	}
	shutdownCtx, done := context.WithTimeout(context.WithoutCancel(ctx), ShutdownBound)
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

// metricsMux serves the metrics at /metrics and nothing else.
func metricsMux(m *metrics.Metrics) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	return mux
}

// drained answers /readyz with 503 once draining is set, and from then on
// asks every client to close its connection after the answer: a balancer's
// next request then opens a new connection, which it sends to an instance
// still ready. Every other request is served as before.
func drained(next http.Handler, draining *atomic.Bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if draining.Load() {
			w.Header().Set("Connection", "close")
			if r.URL.Path == "/readyz" {
				w.Header().Set("Content-Type", "application/json; charset=utf-8")
				w.WriteHeader(http.StatusServiceUnavailable)
				io.WriteString(w, `{"status":"shutting down"}`)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// newServer wraps a handler with the timeouts a server facing browsers needs.
func newServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      20 * time.Second, // above the token call's bound, so a slow refresh still answers
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    64 << 10, // a session of up to cookie.MaxSessionBytes, with room for the other headers
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
func hintWhileUnreachable(ctx context.Context, provider *oidc.Provider, cfg Config, log *slog.Logger) {
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

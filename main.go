// Command changebank is the ChangeBank demo: a Gin web app whose whole
// login session lives in browser cookies, logged in through an OpenID
// provider: FusionAuth by default, any certified one by settings.
//
// main loads .env and calls app.Run until SIGINT or SIGTERM; package
// internal/app is the program itself. SIGTERM (Kubernetes, docker stop)
// drains for DRAIN_PERIOD first; Ctrl-C does not, and a second signal of
// either kind ends the process at once.
package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/signal"
	"syscall"

	"github.com/joho/godotenv"

	"github.com/changebank/changebank/internal/app"
)

func main() {
	// The real environment wins over .env: godotenv.Load never overrides.
	if err := godotenv.Load(); err != nil && !errors.Is(err, fs.ErrNotExist) {
		fmt.Fprintln(os.Stderr, "changebank: reading .env:", err)
		os.Exit(1)
	}
	ctx, stop := context.WithCancelCause(context.Background())
	defer stop(nil)
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM)
	go func() {
		sig := <-signals
		// A second signal ends the process at once (the default again): a
		// person pressing Ctrl-C twice does not wait for the drain.
		signal.Reset(os.Interrupt, syscall.SIGTERM)
		if sig == os.Interrupt {
			stop(app.ErrInterrupted) // Ctrl-C: shut down without the drain period
		} else {
			stop(context.Canceled) // SIGTERM: drain, then shut down
		}
	}()
	if err := app.Run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

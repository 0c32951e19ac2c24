// Command changebank is the ChangeBank demo: a Gin web app whose whole
// login session lives in browser cookies, logged in through an OpenID
// provider: FusionAuth by default, any certified one by settings.
//
// main loads .env and calls app.Run until SIGINT or SIGTERM; package
// internal/app is the program itself.
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
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := app.Run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

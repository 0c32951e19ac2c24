// Command nethttp is the smallest app on package tokens: a net/http server
// whose whole login session lives in cookies, logged in through an OpenID
// provider. Its settings come from the environment, with defaults for the
// FusionAuth stand-in (go run . -embedded-idp) once the stand-in's
// kickstart lists this app's callback, http://localhost:3000/callback.
package main

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"time"

	"github.com/changebank/changebank/tokens"
)

var page = template.Must(template.New("account").Parse( // html/template
	`<p>Hello, {{.User.Name}} ({{.User.Email}})</p>
	 <form method="post" action="/logout"><input type="hidden" name="csrf_token" value="{{.CSRF}}"><button>Log out</button></form>`))

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	setting := func(name, fallback string) string {
		if v := os.Getenv(name); v != "" {
			return v
		}
		return fallback
	}
	if err := run(ctx, setting); err != nil {
		fmt.Fprintln(os.Stderr, "nethttp:", err)
		os.Exit(1)
	}
}

// run serves until ctx ends, with the settings setting reads.
func run(ctx context.Context, setting func(name, fallback string) string) error {
	sessions, err := tokens.New(ctx, tokens.Config{
		Issuer:       setting("ISSUER", "http://localhost:9011"),
		ClientID:     setting("CLIENT_ID", "e9fdb985-9173-4e01-9d73-ac2d60d1dc8e"),
		ClientSecret: setting("CLIENT_SECRET", "changebank-demo-client-secret-not-for-production"),
		AppURL:       setting("APP_URL", "http://localhost:3000"), // the callback is AppURL + "/callback"
		Secrets:      []string{setting("APP_SECRET_KEY", "changebank-demo-cookie-secret-not-for-production-0001")},
	})
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /login", sessions.Login) // ?return_to=/path, same-site paths only
	mux.HandleFunc("GET /callback", sessions.Callback)
	mux.HandleFunc("POST /logout", sessions.Logout) // form field csrf_token; then the provider's end-session
	mux.Handle("GET /account", sessions.Require(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		page.Execute(w, tokens.From(r.Context())) // *tokens.Session, nil outside Require
	})))

	app, err := url.Parse(setting("APP_URL", "http://localhost:3000"))
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", setting("LISTEN_ADDR", ":"+app.Port()))
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, MaxHeaderBytes: 64 << 10}
	go func() { <-ctx.Done(); srv.Close() }()
	fmt.Printf("listening on %s: open %s/account\n", ln.Addr(), app)
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

package tokens_test

import (
	"context"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"

	"github.com/changebank/changebank/internal/oidctest"
	"github.com/changebank/changebank/tokens"
)

// exampleT lets the example start the stand-in with oidctest's helpers,
// which report a failure by panicking here.
type exampleT struct{ cleanups []func() }

func (*exampleT) Helper()            {}
func (*exampleT) Fatal(a ...any)     { panic(fmt.Sprint(a...)) }
func (t *exampleT) Cleanup(f func()) { t.cleanups = append(t.cleanups, f) }

// A net/http app whose whole login session lives in cookies: the front
// door's handlers and Require, against the FusionAuth stand-in with the
// project's kickstart. A browser asks for /account, is sent to log in,
// logs in, and logs out.
func Example() {
	t := &exampleT{}
	defer func() {
		for _, f := range t.cleanups {
			f()
		}
	}()
	const clientID = "e9fdb985-9173-4e01-9d73-ac2d60d1dc8e"
	app := httptest.NewUnstartedServer(nil)
	appURL := "http://" + app.Listener.Addr().String()
	provider := oidctest.NewStandIn(t, "../kickstart/kickstart.json", clientID, appURL)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	var page = template.Must(template.New("account").Parse( // html/template
		`<p>Hello, {{.User.Name}} ({{.User.Email}})</p>
	 <form method="post" action="/logout"><input type="hidden" name="csrf_token" value="{{.CSRF}}"><button>Log out</button></form>`))

	sessions, err := tokens.New(ctx, tokens.Config{
		Issuer:       provider.URL,
		ClientID:     clientID,
		ClientSecret: provider.ClientSecret,
		AppURL:       appURL, // the callback is AppURL + "/callback"
		Secrets:      []string{"a secret of 32 bytes or more, for this example"},
		Logger:       slog.New(slog.DiscardHandler),
	})
	if err != nil {
		panic(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /login", sessions.Login) // ?return_to=/path, same-site paths only
	mux.HandleFunc("GET /callback", sessions.Callback)
	mux.HandleFunc("POST /logout", sessions.Logout) // form field csrf_token; then the provider's end-session
	mux.Handle("GET /account", sessions.Require(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		page.Execute(w, tokens.From(r.Context())) // *tokens.Session, nil outside Require
	})))
	app.Config.Handler = mux
	app.Start()
	defer app.Close()
	if err := sessions.Provider().WaitReady(ctx); err != nil {
		panic(err)
	}

	browser := oidctest.NewBrowser()
	account, err := browser.Get(appURL + "/account") // to /login, the stand-in's login form, /callback, /account
	if err != nil {
		panic(err)
	}
	fmt.Println(strings.SplitN(account.Body, "\n", 2)[0])
	csrf := account.Body[strings.Index(account.Body, `value="`)+len(`value="`):]
	csrf = csrf[:strings.Index(csrf, `"`)]
	out, err := browser.Post(appURL+"/logout", url.Values{"csrf_token": {csrf}})
	if err != nil {
		panic(err)
	}
	end, _ := url.Parse(out.Location)
	fmt.Println(out.Status, "to", end.Path)
	again, err := browser.Request(http.MethodGet, appURL+"/account", nil)
	if err != nil {
		panic(err)
	}
	fmt.Println(again.Status, "to", again.Location)
	// Output:
	// <p>Hello, Richard Hendricks (richard@example.com)</p>
	// 303 to /oauth2/logout
	// 303 to /login?return_to=%2Faccount
}

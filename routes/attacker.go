package routes

import (
	"encoding/json"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"

	"github.com/changebank/changebank/tokens/cookie"
)

// The attacker page is a second origin this app serves on another loopback
// address (another site: 127.0.0.1 when the app is localhost). When the
// learner opens it and clicks, its script tries what a malicious site
// would, against the app, in the learner's own browser; a Witness on the
// app records what each attempt looked like on arrival, and the page
// reports which defence stopped it.

// attempts are what the attacker page tries, by name.
var attempts = []string{"form-post", "refresh-post", "fetch-api", "img-logout", "frame-account", "navigate-account"}

// probeParam marks a request the attacker page made; its value names the attempt.
const probeParam = "probe"

var probeRE = regexp.MustCompile(`^[A-Za-z0-9]{8,40}$`)

// witnessed is what the app saw of one attempt.
type witnessed struct {
	Method         string   `json:"method"`
	Path           string   `json:"path"`
	SessionCookies []string `json:"session_cookies"` // the names of ChangeBank's session cookies the browser sent
	Origin         string   `json:"origin"`
	SecFetchSite   string   `json:"sec_fetch_site"`
	Status         int      `json:"status"`
	AllowOrigin    string   `json:"allow_origin"`    // the answer's Access-Control-Allow-Origin
	FrameAncestors bool     `json:"frame_ancestors"` // the answer forbids framing
	ToLogin        bool     `json:"to_login"`        // the answer redirected to the app's /login
}

// maxWitnessed bounds the Witness's memory.
const maxWitnessed = 64

// A Witness records the requests the attacker page makes to the app
// (those with a probe query parameter), keeping the last few in memory:
// an aid for the lesson, not session state.
type Witness struct {
	mu    sync.Mutex
	order []string
	seen  map[string]witnessed
}

// NewWitness returns an empty Witness.
func NewWitness() *Witness { return &Witness{seen: map[string]witnessed{}} }

// Wrap returns the app's handler h, recording what arrives with a probe.
func (wt *Witness) Wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		probe := r.URL.Query().Get(probeParam)
		if !probeRE.MatchString(probe) {
			h.ServeHTTP(w, r)
			return
		}
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		seen := witnessed{Method: r.Method, Path: r.URL.Path, Origin: r.Header.Get("Origin"), SecFetchSite: r.Header.Get("Sec-Fetch-Site"),
			SessionCookies: []string{}}
		for _, c := range r.Cookies() {
			base := strings.TrimPrefix(c.Name, "__Host-")
			if slices.Contains([]string{cookie.Access, cookie.Refresh, cookie.UserInfo}, base) {
				seen.SessionCookies = append(seen.SessionCookies, c.Name)
			}
		}
		h.ServeHTTP(rec, r)
		seen.Status = rec.status
		seen.AllowOrigin = w.Header().Get("Access-Control-Allow-Origin")
		seen.FrameAncestors = strings.Contains(w.Header().Get("Content-Security-Policy"), "frame-ancestors 'none'")
		seen.ToLogin = strings.HasPrefix(w.Header().Get("Location"), "/login")
		wt.mu.Lock()
		defer wt.mu.Unlock()
		// The first arrival is the attack; a later one (the page it was
		// redirected to, carrying the probe on) is not.
		if _, again := wt.seen[probe]; again {
			return
		}
		wt.order = append(wt.order, probe)
		wt.seen[probe] = seen
		if len(wt.order) > maxWitnessed {
			delete(wt.seen, wt.order[0])
			wt.order = wt.order[1:]
		}
	})
}

func (wt *Witness) get(probe string) (witnessed, bool) {
	wt.mu.Lock()
	defer wt.mu.Unlock()
	s, ok := wt.seen[probe]
	return s, ok
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

// verdict is the attacker page's report on one attempt.
type verdict struct {
	Attempt   string     `json:"attempt"`
	Arrived   bool       `json:"arrived"`
	Seen      *witnessed `json:"seen,omitempty"`
	Stopped   bool       `json:"stopped"`    // no harm done
	StoppedBy []string   `json:"stopped_by"` // the defences that acted
	Text      string     `json:"text"`
}

// judge says which defence stopped an attempt, from what the app saw.
func judge(attempt string, seen witnessed, arrived bool, appOrigin string) verdict {
	v := verdict{Attempt: attempt, Arrived: arrived, StoppedBy: []string{}}
	if !arrived {
		v.Stopped = true
		v.Text = "The request never reached the app (or not yet): the browser did not send it."
		return v
	}
	v.Seen = &seen
	cookies := len(seen.SessionCookies) > 0
	originBad := seen.Origin != "" && seen.Origin != appOrigin
	switch attempt {
	case "form-post", "refresh-post":
		switch {
		case !cookies:
			v.Stopped = true
			v.StoppedBy = append(v.StoppedBy, "SameSite=Lax")
			v.Text = fmt.Sprintf("The browser sent none of ChangeBank's cookies with another site's form post (SameSite=Lax), so the app saw no session and answered %d, sending it to log in. Had the cookies gone along, the Origin check (Origin %q is not this app's) and the missing CSRF token would each have refused it.", seen.Status, seen.Origin)
			if seen.ToLogin {
				v.Text += " " + loginFramed
			}
		case seen.Status == http.StatusForbidden:
			v.Stopped = true
			if originBad || seen.SecFetchSite == "cross-site" {
				v.StoppedBy = append(v.StoppedBy, "Origin check")
			}
			v.StoppedBy = append(v.StoppedBy, "CSRF token")
			v.Text = fmt.Sprintf("The cookies went along, but the app refused the form (403): it came from %q, not from this app, and carried no CSRF token.", seen.Origin)
			if seen.FrameAncestors {
				v.Text += " The refusal page does not show in this page's hidden frame either (frame-ancestors 'none': the frame-ancestors error in the browser's console)."
			}
		default:
			v.Text = fmt.Sprintf("Not stopped: the app answered %d with the session's cookies.", seen.Status)
		}
	case "fetch-api":
		v.Stopped = true
		if !cookies {
			v.StoppedBy = append(v.StoppedBy, "SameSite=Lax")
		}
		if seen.AllowOrigin == "" {
			v.StoppedBy = append(v.StoppedBy, "CORS")
		}
		v.Text = fmt.Sprintf("The app answered %d. ", seen.Status)
		if !cookies {
			v.Text += "The browser sent no session cookie with a cross-site fetch (SameSite=Lax), so the app did not know you. "
		}
		if seen.AllowOrigin == "" {
			v.Text += "The answer carries no Access-Control-Allow-Origin, so the browser would not let this page read it anyway (CORS): that refusal is the CORS error in the browser's console."
		} else {
			v.Stopped = false
			v.Text += "Not stopped: the answer allows this origin to read it."
		}
	case "img-logout":
		// Nothing in the app refuses it; whether it logged the user out
		// depends on the cookies alone, and the card says which.
		if cookies {
			v.Text = "Not stopped: nothing in the app refuses a GET /logout, and this one carried your cookies, so it ended your ChangeBank session. "
		} else {
			v.Stopped = true
			v.StoppedBy = append(v.StoppedBy, "SameSite=Lax")
			v.Text = "Nothing in the app refuses a GET /logout, but this one carried none of your cookies (SameSite=Lax keeps them off another site's images), and a browser does not store SameSite=Lax cookies from a cross-site image's answer, so you are still logged in; a link to /logout that you follow would log you out. "
		}
		v.Text += "That is accepted: a provider's front-channel logout (FusionAuth's logout page, the stand-in's) loads this address as a GET in a frame, so it cannot ask for a token, and the worst an attacker gets is a logout."
	case "frame-account":
		v.Stopped = true
		if !cookies {
			v.StoppedBy = append(v.StoppedBy, "SameSite=Lax")
		}
		if seen.FrameAncestors {
			v.StoppedBy = append(v.StoppedBy, "frame-ancestors")
		}
		if !cookies && seen.ToLogin {
			v.Text = fmt.Sprintf("In another site's frame the browser sent no session cookie (SameSite=Lax), so the app did not know you and answered %d, sending the frame to log in. %s Had the cookies gone along, the account page itself carries frame-ancestors 'none': no clickjacking.",
				seen.Status, loginFramed)
		} else {
			v.Text = fmt.Sprintf("In another site's frame the browser sent %s, and the app answered %d with frame-ancestors 'none', so the browser will not show ChangeBank inside another site's page (the frame-ancestors error in the browser's console): no clickjacking.",
				cookieWords(cookies), seen.Status)
		}
	case "navigate-account":
		v.Stopped = true
		v.StoppedBy = append(v.StoppedBy, "same-origin policy")
		v.Text = fmt.Sprintf("A top-level navigation carries the cookies (SameSite=Lax allows it; the browser sent %s) and the app answered %d: the account opened, in its own window. No harm: GET /account changes nothing, and the same-origin policy keeps this page from reading it.",
			cookieWords(cookies), seen.Status)
	}
	return v
}

// loginFramed says what a hidden frame sent to the app's /login shows: the
// provider's login page, which refuses frames as the app's pages do. The
// browser's console reports that refusal as an error, so the card names it.
const loginFramed = "The frame went on to the identity provider's login page, which refuses to show inside another site's page: that refusal is the frame-ancestors error in the browser's console."

func cookieWords(sent bool) string {
	if sent {
		return "the session cookies"
	}
	return "no session cookie"
}

// Attacker returns the attacker origin's handler: the page, its script,
// and the reports it reads, for the app at appURL as wt saw it. issuer is
// the provider's URL: the app sends the page's frames and forms on to its
// login page, as it would a real attacker's, and the page's own policy lets
// them go there, so the refusals the learner sees are the app's and the
// provider's, never this page's.
func Attacker(appURL, issuer string, assets fs.FS, wt *Witness) (http.Handler, error) {
	page, err := template.ParseFS(assets, "templates/attacker.html")
	if err != nil {
		return nil, fmt.Errorf("routes: template attacker: %w", err)
	}
	script, err := fs.ReadFile(assets, "static/js/attacker.js")
	if err != nil {
		return nil, fmt.Errorf("routes: attacker script: %w", err)
	}
	icon, err := fs.ReadFile(assets, "static/img/attacker.svg")
	if err != nil {
		return nil, fmt.Errorf("routes: attacker icon: %w", err)
	}
	provider, err := url.Parse(issuer)
	if err != nil || provider.Host == "" {
		return nil, fmt.Errorf("routes: the attacker page needs the provider's URL, got %q", issuer)
	}
	followed := appURL + " " + provider.Scheme + "://" + provider.Host
	csp := strings.Join([]string{
		"default-src 'self'",
		"script-src 'self'",
		"style-src 'self' " + appURL,
		"img-src 'self' " + appURL,
		"connect-src 'self' " + appURL,
		"frame-src " + followed,
		"form-action " + followed,
		"base-uri 'none'",
	}, "; ")
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", csp)
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if err := page.Execute(w, struct{ App string }{appURL}); err != nil {
			http.Error(w, "The attacker page could not be shown.", http.StatusInternalServerError)
		}
	})
	mux.HandleFunc("GET /attacker.js", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
		w.Write(script)
	})
	mux.HandleFunc("GET /favicon.svg", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "image/svg+xml")
		w.Write(icon)
	})
	mux.HandleFunc("GET /report", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		probe, attempt := r.URL.Query().Get(probeParam), r.URL.Query().Get("attempt")
		if !probeRE.MatchString(probe) || !slices.Contains(attempts, attempt) {
			w.WriteHeader(http.StatusBadRequest)
			json.NewEncoder(w).Encode(map[string]string{"error": "want probe (8-40 letters and digits) and a known attempt"})
			return
		}
		seen, ok := wt.get(probe)
		json.NewEncoder(w).Encode(judge(attempt, seen, ok, appURL))
	})
	return mux, nil
}

package idp

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"regexp"
	"strings"
	"time"
)

// Kickstart is what the stand-in takes from a FusionAuth kickstart file:
// API keys, signing keys, the tenant's issuer, applications and users.
type Kickstart struct {
	APIKeys []string
	Issuer  string
	// TenantGracePeriod is the tenant's one-time-use grace period, for
	// applications that do not override the tenant's jwtConfiguration.
	TenantGracePeriod time.Duration
	SigningKeys       []KeySpec
	Applications      map[string]*Application // by id
	Users             []*User
}

// KeySpec is a key to generate, from POST /api/key/generate/{id}.
type KeySpec struct {
	ID        string
	Algorithm string
	Length    int
}

// Application is a FusionAuth application's OAuth settings.
type Application struct {
	ID                     string
	Name                   string
	ClientSecret           string
	RedirectURLs           []string
	LogoutURL              string
	EnabledGrants          []string
	GenerateRefreshTokens  bool
	RequireRegistration    bool
	PKCEPolicy             string // Required | NotRequired | NotRequiredWhenUsingClientAuthentication
	ClientAuthPolicy       string // Required | NotRequired | NotRequiredWhenUsingPKCE
	AccessTokenKeyID       string
	IDTokenKeyID           string
	AccessTokenTTL         time.Duration
	RefreshTokenTTL        time.Duration
	RefreshTokenUsage      string // Reusable | OneTimeUse
	RefreshTokenExpiration string // Fixed | SlidingWindow | SlidingWindowWithMaximumLifetime
	// RefreshGracePeriod is how long a spent one-time-use refresh token may
	// still be redeemed (for the current one): the application's or the
	// tenant's refreshTokenOneTimeUseConfiguration.gracePeriodInSeconds.
	RefreshGracePeriod time.Duration
	ownJWTConfig       bool // jwtConfiguration.enabled: the tenant's settings do not apply
}

// User is a seeded user and the applications they are registered to.
type User struct {
	ID            string
	Email         string
	Password      string
	FirstName     string
	LastName      string
	FullName      string // FusionAuth's stored fullName: the only source of the name claim
	BirthDate     string
	Registrations map[string][]string // application id → roles
}

// FusionAuth's defaults, used where a kickstart file leaves a field out.
const (
	defaultIssuer          = "acme.com"
	defaultAccessTokenTTL  = 3600 * time.Second
	defaultRefreshTokenTTL = 43200 * time.Minute
	// FusionAuth's own application, which kickstart files may register users to.
	fusionAuthApplicationID = "3c219e58-ed0e-4b18-ad48-f4f92793ae32"
)

// LoadKickstart reads and interprets a kickstart file. getenv answers #{ENV.X}.
func LoadKickstart(path string, getenv func(string) string, log *slog.Logger) (*Kickstart, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("idp: kickstart %s: %w", path, err)
	}
	ks, err := ParseKickstart(data, getenv, log)
	if err != nil {
		return nil, fmt.Errorf("idp: kickstart %s: %w", path, err)
	}
	return ks, nil
}

type kickstartFile struct {
	Variables map[string]string `json:"variables"`
	APIKeys   []struct {
		Key string `json:"key"`
	} `json:"apiKeys"`
	Requests []struct {
		Method string          `json:"method"`
		URL    string          `json:"url"`
		Body   json.RawMessage `json:"body"`
	} `json:"requests"`
}

var reference = regexp.MustCompile(`#\{([^}]*)\}`)

// ParseKickstart interprets the text of a kickstart file.
func ParseKickstart(data []byte, getenv func(string) string, log *slog.Logger) (*Kickstart, error) {
	var raw kickstartFile
	if err := strictUnmarshal(data, &raw); err != nil {
		return nil, err
	}
	vars := map[string]string{
		"FUSIONAUTH_APPLICATION_ID": fusionAuthApplicationID,
		"FUSIONAUTH_TENANT_ID":      newUUID(),
	}
	// Variables may use UUID() and ENV.X, but not each other.
	var errs []string
	resolve := func(name string) string {
		switch {
		case name == "UUID()":
			return newUUID()
		case strings.HasPrefix(name, "ENV."):
			return getenv(strings.TrimPrefix(name, "ENV."))
		}
		if v, ok := vars[name]; ok {
			return v
		}
		errs = append(errs, fmt.Sprintf("unknown variable #{%s}", name))
		return ""
	}
	for name, v := range raw.Variables {
		vars[name] = reference.ReplaceAllStringFunc(v, func(m string) string {
			n := m[2 : len(m)-1]
			if n == "UUID()" || strings.HasPrefix(n, "ENV.") {
				return resolve(n)
			}
			errs = append(errs, fmt.Sprintf("variable %q refers to #{%s}: variables may only use UUID() and ENV", name, n))
			return ""
		})
	}
	// Substitute everywhere else, escaping for JSON strings, then parse again.
	substituted := reference.ReplaceAllFunc(data, func(m []byte) []byte {
		v, _ := json.Marshal(resolve(string(m[2 : len(m)-1])))
		return v[1 : len(v)-1]
	})
	if len(errs) > 0 {
		return nil, fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	if err := strictUnmarshal(substituted, &raw); err != nil {
		return nil, err
	}

	ks := &Kickstart{Issuer: defaultIssuer, Applications: map[string]*Application{}}
	for _, k := range raw.APIKeys {
		if k.Key == "" {
			return nil, fmt.Errorf("apiKeys: an entry has no key")
		}
		ks.APIKeys = append(ks.APIKeys, k.Key)
	}
	users := map[string]*User{}
	for i, req := range raw.Requests {
		handled, err := ks.apply(req.Method, req.URL, req.Body, users)
		if err != nil {
			return nil, fmt.Errorf("requests[%d] %s %s: %w", i, req.Method, req.URL, err)
		}
		if !handled {
			log.Info("kickstart request ignored by the stand-in", "method", req.Method, "url", req.URL)
		}
	}
	if len(ks.SigningKeys) == 0 {
		return nil, fmt.Errorf("no POST /api/key/generate request: nothing to sign tokens with")
	}
	if len(ks.Applications) == 0 {
		return nil, fmt.Errorf("no POST /api/application request: no client to log in to")
	}
	for _, app := range ks.Applications {
		if !app.ownJWTConfig {
			app.RefreshGracePeriod = ks.TenantGracePeriod
		}
		for _, id := range []string{app.AccessTokenKeyID, app.IDTokenKeyID} {
			if id != "" && !ks.hasKey(id) {
				return nil, fmt.Errorf("application %s signs with key %s, which no request generates", app.ID, id)
			}
		}
	}
	return ks, nil
}

func strictUnmarshal(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("not valid JSON: %w", err)
	}
	if dec.More() {
		return fmt.Errorf("not valid JSON: text after the top-level object")
	}
	return nil
}

func (ks *Kickstart) hasKey(id string) bool {
	for _, k := range ks.SigningKeys {
		if k.ID == id {
			return true
		}
	}
	return false
}

// apply interprets one request and reports whether the stand-in
// understands it; those it does not are left alone (the caller logs them).
func (ks *Kickstart) apply(method, url string, body json.RawMessage, users map[string]*User) (bool, error) {
	method = strings.ToUpper(method)
	id := url[strings.LastIndex(url, "/")+1:]
	switch {
	case method == "POST" && strings.HasPrefix(url, "/api/key/generate/"):
		var b struct {
			Key struct {
				Algorithm string `json:"algorithm"`
				Length    int    `json:"length"`
			} `json:"key"`
		}
		if err := json.Unmarshal(body, &b); err != nil {
			return true, err
		}
		if b.Key.Algorithm != "RS256" {
			return true, fmt.Errorf("key algorithm %q: the stand-in generates RS256 keys only", b.Key.Algorithm)
		}
		if b.Key.Length == 0 {
			return true, fmt.Errorf("key.length is required for an RSA key (2048 or more)")
		}
		if b.Key.Length < 2048 {
			return true, fmt.Errorf("key length %d: at least 2048", b.Key.Length)
		}
		ks.SigningKeys = append(ks.SigningKeys, KeySpec{ID: id, Algorithm: b.Key.Algorithm, Length: b.Key.Length})
	case method == "PATCH" && strings.HasPrefix(url, "/api/tenant/"):
		var b struct {
			Tenant struct {
				Issuer           string           `json:"issuer"`
				JWTConfiguration oneTimeUseConfig `json:"jwtConfiguration"`
			} `json:"tenant"`
		}
		if err := json.Unmarshal(body, &b); err != nil {
			return true, err
		}
		if b.Tenant.Issuer != "" {
			ks.Issuer = b.Tenant.Issuer
		}
		if g := b.Tenant.JWTConfiguration.RefreshTokenOneTimeUseConfiguration.GracePeriodInSeconds; g != nil {
			d, err := gracePeriod(*g)
			if err != nil {
				return true, err
			}
			ks.TenantGracePeriod = d
		}
	case method == "POST" && strings.HasPrefix(url, "/api/application/"):
		app, err := parseApplication(id, body)
		if err != nil {
			return true, err
		}
		ks.Applications[app.ID] = app
	case method == "POST" && isUserCreate(url):
		if id == "registration" || id == "user" {
			id = ""
		}
		return true, ks.applyUser(id, body, users)
	default:
		return false, nil
	}
	return true, nil
}

// isUserCreate reports whether url is one of the user APIs that create a
// user or a registration: /api/user[/{id}], /api/user/registration[/{id}].
// Others under /api/user (import, bulk, ...) are not understood.
func isUserCreate(url string) bool {
	rest, ok := strings.CutPrefix(url, "/api/user")
	if !ok {
		return false
	}
	rest = strings.TrimPrefix(rest, "/registration")
	return rest == "" || (strings.HasPrefix(rest, "/") && looksLikeUUID(strings.ToLower(rest[1:])))
}

func parseApplication(id string, body json.RawMessage) (*Application, error) {
	var b struct {
		Application struct {
			Name               string `json:"name"`
			OAuthConfiguration struct {
				ClientSecret                  string   `json:"clientSecret"`
				AuthorizedRedirectURLs        []string `json:"authorizedRedirectURLs"`
				LogoutURL                     string   `json:"logoutURL"`
				EnabledGrants                 []string `json:"enabledGrants"`
				GenerateRefreshTokens         bool     `json:"generateRefreshTokens"`
				RequireRegistration           bool     `json:"requireRegistration"`
				ProofKeyForCodeExchangePolicy string   `json:"proofKeyForCodeExchangePolicy"`
				ClientAuthenticationPolicy    string   `json:"clientAuthenticationPolicy"`
			} `json:"oauthConfiguration"`
			JWTConfiguration struct {
				Enabled                         bool   `json:"enabled"`
				AccessTokenKeyID                string `json:"accessTokenKeyId"`
				IDTokenKeyID                    string `json:"idTokenKeyId"`
				TimeToLiveInSeconds             int    `json:"timeToLiveInSeconds"`
				RefreshTokenTimeToLiveInMinutes int    `json:"refreshTokenTimeToLiveInMinutes"`
				RefreshTokenUsagePolicy         string `json:"refreshTokenUsagePolicy"`
				RefreshTokenExpirationPolicy    string `json:"refreshTokenExpirationPolicy"`
				oneTimeUseConfig
			} `json:"jwtConfiguration"`
		} `json:"application"`
	}
	if err := json.Unmarshal(body, &b); err != nil {
		return nil, err
	}
	// FusionAuth takes a UUID in either case (the Flask quickstart uses an
	// upper-case one) and writes it in lower case.
	id = strings.ToLower(id)
	if !looksLikeUUID(id) {
		return nil, fmt.Errorf("application id %q is not a UUID", id)
	}
	a, oc, jc := b.Application, b.Application.OAuthConfiguration, b.Application.JWTConfiguration
	app := &Application{
		ID: id, Name: a.Name, ClientSecret: oc.ClientSecret, RedirectURLs: oc.AuthorizedRedirectURLs,
		LogoutURL: oc.LogoutURL, EnabledGrants: oc.EnabledGrants, GenerateRefreshTokens: oc.GenerateRefreshTokens,
		RequireRegistration: oc.RequireRegistration, PKCEPolicy: or(oc.ProofKeyForCodeExchangePolicy, "NotRequired"),
		ClientAuthPolicy: or(oc.ClientAuthenticationPolicy, "Required"),
		AccessTokenTTL:   defaultAccessTokenTTL, RefreshTokenTTL: defaultRefreshTokenTTL,
		RefreshTokenUsage: "Reusable", RefreshTokenExpiration: "Fixed",
	}
	if jc.Enabled {
		// FusionAuth wants both lives set when the application overrides the tenant.
		if jc.TimeToLiveInSeconds <= 0 || jc.RefreshTokenTimeToLiveInMinutes <= 0 {
			return nil, fmt.Errorf("jwtConfiguration is enabled: set timeToLiveInSeconds and refreshTokenTimeToLiveInMinutes")
		}
		app.AccessTokenKeyID, app.IDTokenKeyID = jc.AccessTokenKeyID, jc.IDTokenKeyID
		app.AccessTokenTTL = time.Duration(jc.TimeToLiveInSeconds) * time.Second
		app.RefreshTokenTTL = time.Duration(jc.RefreshTokenTimeToLiveInMinutes) * time.Minute
		app.RefreshTokenUsage = or(jc.RefreshTokenUsagePolicy, app.RefreshTokenUsage)
		app.RefreshTokenExpiration = or(jc.RefreshTokenExpirationPolicy, app.RefreshTokenExpiration)
		app.ownJWTConfig = true
		if g := jc.RefreshTokenOneTimeUseConfiguration.GracePeriodInSeconds; g != nil {
			d, err := gracePeriod(*g)
			if err != nil {
				return nil, err
			}
			app.RefreshGracePeriod = d
		}
	}
	if app.RefreshTokenUsage != "Reusable" && app.RefreshTokenUsage != "OneTimeUse" {
		return nil, fmt.Errorf("refreshTokenUsagePolicy %q: want Reusable or OneTimeUse", app.RefreshTokenUsage)
	}
	return app, nil
}

// oneTimeUseConfig is the grace period's place in a jwtConfiguration.
type oneTimeUseConfig struct {
	RefreshTokenOneTimeUseConfiguration struct {
		GracePeriodInSeconds *int `json:"gracePeriodInSeconds"`
	} `json:"refreshTokenOneTimeUseConfiguration"`
}

// gracePeriod checks gracePeriodInSeconds as FusionAuth's API does: 0 (none,
// the default) or between 1 second and a day.
func gracePeriod(seconds int) (time.Duration, error) {
	if seconds < 0 || seconds >= 86400 {
		return 0, fmt.Errorf("refreshTokenOneTimeUseConfiguration.gracePeriodInSeconds %d: want 0 (none) up to 86399", seconds)
	}
	return time.Duration(seconds) * time.Second, nil
}

func (ks *Kickstart) applyUser(id string, body json.RawMessage, users map[string]*User) error {
	var b struct {
		User *struct {
			ID        string `json:"id"`
			Email     string `json:"email"`
			Password  string `json:"password"`
			FirstName string `json:"firstName"`
			LastName  string `json:"lastName"`
			FullName  string `json:"fullName"`
			BirthDate string `json:"birthDate"`
		} `json:"user"`
		Registration *struct {
			ApplicationID string   `json:"applicationId"`
			Roles         []string `json:"roles"`
		} `json:"registration"`
	}
	if err := json.Unmarshal(body, &b); err != nil {
		return err
	}
	var u *User
	if b.User != nil {
		if b.User.Email == "" || b.User.Password == "" {
			return fmt.Errorf("the user needs an email and a password")
		}
		id = or(id, or(b.User.ID, newUUID()))
		if users[id] != nil {
			return fmt.Errorf("user %s is created twice", id)
		}
		u = &User{ID: id, Email: b.User.Email, Password: b.User.Password, FirstName: b.User.FirstName,
			LastName: b.User.LastName, FullName: b.User.FullName, BirthDate: b.User.BirthDate, Registrations: map[string][]string{}}
		users[id] = u
		ks.Users = append(ks.Users, u)
	} else if u = users[id]; u == nil {
		return fmt.Errorf("registration for user %q, who no earlier request creates", id)
	}
	if b.Registration != nil {
		u.Registrations[strings.ToLower(b.Registration.ApplicationID)] = b.Registration.Roles
	}
	return nil
}

func or(s, fallback string) string {
	if s == "" {
		return fallback
	}
	return s
}

var uuidPattern = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

func looksLikeUUID(s string) bool { return uuidPattern.MatchString(s) }

func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

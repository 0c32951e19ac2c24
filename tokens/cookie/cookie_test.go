package cookie

import (
	"net/http"
	"strings"
	"testing"
)

// TestSessionValuesReadsCookiesAsNetHTTPDoes: the one-pass reader of the
// session cookies, and Get, find exactly what r.Cookie finds, name by name.
func TestSessionValuesReadsCookiesAsNetHTTPDoes(t *testing.T) {
	cases := map[string][]string{
		"all four":              {"cb_access_token=a.b.c; cb_refresh_token=r; cb_userinfo=u; cb_logged_out=17"},
		"none":                  {"other=1; fusionauth.sso=x"},
		"no header":             nil,
		"first of a name wins":  {"cb_userinfo=first; cb_userinfo=second"},
		"across header lines":   {"cb_access_token=a", "cb_userinfo=u; cb_access_token=later"},
		"quoted":                {`cb_userinfo="quoted"; cb_access_token="`},
		"bad bytes skipped":     {`cb_userinfo=a\b; cb_userinfo=good`, "cb_access_token=x\"y"},
		"spaces and empty ones": {"  cb_userinfo=u ;;  ; cb_logged_out = 5; cb_refresh_token=", "=x; cb_access_token"},
		"similar names":         {"xcb_userinfo=no; cb_userinfo_=no; CB_USERINFO=no; __Host-cb_userinfo=host"},
		"equals in the value":   {"cb_userinfo=a=b=c"},
		"non-ASCII space":       {"\u00a0cb_userinfo=nbsp; \tcb_access_token=tab\t"},
	}
	for _, secure := range []bool{false, true} {
		appURL := "http://localhost:8080"
		if secure {
			appURL = "https://bank.example"
		}
		c := NewStore(appURL, nil)
		for name, header := range cases {
			t.Run(appURL+" "+name, func(t *testing.T) {
				r, _ := http.NewRequest(http.MethodGet, "/", nil)
				for _, h := range header {
					r.Header.Add("Cookie", h)
				}
				got := c.Session(r)
				for base, value := range map[string]string{Access: got.Access, Refresh: got.Refresh, UserInfo: got.UserInfo, LoggedOut: got.LoggedOut} {
					want := ""
					if ck, err := r.Cookie(c.Name(base)); err == nil {
						want = ck.Value
					}
					if value != want {
						t.Errorf("%s = %q, r.Cookie finds %q", base, value, want)
					}
					if got := c.Get(r, base); got != want {
						t.Errorf("Get(%s) = %q, r.Cookie finds %q", base, got, want)
					}
				}
			})
		}
	}
}

// TestUnchunkedSessionsAreReadWithoutAllocating: chunking costs a session
// that has no chunks nothing: its cookies are still read in one pass with
// no allocation, as on every request before chunks existed.
func TestUnchunkedSessionsAreReadWithoutAllocating(t *testing.T) {
	c := NewStore("http://app.test", nil)
	r, _ := http.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set("Cookie", "fusionauth.sso=x; cb_access_token=a.b.c; cb_refresh_token=r; cb_userinfo=u; cb_logged_out=17")
	for name, read := range map[string]func(){
		"sessionValues": func() { _ = c.Session(r) },
		"Get":           func() { _ = c.Get(r, Access) },
	} {
		if n := testing.AllocsPerRun(100, read); n != 0 {
			t.Errorf("%s allocates %v times per request", name, n)
		}
	}
}

// BenchmarkSessionValues reads the session cookies of a normal session and
// of one whose 16 KB access token came in chunks.
func BenchmarkSessionValues(b *testing.B) {
	c := NewStore("http://app.test", nil)
	normal := "fusionauth.sso=" + strings.Repeat("s", 40) + "; cb_access_token=" + strings.Repeat("a", 1100) +
		"; cb_refresh_token=" + strings.Repeat("r", 270) + "; cb_userinfo=" + strings.Repeat("u", 480) + "; cb_logged_out=17"
	chunked := strings.Replace(normal, "cb_access_token="+strings.Repeat("a", 1100), "cb_access_token=5~"+strings.Repeat("a", 3900)+
		"; cb_access_token.1="+strings.Repeat("b", 3900)+"; cb_access_token.2="+strings.Repeat("c", 3900)+
		"; cb_access_token.3="+strings.Repeat("d", 3900)+"; cb_access_token.4="+strings.Repeat("e", 900), 1)
	for name, header := range map[string]string{"normal": normal, "chunked-16KB": chunked} {
		b.Run(name, func(b *testing.B) {
			r, _ := http.NewRequest(http.MethodGet, "/", nil)
			r.Header.Set("Cookie", header)
			b.ReportAllocs()
			for b.Loop() {
				_ = c.Session(r)
			}
		})
	}
}

package cookie

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestCookiesOverHTTPSAreSecureWithHostPrefix(t *testing.T) {
	for appURL, want := range map[string]string{
		"https://bank.example":  "__Host-cb_access_token",
		"http://localhost:8080": "cb_access_token",
	} {
		c := NewStore(appURL, nil)
		rec := httptest.NewRecorder()
		now := time.Now()
		c.Set(rec, Access, "v", now.Add(time.Minute), now)
		set := rec.Result().Cookies()[0]
		secure := strings.HasPrefix(appURL, "https")
		if set.Name != want || set.Secure != secure || !set.HttpOnly || set.Path != "/" || set.Domain != "" || set.SameSite != http.SameSiteLaxMode {
			t.Errorf("%s: %+v", appURL, set)
		}
		// Reading goes by the same name.
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.AddCookie(&http.Cookie{Name: want, Value: "v"})
		if c.Get(req, Access) != "v" {
			t.Errorf("%s: Get does not find %s", appURL, want)
		}
	}
}

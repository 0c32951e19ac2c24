package tokens

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// FuzzSafeReturnPath: a return_to either comes back unchanged or is
// refused (""), and what comes back, followed from any page of the site as
// a browser follows a Location header, stays on the site.
func FuzzSafeReturnPath(f *testing.F) {
	site, _ := url.Parse("https://bank.example/callback?state=s")
	f.Fuzz(func(t *testing.T, p string) {
		got := SafeReturnPath(p)
		if got == "" {
			return
		}
		if got != p {
			t.Fatalf("SafeReturnPath(%q) = %q: changed, not kept or refused", p, got)
		}
		// Browsers drop tabs and newlines from URLs and read "\" as "/".
		if strings.ContainsAny(got, "\t\r\n\\") || !strings.HasPrefix(got, "/") || strings.HasPrefix(got, "//") {
			t.Fatalf("%q passed: a browser may read it as another host", got)
		}
		// The callback redirects with http.Redirect (through Gin), which
		// cleans the path: follow the Location it writes.
		rec := httptest.NewRecorder()
		http.Redirect(rec, httptest.NewRequest(http.MethodGet, site.String(), nil), got, http.StatusSeeOther)
		loc := rec.Header().Get("Location")
		u, err := url.Parse(loc)
		if err != nil {
			t.Fatalf("%q passed, and the Location %q does not parse: %v", got, loc, err)
		}
		if to := site.ResolveReference(u); to.Scheme != "https" || to.Host != "bank.example" || to.User != nil {
			t.Fatalf("%q passed, and Location %q leads to %s", got, loc, to)
		}
		if strings.HasPrefix(loc, "//") || strings.ContainsAny(loc, "\\\t\r\n") {
			t.Fatalf("%q passed, and Location %q may take a browser to another host", got, loc)
		}
	})
}

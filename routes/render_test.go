package routes

import (
	"bytes"
	"flag"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/changebank/changebank/tokens"
)

var update = flag.Bool("update", false, "rewrite the golden pages under testdata/pages")

// TestPagesRenderAsGolden holds the hot pages byte for byte to the files
// under testdata/pages, so that a change made for speed in the templates or
// the view models shows nothing different to a browser: the same markup, the
// user's fields escaped the same way. Rewrite them with -update after a
// change that is meant to show.
func TestPagesRenderAsGolden(t *testing.T) {
	v, err := parseViews(os.DirFS(".."), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	richard := &tokens.UserInfo{Subject: "00000000-0000-0000-0000-000000000001", Name: "Richard Hendricks",
		Email: "richard@example.com", EmailVerified: true, Birthdate: "1987-06-15"}
	hostile := &tokens.UserInfo{Subject: "00000000-0000-0000-0000-000000000002", Name: `<script>alert("x")</script> & 'Co'`,
		Email: `o'brien+"x"@example.com`}
	cases := []struct {
		name   string
		status int
		page   string
		p      page
	}{
		{"home", http.StatusOK, "home", page{Title: "Dollars in, coins out"}},
		{"account", http.StatusOK, "account", page{Title: "Your account", User: richard, CSRF: "csrf-token-value"}},
		{"account-hostile", http.StatusOK, "account", page{Title: "Your account", User: hostile, CSRF: `a"b<c>&d`}},
		{"account-notice", http.StatusOK, "account", page{Title: "Your account", User: richard, CSRF: "csrf-token-value",
			Notice: &noticeView{Code: tokens.NoticeEndedExpired, Text: `Your session ended: "it" reached <its> end.`, Ended: true, SSO: true}}},
		{"error", http.StatusServiceUnavailable, "error", page{Title: "Service Unavailable",
			Data: errorView{Status: http.StatusServiceUnavailable, Message: "The identity provider is unreachable <right now>.", Retry: "/session?a=1&b=2"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := renderPage(v, tc.status, tc.page, tc.p)
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d", rec.Code, tc.status)
			}
			// The second time comes from the rendered-page cache where the
			// page is cacheable: it must be the same bytes.
			if again := renderPage(v, tc.status, tc.page, tc.p); again.Code != tc.status || !bytes.Equal(again.Body.Bytes(), rec.Body.Bytes()) {
				t.Fatalf("second rendering differs from the first: %d\n%s", again.Code, again.Body.Bytes())
			}
			golden := filepath.Join("testdata", "pages", tc.name+".html")
			if *update {
				if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, rec.Body.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to write it)", err)
			}
			if !bytes.Equal(rec.Body.Bytes(), want) {
				t.Errorf("page differs from %s:\n%s", golden, rec.Body.Bytes())
			}
		})
	}
}

func renderPage(v *views, status int, name string, p page) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	c, _ := gin.CreateTestContext(rec)
	c.Request = httptest.NewRequest(http.MethodGet, "/", nil)
	if p.Notice != nil {
		c.Set(noticeKey, p.Notice) // as if this request had taken it from its cookie
	}
	v.render(c, status, name, p)
	return rec
}

// TestRenderedPagesAreNeverAnotherUsers: the account page is remembered
// once rendered, and a browser whose session differs in any field (another
// user, another login, another CSRF token) gets its own page, never the
// remembered one. Every field of UserInfo is changed in turn, so a field
// added later without being keyed fails here.
func TestRenderedPagesAreNeverAnotherUsers(t *testing.T) {
	v, err := parseViews(os.DirFS(".."), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	base := tokens.UserInfo{Subject: "sub-1", Name: "Richard", GivenName: "Richard", FamilyName: "Hendricks",
		Email: "richard@example.com", EmailVerified: true, Birthdate: "1987-06-15", LoginID: "login-1", LoginAt: 100, Expires: 200}
	first := renderPage(v, http.StatusOK, "account", page{Title: "Your account", User: &base, CSRF: "token-1"})
	if !strings.Contains(first.Body.String(), "Richard") {
		t.Fatalf("account page without the user's name:\n%s", first.Body)
	}
	ut := reflect.TypeFor[tokens.UserInfo]()
	for i := range ut.NumField() {
		f := ut.Field(i)
		t.Run(f.Name, func(t *testing.T) {
			other := base
			fv := reflect.ValueOf(&other).Elem().Field(i)
			switch fv.Kind() {
			case reflect.String:
				fv.SetString(fv.String() + "-other")
			case reflect.Bool:
				fv.SetBool(!fv.Bool())
			case reflect.Int64:
				fv.SetInt(fv.Int() + 1)
			case reflect.Slice:
				if fv.Type().Elem().Kind() != reflect.Uint8 {
					t.Fatalf("UserInfo.%s is a slice of %s: key it in pageKey and teach this test to change it", f.Name, fv.Type().Elem())
				}
				fv.SetBytes(append(bytes.Clone(fv.Bytes()), 'x'))
			default:
				t.Fatalf("UserInfo.%s is a %s: key it in pageKey and teach this test to change it", f.Name, fv.Kind())
			}
			a, _ := pageKey(nil, "account", page{Title: "Your account", User: &base, CSRF: "token-1"})
			b, _ := pageKey(nil, "account", page{Title: "Your account", User: &other, CSRF: "token-1"})
			if bytes.Equal(a, b) {
				t.Fatalf("changing UserInfo.%s leaves the rendered page's key the same: a browser could get another session's page", f.Name)
			}
		})
	}
	for _, tc := range []struct {
		name string
		user tokens.UserInfo
		csrf string
		want string
	}{
		{"another user", tokens.UserInfo{Subject: "sub-2", Name: "Jared", Email: "jared@example.com", LoginID: "login-2"}, "token-2", "Jared"},
		{"same user, another CSRF token", base, "token-3", `value="token-3"`},
		{"same user, name changed", func() tokens.UserInfo { u := base; u.Name = "Dinesh"; return u }(), "token-1", "Dinesh"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := renderPage(v, http.StatusOK, "account", page{Title: "Your account", User: &tc.user, CSRF: tc.csrf}).Body.String()
			if !strings.Contains(got, tc.want) || got == first.Body.String() {
				t.Fatalf("page does not show %q, or is the first user's page:\n%s", tc.want, got)
			}
		})
	}
}

// TestRenderedPagesStayBounded: a flood of distinct sessions only evicts.
func TestRenderedPagesStayBounded(t *testing.T) {
	v, err := parseViews(os.DirFS(".."), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 * maxRenderedPages {
		u := tokens.UserInfo{Subject: "sub", Name: "User " + strconv.Itoa(i), LoginID: strconv.Itoa(i)}
		if rec := renderPage(v, http.StatusOK, "account", page{Title: "Your account", User: &u, CSRF: "t"}); !strings.Contains(rec.Body.String(), u.Name+"<") {
			t.Fatalf("page %d does not greet %q", i, u.Name)
		}
	}
	if n := v.done.pages.Len(); n > maxRenderedPages {
		t.Fatalf("%d rendered pages held, bound %d", n, maxRenderedPages)
	}
}

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
			rec := httptest.NewRecorder()
			c, _ := gin.CreateTestContext(rec)
			c.Request = httptest.NewRequest(http.MethodGet, "/", nil)
			if tc.p.Notice != nil {
				c.Set(noticeKey, tc.p.Notice) // as if this request had taken it from its cookie
			}
			v.render(c, tc.status, tc.page, tc.p)
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d", rec.Code, tc.status)
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

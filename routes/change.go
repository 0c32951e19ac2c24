package routes

import (
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/changebank/changebank/tokens"
)

// MaxDollars is the largest amount ChangeBank changes.
const MaxDollars = 1_000_000

// changeView is the make-change page's content.
type changeView struct {
	Amount   string // as typed, to show back in the field
	Error    string
	Result   bool
	Dollars  string // the amount, formatted
	Nickels  int64
	Pennies  int64
	MaxInput string
}

// amountPattern is what ChangeBank accepts: dollars, optionally cents with
// one or two digits, an optional leading "$". Exponents, signs, NaN and
// Infinity never match, so no float ever gets near the money.
var amountPattern = regexp.MustCompile(`^\$?([0-9]+)(?:\.([0-9]{1,2}))?$`)

// parseCents turns what the user typed into cents, or a message saying
// what to type instead.
func parseCents(in string) (int64, string) {
	in = strings.TrimSpace(in)
	switch {
	case in == "":
		return 0, "Enter an amount in dollars, such as 1.23."
	case strings.HasPrefix(in, "-"):
		return 0, "Enter a positive amount: ChangeBank cannot change a negative sum."
	}
	m := amountPattern.FindStringSubmatch(in)
	if m == nil {
		if regexp.MustCompile(`^\$?[0-9]*\.[0-9]{3,}$`).MatchString(in) {
			return 0, "Use at most two decimal places: ChangeBank's smallest coin is one cent."
		}
		return 0, "Enter dollars and cents using digits and a point, such as 1.23."
	}
	whole := strings.TrimLeft(m[1], "0")
	if len(whole) > len(strconv.Itoa(MaxDollars)) {
		return 0, "That is more than ChangeBank holds: enter at most $1,000,000.00."
	}
	dollars, _ := strconv.ParseInt("0"+whole, 10, 64) // at most 8 digits: cannot fail
	cents, _ := strconv.ParseInt((m[2] + "00")[:2], 10, 64)
	total := dollars*100 + cents
	switch {
	case total > MaxDollars*100:
		return 0, "That is more than ChangeBank holds: enter at most $1,000,000.00."
	case total == 0:
		return 0, "Enter an amount above $0.00: there is no change to make for nothing."
	}
	return total, ""
}

func formatDollars(cents int64) string {
	s := strconv.FormatInt(cents/100, 10)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return "$" + s + "." + strconv.FormatInt(cents%100/10, 10) + strconv.FormatInt(cents%10, 10)
}

func makeChangeForm(csrf *tokens.CSRF, views *views) gin.HandlerFunc {
	return func(c *gin.Context) {
		s := sessionOf(c)
		views.render(c, http.StatusOK, "make_change", page{Title: "Make change", User: &s.User, CSRF: csrf.Token(s.User), Data: changeView{}})
	}
}

// makeChange answers with nickels (as many as fit) and pennies (the rest).
func makeChange(csrf *tokens.CSRF, views *views) gin.HandlerFunc {
	return func(c *gin.Context) {
		s := sessionOf(c)
		// The whole input is parsed (checkForm bounds the form); only the
		// echo in the field is cut to a display length.
		in := c.PostForm("amount")
		v := changeView{Amount: displayCut(in, maxEcho)}
		status := http.StatusOK
		if cents, msg := parseCents(in); msg != "" {
			v.Error, status = msg, http.StatusUnprocessableEntity
		} else {
			v.Result, v.Dollars, v.Nickels, v.Pennies = true, formatDollars(cents), cents/5, cents%5
		}
		views.render(c, status, "make_change", page{Title: "Make change", User: &s.User, CSRF: csrf.Token(s.User), Data: v})
	}
}

// maxEcho bounds the amount shown back in the field.
const maxEcho = 64

// displayCut returns s cut to at most n bytes, on a character boundary.
func displayCut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

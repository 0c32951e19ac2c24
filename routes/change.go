package routes

import (
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/gin-gonic/gin"
)

// MaxDollars is the largest amount ChangeBank changes.
const MaxDollars = 1_000_000

// changeView is the make-change page's content.
type changeView struct {
	Amount   string // as typed, to show back in the field
	Error    string
	Result   bool
	Dollars  string // the amount, formatted
	Nickels  coins
	Pennies  coins
	MaxInput string
}

// coins is a count of one coin, in words: "1 penny", "20,000,000 nickels".
type coins struct {
	Count string // with thousands separators
	Name  string // singular or plural, as the count needs
}

func countOf(n int64, one, many string) coins {
	name := many
	if n == 1 {
		name = one
	}
	return coins{Count: group(strconv.FormatInt(n, 10)), Name: name}
}

// amountPattern is what ChangeBank accepts: dollars, plain or with a comma
// between each group of three digits, optionally cents with one or two
// digits, an optional leading "$". Exponents, signs, NaN and Infinity never
// match, so no float ever gets near the money.
var amountPattern = regexp.MustCompile(`^\$?([0-9]+|[1-9][0-9]{0,2}(?:,[0-9]{3})+)(?:\.([0-9]{1,2}))?$`)

// Inputs that come close: too many decimals, or commas out of place.
var (
	tooPrecise   = regexp.MustCompile(`^\$?[0-9,]*\.[0-9]{3,}$`)
	badThousands = regexp.MustCompile(`^\$?[0-9,]+(?:\.[0-9]{1,2})?$`)
)

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
		switch {
		case tooPrecise.MatchString(in):
			return 0, "Use at most two decimal places: ChangeBank's smallest coin is one cent."
		case strings.Contains(in, ",") && badThousands.MatchString(in):
			return 0, "Put a comma between each group of three digits of the dollars, such as 1,000,000.50, or no comma at all; the cents come after a point."
		}
		return 0, "Enter dollars and cents using digits and a point, such as 1.23 or 1,000.50."
	}
	whole := strings.TrimLeft(strings.ReplaceAll(m[1], ",", ""), "0")
	if len(whole) > len(strconv.Itoa(MaxDollars)) {
		return 0, "That is more than ChangeBank holds: enter at most $1,000,000.00."
	}
	dollars, _ := strconv.ParseInt("0"+whole, 10, 64) // at most 7 digits: cannot fail
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
	return "$" + group(strconv.FormatInt(cents/100, 10)) + "." + strconv.FormatInt(cents%100/10, 10) + strconv.FormatInt(cents%10, 10)
}

// group puts a comma between each group of three digits of a whole number.
func group(digits string) string {
	for i := len(digits) - 3; i > 0; i -= 3 {
		digits = digits[:i] + "," + digits[i:]
	}
	return digits
}

func makeChangeForm(views *views) gin.HandlerFunc {
	return func(c *gin.Context) {
		s := sessionOf(c)
		views.render(c, http.StatusOK, "make_change", page{Title: "Make change", User: &s.User, CSRF: s.CSRF, Data: changeView{}})
	}
}

// makeChange answers with nickels (as many as fit) and pennies (the rest).
func makeChange(views *views) gin.HandlerFunc {
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
			v.Result, v.Dollars = true, formatDollars(cents)
			v.Nickels, v.Pennies = countOf(cents/5, "nickel", "nickels"), countOf(cents%5, "penny", "pennies")
		}
		views.render(c, status, "make_change", page{Title: "Make change", User: &s.User, CSRF: s.CSRF, Data: v})
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

package routes

import (
	"math/big"
	"strings"
	"testing"
)

// FuzzParseCents: whatever is typed, parseCents does not panic and gives
// either an amount or a message, never both; an amount is between a cent
// and the most ChangeBank holds, and is exactly what was typed (checked
// with exact rational arithmetic, not the parser's own way), commas only
// ever between groups of three digits.
func FuzzParseCents(f *testing.F) {
	f.Fuzz(func(t *testing.T, in string) {
		cents, msg := parseCents(in)
		if msg != "" {
			if cents != 0 {
				t.Fatalf("parseCents(%q) = %d with the message %q", in, cents, msg)
			}
			return
		}
		if cents < 1 || cents > MaxDollars*100 {
			t.Fatalf("parseCents(%q) = %d cents, outside 1..%d", in, cents, MaxDollars*100)
		}
		typed := strings.TrimPrefix(strings.TrimSpace(in), "$")
		if strings.ContainsFunc(typed, func(r rune) bool { return (r < '0' || r > '9') && r != '.' && r != ',' }) {
			t.Fatalf("parseCents(%q) accepted something besides digits, commas and a point", in)
		}
		// Commas only between groups of three digits of the dollars.
		whole, _, _ := strings.Cut(typed, ".")
		if groups := strings.Split(whole, ","); len(groups) > 1 {
			for i, g := range groups {
				if (i == 0 && (len(g) < 1 || len(g) > 3 || g[0] == '0')) || (i > 0 && len(g) != 3) {
					t.Fatalf("parseCents(%q) = %d, but its commas are out of place", in, cents)
				}
			}
		}
		typed = strings.ReplaceAll(typed, ",", "")
		want, ok := new(big.Rat).SetString(typed)
		if !ok {
			t.Fatalf("parseCents(%q) = %d, but %q is no number", in, cents, typed)
		}
		if want.Mul(want, big.NewRat(100, 1)); want.Cmp(big.NewRat(cents, 1)) != 0 {
			t.Fatalf("parseCents(%q) = %d cents, want %s", in, cents, want.FloatString(2))
		}
	})
}

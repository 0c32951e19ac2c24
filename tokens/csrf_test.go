package tokens

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strconv"
	"sync"
	"testing"
)

// TestCSRFTokensAreStableAcrossReuseAndRotation: a token is the HMAC of
// sub and login id under the newest secret's key, whatever MAC state made
// it (forms on open pages keep working), and still accepted after rotation.
func TestCSRFTokensAreStableAcrossReuseAndRotation(t *testing.T) {
	c, err := newCSRF(secretA)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := hkdf.Key(sha256.New, secretA, nil, "changebank csrf v1", 32)
	users := []UserInfo{{Subject: "u1", LoginID: "l1"}, {Subject: "u2", LoginID: "l2"}, {Subject: "u1", LoginID: "l3"}}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 50 {
				for _, u := range users {
					mac := hmac.New(sha256.New, key)
					mac.Write([]byte(u.Subject + "\x00" + u.LoginID))
					if got, want := c.Token(u), base64.RawURLEncoding.EncodeToString(mac.Sum(nil)); got != want {
						t.Errorf("Token(%v) = %s, want %s", u, got, want)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	rotated, _ := newCSRF(secretB, secretA)
	if tok := c.Token(users[0]); !rotated.Check(users[0], tok) || rotated.Check(users[1], tok) {
		t.Fatal("after rotation a token must pass for its own session only")
	}
}

// Every page of a session shows its CSRF token: the second time, it is
// made without a MAC or an allocation, and distinct sessions past the
// bound neither grow memory nor get another's token.
func TestCSRFTokenIsRememberedWithinBounds(t *testing.T) {
	c, err := newCSRF(secretA)
	if err != nil {
		t.Fatal(err)
	}
	u := UserInfo{Subject: "u1", LoginID: "l1"}
	first := c.Token(u)
	if n := testing.AllocsPerRun(100, func() { _ = c.Token(u) }); n != 0 {
		t.Fatalf("a session's token again: %v allocations, want 0", n)
	}
	fresh, _ := newCSRF(secretA)
	for i := range maxCSRFTokens + 10 {
		v := UserInfo{Subject: "u" + strconv.Itoa(i), LoginID: "l"}
		if got, want := c.Token(v), csrfMAC(fresh.macs[0], v); got != want {
			t.Fatalf("session %d: %s, want %s", i, got, want)
		}
	}
	if c.made.Len() > maxCSRFTokens {
		t.Fatalf("%d tokens remembered, bound %d", c.made.Len(), maxCSRFTokens)
	}
	if c.Token(u) != first {
		t.Fatal("a session's token changed after the bound was reached")
	}
}

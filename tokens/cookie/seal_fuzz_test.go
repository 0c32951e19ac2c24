package cookie

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"
)

// fuzzPlain is what the values in testdata/fuzz/FuzzOpen were sealed from,
// for UserInfo under secretA.
const fuzzPlain = `{"sub":"x"}`

// FuzzOpen: whatever a browser sends, Open does not panic and opens
// nothing but a value sealed here, to exactly what was sealed. The seeds
// were sealed once and kept, so that every fuzzing process can open them
// (a value sealed in the test would differ per process: a fresh IV).
func FuzzOpen(f *testing.F) {
	s := mustSealer(f, secretA)
	f.Fuzz(func(t *testing.T, v string) {
		plain, err := s.Open(UserInfo, v)
		if err == nil && string(plain) != fuzzPlain {
			t.Fatalf("opened a value it did not seal, to %q", plain)
		}
		if err == nil && !canonical(v) {
			t.Fatalf("opened a value that is not canonical base64url: %q", v)
		}
	})
}

// FuzzSealRoundTrip: what is sealed for a cookie opens to the same bytes
// for that cookie only, under that secret only, and changing any one
// character of the sealed value makes it unopenable.
func FuzzSealRoundTrip(f *testing.F) {
	s := mustSealer(f, secretA)
	other := mustSealer(f, secretB)
	base64url := []byte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")
	f.Fuzz(func(t *testing.T, cookie string, plain []byte, pos uint16, c byte) {
		if len(plain) == 0 || len(plain) > maxSealedLen || len(cookie) > 64 {
			// jwx will not decrypt an empty ciphertext, and the app seals
			// JSON under short names, never more than a cookie holds.
			return
		}
		sealed, err := s.Seal(cookie, plain)
		if err != nil {
			t.Fatalf("Seal: %v", err)
		}
		if len(sealed) > maxSealedLen {
			if _, err := s.Open(cookie, sealed); err == nil {
				t.Fatal("opened a value longer than any cookie")
			}
			return
		}
		got, err := s.Open(cookie, sealed)
		if err != nil || !bytes.Equal(got, plain) {
			t.Fatalf("round trip: %q, %v; want %q", got, err, plain)
		}
		if _, err := s.Open(cookie+"x", sealed); err == nil {
			t.Fatal("opened under another cookie's name")
		}
		if _, err := other.Open(cookie, sealed); err == nil {
			t.Fatal("opened under another secret")
		}
		i := int(pos) % len(sealed)
		b := base64url[int(c)%len(base64url)]
		if b == sealed[i] {
			return
		}
		tampered := sealed[:i] + string(b) + sealed[i+1:]
		if got, err := s.Open(cookie, tampered); err == nil {
			t.Fatalf("opened with character %d changed from %q to %q, to %q", i, sealed[i], b, got)
		}
	})
}

// canonical reports whether every part of a compact JWE is base64url in its
// one canonical form (no unused bits set in a last character).
func canonical(sealed string) bool {
	for part := range strings.SplitSeq(sealed, ".") {
		if _, err := base64.RawURLEncoding.Strict().DecodeString(part); err != nil {
			return false
		}
	}
	return true
}

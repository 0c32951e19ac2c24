package cookie

import (
	"errors"
	"strings"
	"testing"
)

var (
	secretA = []byte("test-secret-a-0123456789abcdef-0123456789")
	secretB = []byte("test-secret-b-0123456789abcdef-0123456789")
)

func mustSealer(t testing.TB, secrets ...[]byte) *Sealer {
	t.Helper()
	s, err := NewSealer(secrets...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSealRoundTrip(t *testing.T) {
	s := mustSealer(t, secretA)
	sealed, err := s.Seal(Refresh, []byte(`{"rt":"secret-refresh-token"}`))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(sealed, "secret-refresh-token") {
		t.Fatal("the sealed value shows the plaintext")
	}
	got, err := s.Open(Refresh, sealed)
	if err != nil || string(got) != `{"rt":"secret-refresh-token"}` {
		t.Fatalf("Open = %q, %v", got, err)
	}
}

func TestSealRefusesWhatItDidNotSeal(t *testing.T) {
	s := mustSealer(t, secretA)
	sealed, err := s.Seal(UserInfo, []byte(`{"sub":"u1"}`))
	if err != nil {
		t.Fatal(err)
	}
	flip := []byte(sealed)
	flip[len(flip)-5] ^= 0x01
	parts := strings.Split(sealed, ".")
	// The tag's 16 bytes take 22 base64url characters, the last of which
	// has 4 unused bits: changing its lowest bit leaves the bytes alone.
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	spare := sealed[:len(sealed)-1] + string(alphabet[strings.IndexByte(alphabet, sealed[len(sealed)-1])^1])
	cases := map[string]string{
		"unused bits changed":     spare,
		"moved to another cookie": "", // opened under Refresh below
		"tampered":                string(flip),
		"truncated":               sealed[:len(sealed)-10],
		"garbage":                 "not-a-jwe",
		"empty":                   "",
		"oversize":                strings.Repeat("a", 5000),
		"alg swapped to none":     "eyJhbGciOiJub25lIiwiZW5jIjoiQTI1NkdDTSJ9." + strings.Join(parts[1:], "."),
	}
	for name, value := range cases {
		t.Run(name, func(t *testing.T) {
			cookie := UserInfo
			if value == "" && name == "moved to another cookie" {
				cookie, value = Refresh, sealed
			}
			if _, err := s.Open(cookie, value); !errors.Is(err, ErrUnsealable) {
				t.Fatalf("Open = %v, want ErrUnsealable", err)
			}
		})
	}
}

func TestSealRotation(t *testing.T) {
	old := mustSealer(t, secretA)
	sealedOld, err := old.Seal(UserInfo, []byte("hello"))
	if err != nil {
		t.Fatal(err)
	}
	rotated := mustSealer(t, secretB, secretA)
	if got, err := rotated.Open(UserInfo, sealedOld); err != nil || string(got) != "hello" {
		t.Fatalf("a cookie sealed under the previous secret must still open: %q, %v", got, err)
	}
	sealedNew, _ := rotated.Seal(UserInfo, []byte("hello"))
	if _, err := old.Open(UserInfo, sealedNew); err == nil {
		t.Fatal("new cookies must be sealed with the newest secret, which the old sealer lacks")
	}
	retired := mustSealer(t, secretB)
	if _, err := retired.Open(UserInfo, sealedOld); !errors.Is(err, ErrUnsealable) {
		t.Fatal("a retired secret must no longer open cookies")
	}
}

func TestSealerRefusesShortSecrets(t *testing.T) {
	if _, err := NewSealer([]byte("short")); err == nil {
		t.Fatal("a 5-byte secret was accepted")
	}
	if _, err := NewSealer(); err == nil {
		t.Fatal("no secret was accepted")
	}
}

package cookie

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwe"
)

// Open is a hand-written reader of the compact JWE that Seal writes with
// jwx. These tests hold it to jwx: what jwx seals opens, what is sealed by
// hand in the same form opens with jwx too, and every variation outside
// that form is refused.

// handSeal builds a compact JWE with AES-GCM directly, with the given
// header JSON and part lengths, under the sealer's newest secret.
func handSeal(t *testing.T, s *Sealer, cookie, header string, plaintext []byte, ivLen int) string {
	t.Helper()
	key, err := s.secrets[0].key(cookie)
	if err != nil {
		t.Fatal(err)
	}
	gcm, err := newGCM(key)
	if err != nil {
		t.Fatal(err)
	}
	iv := make([]byte, 12)
	_, _ = rand.Read(iv)
	h := base64.RawURLEncoding.EncodeToString([]byte(header))
	out := gcm.Seal(nil, iv, plaintext, []byte(h))
	ct, tag := out[:len(out)-16], out[len(out)-16:]
	enc := base64.RawURLEncoding.EncodeToString
	ivPart := enc(iv)
	if ivLen != 12 {
		ivPart = enc(make([]byte, ivLen))
	}
	return h + ".." + ivPart + "." + enc(ct) + "." + enc(tag)
}

// jwxOpen opens a value with jwx, under the cookie's key.
func jwxOpen(s *Sealer, cookie, sealed string) ([]byte, error) {
	key, err := s.secrets[0].key(cookie)
	if err != nil {
		return nil, err
	}
	return jwe.Decrypt([]byte(sealed), jwe.WithKey(jwa.DIRECT(), key))
}

func TestOpenReadsWhatJWXSealsAndJWXReadsWhatOpenAccepts(t *testing.T) {
	s := mustSealer(t, secretA)
	plain := []byte(`{"sub":"u1","lid":"x"}`)
	kid := s.secrets[0].id
	cases := map[string]string{
		"sealed by jwx":                Must(s.Seal(UserInfo, plain)),
		"sealed by hand, jwx's order":  handSeal(t, s, UserInfo, `{"alg":"dir","enc":"A256GCM","kid":"`+kid+`"}`, plain, 12),
		"sealed by hand, other order":  handSeal(t, s, UserInfo, `{"kid":"`+kid+`","enc":"A256GCM","alg":"dir"}`, plain, 12),
		"login cookie, derived on use": Must(s.Seal(LoginPrefix+"abc", plain)),
	}
	for name, sealed := range cases {
		t.Run(name, func(t *testing.T) {
			cookie := UserInfo
			if strings.HasPrefix(name, "login") {
				cookie = LoginPrefix + "abc"
			}
			got, err := s.Open(cookie, sealed)
			if err != nil || string(got) != string(plain) {
				t.Fatalf("Open = %q, %v", got, err)
			}
			if got, err := jwxOpen(s, cookie, sealed); err != nil || string(got) != string(plain) {
				t.Fatalf("jwx does not open it: %q, %v", got, err)
			}
		})
	}
}

func TestOpenRefusesEveryOtherForm(t *testing.T) {
	s := mustSealer(t, secretA, secretB)
	plain := []byte(`{"sub":"u1"}`)
	kid := s.secrets[0].id
	good := Must(s.Seal(UserInfo, plain))
	parts := strings.Split(good, ".")
	join := func(p ...string) string { return strings.Join(p, ".") }
	hdr := func(json string) string { return handSeal(t, s, UserInfo, json, plain, 12) }
	cases := map[string]string{
		"four parts":                      join(parts[0], parts[2], parts[3], parts[4]),
		"six parts":                       good + ".",
		"an encrypted key":                join(parts[0], "AAAA", parts[2], parts[3], parts[4]),
		"padded base64":                   join(parts[0], "", parts[2], parts[3], parts[4]+"=="),
		"standard base64 alphabet":        stdAlphabet(t, s, plain),
		"11-byte IV":                      handSeal(t, s, UserInfo, `{"alg":"dir","enc":"A256GCM","kid":"`+kid+`"}`, plain, 11),
		"16-byte IV":                      handSeal(t, s, UserInfo, `{"alg":"dir","enc":"A256GCM","kid":"`+kid+`"}`, plain, 16),
		"15-byte tag":                     join(parts[0], "", parts[2], parts[3], parts[4][:20]),
		"tag cut off":                     join(parts[0], "", parts[2], parts[3], ""),
		"header changed, AAD kept":        join(base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"dir","enc":"A256GCM","kid":"`+kid+`" }`)), "", parts[2], parts[3], parts[4]),
		"unknown kid":                     hdr(`{"alg":"dir","enc":"A256GCM","kid":"nope"}`),
		"no kid":                          hdr(`{"alg":"dir","enc":"A256GCM"}`),
		"enc A128GCM":                     hdr(`{"alg":"dir","enc":"A128GCM","kid":"` + kid + `"}`),
		"alg A256KW":                      hdr(`{"alg":"A256KW","enc":"A256GCM","kid":"` + kid + `"}`),
		"compressed (zip)":                hdr(`{"alg":"dir","enc":"A256GCM","kid":"` + kid + `","zip":"DEF"}`),
		"crit":                            hdr(`{"alg":"dir","enc":"A256GCM","kid":"` + kid + `","crit":["x"]}`),
		"upper-case member names":         hdr(`{"ALG":"dir","ENC":"A256GCM","KID":"` + kid + `"}`),
		"header not JSON":                 hdr(`alg=dir`),
		"ciphertext bit flipped":          join(parts[0], "", parts[2], flip(parts[3]), parts[4]),
		"IV bit flipped":                  join(parts[0], "", flip(parts[2]), parts[3], parts[4]),
		"sealed for another cookie":       Must(s.Seal(Refresh, plain)),
		"JSON serialisation, not compact": `{"protected":"` + parts[0] + `","iv":"` + parts[2] + `","ciphertext":"` + parts[3] + `","tag":"` + parts[4] + `"}`,
	}
	for name, sealed := range cases {
		t.Run(name, func(t *testing.T) {
			if got, err := s.Open(UserInfo, sealed); !errors.Is(err, ErrUnsealable) {
				t.Fatalf("Open = %q, %v; want ErrUnsealable", got, err)
			}
		})
	}
}

// stdAlphabet seals until the value holds a - or _ past its header, and
// returns it in the standard base64 alphabet (+ and /), which JWE forbids.
func stdAlphabet(t *testing.T, s *Sealer, plain []byte) string {
	for range 1000 {
		v := Must(s.Seal(UserInfo, plain))
		h, rest, _ := strings.Cut(v, ".")
		if strings.ContainsAny(rest, "-_") {
			return h + "." + strings.NewReplacer("-", "+", "_", "/").Replace(rest)
		}
	}
	t.Fatal("no sealed value with - or _ in 1000 tries")
	return ""
}

// flip changes one bit of a base64url part's first character.
func flip(part string) string {
	b := []byte(part)
	if b[0] == 'A' {
		b[0] = 'B'
	} else {
		b[0] = 'A'
	}
	return string(b)
}

// Must returns v, for values the test has just made.
func Must(v string, err error) string {
	if err != nil {
		panic(err)
	}
	return v
}

func BenchmarkOpenUserInfo(b *testing.B) {
	s, _ := NewSealer(secretA)
	sealed, _ := s.Seal(UserInfo, []byte(`{"sub":"00000000-0000-0000-0000-000000000001","name":"Richard Hendricks","email":"richard@example.com","lid":"abcdefghijklmnop","login_at":1,"exp":2}`))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Open(UserInfo, sealed); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOpenUserInfoJWX opens the same value with jwx's generic JWE
// reader, as Open did before: the difference is what the strict reader saves.
func BenchmarkOpenUserInfoJWX(b *testing.B) {
	s, _ := NewSealer(secretA)
	sealed, _ := s.Seal(UserInfo, []byte(`{"sub":"00000000-0000-0000-0000-000000000001","name":"Richard Hendricks","email":"richard@example.com","lid":"abcdefghijklmnop","login_at":1,"exp":2}`))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := jwxOpen(s, UserInfo, sealed); err != nil {
			b.Fatal(err)
		}
	}
}

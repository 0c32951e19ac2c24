package idp

import (
	"log/slog"
	"strings"
	"testing"
)

// FuzzParseKickstart: whatever the kickstart file holds, ParseKickstart
// does not panic; it refuses with a message and no kickstart, or returns
// one the stand-in can run: a signing key for every application.
func FuzzParseKickstart(f *testing.F) {
	log := slog.New(slog.DiscardHandler)
	getenv := func(name string) string {
		if name == "SET" {
			return "from-the-environment"
		}
		return ""
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ks, err := ParseKickstart(data, getenv, log)
		if err != nil {
			if ks != nil {
				t.Fatalf("a kickstart came back with %v", err)
			}
			if strings.TrimSpace(err.Error()) == "" {
				t.Fatal("refused without saying why")
			}
			return
		}
		if len(ks.SigningKeys) == 0 || len(ks.Applications) == 0 {
			t.Fatalf("accepted with %d keys and %d applications", len(ks.SigningKeys), len(ks.Applications))
		}
		for id, app := range ks.Applications {
			for _, kid := range []string{app.AccessTokenKeyID, app.IDTokenKeyID} {
				if kid != "" && !ks.hasKey(kid) {
					t.Fatalf("application %s signs with key %s, which is not generated", id, kid)
				}
			}
		}
	})
}

package inspect

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"

	"github.com/changebank/changebank/tokens/cookie"
)

// Fingerprint names a secret without revealing it: the first 8 bytes of
// its SHA-256, in hex.
func Fingerprint(secret string) string {
	if secret == "" {
		return "(none)"
	}
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:8])
}

// Reveal returns the content of the sealed cookie base exactly as r
// carried it, as indented JSON, for the session inspector. The refresh
// token in cb_refresh_token is replaced by its fingerprint.
func Reveal(store *cookie.Store, r *http.Request, base string) (string, error) {
	var v map[string]any
	if err := store.Open(r, base, &v); err != nil {
		return "", err
	}
	if rt, ok := v["rt"].(string); ok && base == cookie.Refresh {
		v["rt"] = "fingerprint " + Fingerprint(rt)
	}
	out, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return "", err
	}
	return string(out), nil
}

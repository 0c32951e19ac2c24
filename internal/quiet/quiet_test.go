package quiet

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// TestLogCountsWhatItHolds: one line per message per interval, each
// with how many it stands for, and long values cut.
func TestLogCountsWhatItHolds(t *testing.T) {
	var buf bytes.Buffer
	now := time.Unix(1_800_000_000, 0)
	q := New(slog.New(slog.NewTextHandler(&buf, nil)), func() time.Time { return now })
	ctx := context.Background()
	for i := range 25 {
		q.Warn(ctx, "form refused: cross-origin", "path", "/logout")
		q.Info(ctx, "callback refused", "err", errors.New(strings.Repeat("é", 1000)))
		if i == 9 {
			now = now.Add(Every) // the 11th of each starts a new interval
		}
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	want := []string{
		`level=WARN msg="form refused: cross-origin" path=/logout occurrences=1`,
		`level=INFO msg="callback refused" err=`,
		`level=WARN msg="form refused: cross-origin" path=/logout occurrences=10`,
		`level=INFO msg="callback refused" err=`,
	}
	if len(lines) != len(want) {
		t.Fatalf("%d lines, want %d:\n%s", len(lines), len(want), buf.String())
	}
	for i, w := range want {
		if !strings.Contains(lines[i], w) {
			t.Errorf("line %d: %s\nwant %s", i, lines[i], w)
		}
		if len(lines[i]) > MaxText+150 {
			t.Errorf("line %d has %d bytes", i, len(lines[i]))
		}
	}
	if !strings.Contains(lines[1], "1800 more bytes") || !strings.Contains(lines[3], "occurrences=10") || !utf8.ValidString(buf.String()) {
		t.Errorf("the long error: %s / %s", lines[1], lines[3])
	}
}

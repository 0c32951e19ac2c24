// Package quiet writes the log lines anyone can cause (a bad Bearer
// token, a form from another site, a forged or spent callback) sampled and
// bounded: one line per message per interval, with how many there were,
// the others at debug, and every value cut to a bounded length. A client
// sending thousands of them cannot fill the log or bury the lines that
// matter, and no request adds more than a few hundred bytes to it.
package quiet

import (
	"context"
	"log/slog"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
)

// Every is the interval: one line of each message per Every.
const Every = 10 * time.Second

// MaxText bounds each value a quiet line carries: an error code from a
// callback's URL or an error that quotes a request is the client's text,
// and its length is the client's choice.
const MaxText = 200

// A Log writes the lines anyone can cause, sampled per message and with
// every value cut to MaxText bytes. It is safe for concurrent use.
type Log struct {
	log   *slog.Logger
	every time.Duration
	now   func() time.Time

	mu   sync.Mutex
	seen map[string]*sampler // by message: this app's own constants, a handful
}

// New returns a Log writing to log, telling the time by now (nil: time.Now).
func New(log *slog.Logger, now func() time.Time) *Log {
	if now == nil {
		now = time.Now
	}
	return &Log{log: log, every: Every, now: now, seen: map[string]*sampler{}}
}

// Log writes msg at level with args, and with occurrences, how many lines
// of this message came since the last one written (this one included),
// unless one was written within the interval: then at debug. msg must be
// one of the caller's constants: the Log keeps a counter per message.
func (q *Log) Log(ctx context.Context, level slog.Level, msg string, args ...any) {
	q.mu.Lock()
	s, ok := q.seen[msg]
	if !ok {
		s = &sampler{every: q.every}
		q.seen[msg] = s
	}
	q.mu.Unlock()
	n, write := s.tally(q.now())
	if !write {
		level = slog.LevelDebug
	}
	if !q.log.Enabled(ctx, level) {
		return
	}
	args = bounded(args)
	if write {
		args = append(args, "occurrences", n)
	}
	q.log.Log(ctx, level, msg, args...)
}

// Info is Log at slog.LevelInfo.
func (q *Log) Info(ctx context.Context, msg string, args ...any) {
	q.Log(ctx, slog.LevelInfo, msg, args...)
}

// Warn is Log at slog.LevelWarn.
func (q *Log) Warn(ctx context.Context, msg string, args ...any) {
	q.Log(ctx, slog.LevelWarn, msg, args...)
}

// bounded returns args with every string and error cut to MaxText bytes.
func bounded(args []any) []any {
	out := make([]any, len(args))
	for i, a := range args {
		switch v := a.(type) {
		case string:
			out[i] = Clip(v)
		case error:
			out[i] = Clip(v.Error())
		case slog.Attr:
			if v.Value.Kind() == slog.KindString || v.Value.Kind() == slog.KindAny {
				v.Value = slog.StringValue(Clip(v.Value.String()))
			}
			out[i] = v
		default:
			out[i] = a
		}
	}
	return out
}

// Clip cuts s to MaxText bytes at a character boundary, saying how much
// was left out.
func Clip(s string) string {
	if len(s) <= MaxText {
		return s
	}
	cut := MaxText
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…(" + strconv.Itoa(len(s)-cut) + " more bytes)"
}

// sampler lets one event in every interval through, counting the rest.
type sampler struct {
	every time.Duration
	mu    sync.Mutex
	last  time.Time
	count int
}

// tally counts an event and reports whether this one may be logged, with
// how many were counted since the last one that was (itself included).
func (s *sampler) tally(now time.Time) (int, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.count++
	if !s.last.IsZero() && now.Sub(s.last) < s.every {
		return 0, false
	}
	n := s.count
	s.last, s.count = now, 0
	return n, true
}

package routes

import (
	"context"
	"log/slog"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
)

// quietEvery paces the lines anyone can cause: a bad Bearer token, a form
// from another site, a forged or spent callback. One of each is written per
// interval, with how many there were; the others go to debug. A client
// sending thousands of them cannot fill the log or bury the lines that
// matter.
const quietEvery = 10 * time.Second

// maxLogText bounds each value a quiet line carries: an error code from a
// callback's URL or an error that quotes a request is the client's text,
// and its length is the client's choice.
const maxLogText = 200

// quietLog writes the lines anyone can cause, sampled per message and
// with every value cut to maxLogText bytes.
type quietLog struct {
	log   *slog.Logger
	every time.Duration
	now   func() time.Time

	mu   sync.Mutex
	seen map[string]*sampler // by message: this app's own constants, a handful
}

func newQuietLog(log *slog.Logger) *quietLog {
	return &quietLog{log: log, every: quietEvery, now: time.Now, seen: map[string]*sampler{}}
}

// Log writes msg at level with args, and with how many lines of this
// message came since the last one written (this one included), unless one
// was written within the interval: then at debug.
func (q *quietLog) Log(ctx context.Context, level slog.Level, msg string, args ...any) {
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

func (q *quietLog) Info(ctx context.Context, msg string, args ...any) {
	q.Log(ctx, slog.LevelInfo, msg, args...)
}

func (q *quietLog) Warn(ctx context.Context, msg string, args ...any) {
	q.Log(ctx, slog.LevelWarn, msg, args...)
}

// bounded returns args with every string and error cut to maxLogText bytes.
func bounded(args []any) []any {
	out := make([]any, len(args))
	for i, a := range args {
		switch v := a.(type) {
		case string:
			out[i] = clip(v)
		case error:
			out[i] = clip(v.Error())
		case slog.Attr:
			if v.Value.Kind() == slog.KindString || v.Value.Kind() == slog.KindAny {
				v.Value = slog.StringValue(clip(v.Value.String()))
			}
			out[i] = v
		default:
			out[i] = a
		}
	}
	return out
}

// clip cuts s to maxLogText bytes at a character boundary, saying how much
// was left out.
func clip(s string) string {
	if len(s) <= maxLogText {
		return s
	}
	cut := maxLogText
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

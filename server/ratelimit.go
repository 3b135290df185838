package server

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// RateLimit returns a slog.Handler that passes to h at most one record
// with the same level and message every interval, so that a flood of
// refused requests writes a line now and then, not one per request. The
// next record passed after some were held back carries their number as
// "suppressed". Debug records all pass: debug logging is asked for. now
// nil means time.Now.
func RateLimit(h slog.Handler, every time.Duration, now func() time.Time) slog.Handler {
	if now == nil {
		now = time.Now
	}
	return &rateLimited{h: h, l: &limiter{every: every, now: now, seen: map[limitKey]*limitState{}}}
}

type rateLimited struct {
	h slog.Handler
	l *limiter
}

type limiter struct {
	every time.Duration
	now   func() time.Time

	mu   sync.Mutex // guards seen
	seen map[limitKey]*limitState
}

type limitKey struct {
	level slog.Level
	msg   string
}

type limitState struct {
	last       time.Time
	suppressed int
}

// maxKeys bounds the limiter's memory should messages carry variable text.
const maxKeys = 1024

// admit reports whether a record may pass, and how many were held back
// before it.
func (l *limiter) admit(level slog.Level, msg string) (bool, int) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	k := limitKey{level, msg}
	st := l.seen[k]
	if st == nil {
		if len(l.seen) >= maxKeys {
			clear(l.seen)
		}
		l.seen[k] = &limitState{last: now}
		return true, 0
	}
	if now.Sub(st.last) < l.every {
		st.suppressed++
		return false, 0
	}
	n := st.suppressed
	st.last, st.suppressed = now, 0
	return true, n
}

func (r *rateLimited) Enabled(ctx context.Context, level slog.Level) bool {
	return r.h.Enabled(ctx, level)
}

func (r *rateLimited) Handle(ctx context.Context, rec slog.Record) error {
	if rec.Level <= slog.LevelDebug {
		return r.h.Handle(ctx, rec)
	}
	ok, n := r.l.admit(rec.Level, rec.Message)
	if !ok {
		return nil
	}
	if n > 0 {
		rec = rec.Clone()
		rec.AddAttrs(slog.Int("suppressed", n))
	}
	return r.h.Handle(ctx, rec)
}

func (r *rateLimited) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &rateLimited{h: r.h.WithAttrs(attrs), l: r.l}
}

func (r *rateLimited) WithGroup(name string) slog.Handler {
	return &rateLimited{h: r.h.WithGroup(name), l: r.l}
}

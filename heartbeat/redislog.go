package heartbeat

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
)

// go-redis (v9.23) writes its own log lines — "connection pool: failed to
// dial after 1 attempts: …", cluster routing trouble, failed closes — to
// one process-wide logger, set with redis.SetLogger; there is no logger per
// client. To bring those lines to the log a service gave this package, the
// first RedisStore opened installs redisLogRouter as that process-wide
// logger (unless WithKeepRedisLogger is given). It hands each line to:
//
//  1. the log carried by the context of the operation that produced it
//     (stores and publishers put theirs in every context they pass to
//     go-redis), so a line about a failed beat reaches that publisher;
//  2. otherwise, for lines go-redis writes outside any operation, every
//     log currently registered (open stores with a log, running
//     publishers);
//  3. otherwise nowhere: nobody asked for them, and the errors they
//     describe reach the caller as return values anyway.
//
// This is package state because go-redis's logger is process state; it is
// the only such state in the package.
var redisLogs = &redisLogRouter{sinks: make(map[*logSink]struct{})}

// logSink is one registered log. Registration is by pointer, so two
// registrations of the same function are two sinks.
type logSink struct{ log func(error) }

type redisLogRouter struct {
	installOnce sync.Once

	mu    sync.Mutex // guards sinks
	sinks map[*logSink]struct{}
}

// install makes r go-redis's process-wide logger, once per process.
func (r *redisLogRouter) install() {
	r.installOnce.Do(func() { redis.SetLogger(r) })
}

// register adds log to the fallback sinks until the returned function is
// called.
func (r *redisLogRouter) register(log func(error)) (unregister func()) {
	s := &logSink{log: log}
	r.mu.Lock()
	r.sinks[s] = struct{}{}
	r.mu.Unlock()
	return func() {
		r.mu.Lock()
		delete(r.sinks, s)
		r.mu.Unlock()
	}
}

// Printf implements go-redis's Logging interface.
func (r *redisLogRouter) Printf(ctx context.Context, format string, v ...any) {
	err := errors.New("go-redis: " + strings.TrimPrefix(fmt.Sprintf(format, v...), "redis: "))
	if ctx != nil {
		if s, ok := ctx.Value(logSinkKey{}).(*logSink); ok {
			s.log(err)
			return
		}
	}
	r.mu.Lock()
	sinks := make([]*logSink, 0, len(r.sinks))
	for s := range r.sinks {
		sinks = append(sinks, s)
	}
	r.mu.Unlock()
	for _, s := range sinks {
		s.log(err)
	}
}

// logSinkKey is the context key under which an operation carries its log.
type logSinkKey struct{}

// withLog returns ctx carrying log for go-redis's lines about operations
// run under it. A nil log leaves ctx as it is, so an outer log (a
// publisher's) still applies.
func withLog(ctx context.Context, log func(error)) context.Context {
	if log == nil {
		return ctx
	}
	return context.WithValue(ctx, logSinkKey{}, &logSink{log: log})
}

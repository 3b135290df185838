package heartbeat

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// mirrorLogEvery is how often Mirror reports one kind of problem at most;
// the others of that kind in between are counted in the next report.
const mirrorLogEvery = time.Minute

// errNotNewer ends a mirror transaction that has nothing to write.
var errNotNewer = errors.New("stored heartbeat is as new")

// Mirror makes services that only PUBLISH their heartbeats visible to Get,
// List, heartbeat jobs and discovery. It subscribes to every service's
// channel, as Watch does, and stores each valid heartbeat under its
// service's key when it is newer than the one stored there, or there is
// none, with the store's TTL and service cap. It never publishes, so
// heartbeats that Put stores and publishes are seen again and left alone.
//
// A message is stored only when it decodes and its service_name is the one
// its channel names, so a publisher cannot write another service's key.
// Refused messages, a full store (ErrTooManyServices) and write failures
// are reported to the store log (WithStoreLog), each kind at most once a
// minute with a count of the others, so a flood of bad messages does not
// flood the log.
//
// Mirror runs until ctx is done and then returns nil; it reconnects as
// Watch does, and returns an error only when it cannot subscribe at all.
// Run one Mirror per store (e.g. in checker serve); several are harmless,
// since each write is a compare-and-set on the key.
func (s *RedisStore) Mirror(ctx context.Context) error {
	lim := &logLimiter{every: mirrorLogEvery, now: s.now, log: s.log}
	return s.subscribe(ctx, func(rm *redis.Message) {
		service, ok := s.patterns.ServiceFromChannel(rm.Channel)
		if !ok {
			lim.report("channel", fmt.Errorf("heartbeat mirror: channel %q names no valid service; message ignored", Escape(rm.Channel)))
			return
		}
		payload := []byte(rm.Payload)
		m, err := Decode(payload)
		if err != nil {
			lim.report("decode", fmt.Errorf("heartbeat mirror: message on channel %q not stored: %w", Escape(rm.Channel), err))
			return
		}
		if m.ServiceName != service {
			lim.report("mismatch", fmt.Errorf("heartbeat mirror: message on channel %q is from service %q; not stored", Escape(rm.Channel), m.ServiceName))
			return
		}
		if _, err := s.storeIfNewer(ctx, m, payload); err != nil && ctx.Err() == nil {
			kind := "store"
			if errors.Is(err, ErrTooManyServices) {
				kind = "full"
			}
			lim.report(kind, fmt.Errorf("heartbeat mirror: %w", err))
		}
	})
}

// storeIfNewer writes payload, the encoding of m, to m's key unless the
// key holds a heartbeat of the same service at least as new. It reports
// whether it wrote. The read and the write are one optimistic transaction
// (WATCH/MULTI), retried when another writer got in between.
func (s *RedisStore) storeIfNewer(ctx context.Context, m Message, payload []byte) (bool, error) {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	c, err := s.conn(ctx)
	if err != nil {
		return false, err
	}
	key := s.patterns.KeyFor(m.ServiceName)
	if err := s.admit(ctx, c, m.ServiceName, key); err != nil {
		return false, err
	}
	for range 3 {
		err = c.Watch(ctx, func(tx *redis.Tx) error {
			cur, err := tx.GetRange(ctx, key, 0, MaxMessageSize).Bytes()
			if err != nil && !errors.Is(err, redis.Nil) {
				return err
			}
			if len(cur) > 0 {
				// A value that does not decode is replaced by a valid one.
				if old, err := Decode(cur); err == nil && old.ServiceName == m.ServiceName && !m.Timestamp.After(old.Timestamp) {
					return errNotNewer
				}
			}
			cmds, err := tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.Set(ctx, key, payload, s.keyTTL)
				return nil
			})
			return txCause(cmds, err)
		}, key)
		if !errors.Is(err, redis.TxFailedErr) {
			break
		}
	}
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, errNotNewer):
		return false, nil
	}
	return false, s.fail("SET "+key, err)
}

// txCause returns the error of a transaction that ran cmds: for
// EXECABORT, which only says the transaction was discarded, the error of
// the command the server refused while queueing it (OOM, NOPERM, …).
func txCause(cmds []redis.Cmder, err error) error {
	if err == nil || !strings.HasPrefix(err.Error(), "EXECABORT") {
		return err
	}
	for _, c := range cmds {
		if cerr := c.Err(); cerr != nil && !strings.HasPrefix(cerr.Error(), "EXECABORT") {
			return fmt.Errorf("%w (%v)", cerr, err)
		}
	}
	return err
}

// logLimiter passes at most one error of each kind per period to log,
// counting the ones it holds back.
type logLimiter struct {
	every time.Duration
	now   func() time.Time
	log   func(error)

	mu   sync.Mutex // guards last and held
	last map[string]time.Time
	held map[string]int
}

func (l *logLimiter) report(kind string, err error) {
	l.mu.Lock()
	if l.last == nil {
		l.last, l.held = make(map[string]time.Time), make(map[string]int)
	}
	now := l.now()
	if last, ok := l.last[kind]; ok && now.Sub(last) < l.every && now.Sub(last) >= 0 {
		l.held[kind]++
		l.mu.Unlock()
		return
	}
	held := l.held[kind]
	l.last[kind], l.held[kind] = now, 0
	l.mu.Unlock()
	if held > 0 {
		err = fmt.Errorf("%w (and %d more like it in the last %s)", err, held, l.every)
	}
	l.log(err)
}

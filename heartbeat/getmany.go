package heartbeat

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// GetMany returns the latest heartbeats of the named services that have
// one, sorted by service name, reading only those services: on Redis, one
// pipelined read (per cluster node) of their keys, with no SCAN, so that
// an ACL user allowed GET but not SCAN can use it. With no services it
// only checks that the store answers. Like List, it returns the readable
// heartbeats together with an *UnreadableError when some entries cannot
// be read; any other error is the store's.
func GetMany(ctx context.Context, s Store, services []string) ([]Message, error) {
	if rs, ok := s.(*RedisStore); ok {
		return rs.GetMany(ctx, services)
	}
	var (
		msgs    []Message
		bad     []error
		badName []string
	)
	for _, svc := range dedupe(services) {
		m, found, err := s.Get(ctx, svc)
		if err != nil {
			if ctx.Err() != nil || IsUnavailable(err) {
				return nil, err
			}
			bad, badName = append(bad, err), append(badName, svc)
			continue
		}
		if found {
			msgs = append(msgs, m)
		}
	}
	if len(bad) > 0 {
		return msgs, &UnreadableError{Services: badName, Err: errors.Join(bad...), where: "heartbeat store"}
	}
	return msgs, nil
}

// dedupe returns the valid service names of services, sorted, each once.
func dedupe(services []string) []string {
	seen := make(map[string]bool, len(services))
	var out []string
	for _, s := range services {
		if !seen[s] && ValidServiceName(s) == nil {
			seen[s] = true
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out
}

// GetMany is the package's GetMany on Redis: one pipeline of GETRANGE
// (which a cluster client splits by node), no SCAN. With no services it
// sends a PING.
func (s *RedisStore) GetMany(ctx context.Context, services []string) ([]Message, error) {
	names := dedupe(services)
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	c, err := s.conn(ctx)
	if err != nil {
		return nil, err
	}
	if len(names) == 0 {
		if err := c.Ping(ctx).Err(); err != nil {
			return nil, s.fail("PING", err)
		}
		return nil, nil
	}
	read := func() ([]redis.Cmder, error) {
		return c.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, svc := range names {
				s.read(ctx, p, s.patterns.KeyFor(svc))
			}
			return nil
		})
	}
	cmds, err := read()
	if len(cmds) > 0 && s.noGetRange(cmds[0].Err()) {
		cmds, err = read() // with GET
	}
	if pipelineFailed(cmds, err) {
		return nil, s.fail(s.readName()+" "+s.patterns.KeyFor(names[0])+" …", err)
	}
	var (
		msgs    []Message
		bad     []error
		badName []string
	)
	for i, cmd := range cmds {
		svc, key := names[i], s.patterns.KeyFor(names[i])
		b, err := cmd.(*redis.StringCmd).Bytes()
		if errors.Is(err, redis.Nil) {
			continue
		}
		var reply redis.Error
		if err != nil && (!errors.As(err, &reply) || isConnectionError(err) || isAccessError(err)) {
			// A broken connection, or the server refusing this user the
			// command: the store's problem, not this entry's.
			return nil, s.fail(s.readName()+" "+key, err)
		}
		var m Message
		switch {
		case err != nil:
			err = fmt.Errorf("%s: %w", key, err) // WRONGTYPE: another program's key
		case len(b) == 0:
			// A missing key and an empty value both read "": Get tells
			// them apart.
			var found bool
			if m, found, err = s.Get(ctx, svc); err == nil && !found {
				continue
			}
			if err != nil && (IsUnavailable(err) || ctx.Err() != nil) {
				return nil, err
			}
		default:
			m, err = s.decodeEntry(key, svc, b)
		}
		if err != nil {
			bad, badName = append(bad, err), append(badName, svc)
			continue
		}
		msgs = append(msgs, m)
	}
	if len(bad) > 0 {
		return msgs, &UnreadableError{Services: badName, Err: errors.Join(bad...), where: "heartbeat store " + s.addr}
	}
	return msgs, nil
}

// probeTTL is how long the key CheckWritable writes lives.
const probeTTL = 10 * time.Second

// CheckWritable checks that the store accepts writes, so that a server out
// of memory (maxmemory with noeviction: OOM), a read-only replica
// (READONLY) or one whose snapshots fail (MISCONF) shows as one store
// problem instead of every publisher failing in turn: it SETs the key of
// the empty service name (which names no service, so listings ignore it)
// with a 10s time to live. A user not allowed that write (NOPERM) cannot
// tell, and CheckWritable returns nil. On a cluster it tries the master
// that holds that key only. It costs one round trip.
func (s *RedisStore) CheckWritable(ctx context.Context) error {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	c, err := s.conn(ctx)
	if err != nil {
		return err
	}
	key := s.patterns.KeyFor("")
	err = c.Set(ctx, key, "write probe", probeTTL).Err()
	if err == nil || (isAccessError(err) && strings.HasPrefix(err.Error(), "NOPERM")) {
		return nil
	}
	var reply redis.Error
	if errors.As(err, &reply) && !isConnectionError(err) {
		return fmt.Errorf("heartbeat store %s refuses writes, so no heartbeat can be stored: SET %s: %w", s.addr, key, err)
	}
	return s.fail("SET "+key, err)
}

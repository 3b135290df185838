package heartbeat

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Store keeps the latest heartbeat of every service and passes new ones on
// to watchers. RedisStore and LocalStore implement it.
type Store interface {
	// Put saves m as the latest heartbeat of m.ServiceName and publishes it
	// to watchers.
	Put(ctx context.Context, m Message) error
	// Get returns the latest heartbeat of service; false means the service
	// has never published.
	Get(ctx context.Context, service string) (Message, bool, error)
	// List returns the latest heartbeat of every known service, sorted by
	// service name. When some entries cannot be read it returns the readable
	// ones together with an error naming the others.
	List(ctx context.Context) ([]Message, error)
	// Watch calls fn for each heartbeat published from now on, one at a
	// time, until ctx is done, and then returns nil. It returns early with an
	// error only when it cannot keep watching.
	Watch(ctx context.Context, fn func(Message)) error
	// Close releases the store's resources.
	Close() error
}

// ServicePlaceholder is the part of a Patterns string replaced by the
// service name.
const ServicePlaceholder = "{service}"

// Patterns name the Redis key that holds a service's latest heartbeat and
// the channel it is published on. Each must contain ServicePlaceholder
// exactly once; an empty field means the default,
// "heartbeat:service:{service}" for both.
type Patterns struct {
	Key     string
	Channel string
}

// DefaultPatterns returns the default key and channel patterns.
func DefaultPatterns() Patterns {
	return Patterns{Key: "heartbeat:service:{service}", Channel: "heartbeat:service:{service}"}
}

// WithDefaults returns p with empty fields set to their defaults.
func (p Patterns) WithDefaults() Patterns {
	d := DefaultPatterns()
	if p.Key == "" {
		p.Key = d.Key
	}
	if p.Channel == "" {
		p.Channel = d.Channel
	}
	return p
}

// Validate returns an error unless each non-empty pattern contains
// ServicePlaceholder exactly once.
func (p Patterns) Validate() error {
	for _, f := range []struct{ name, val string }{{"key", p.Key}, {"channel", p.Channel}} {
		if f.val == "" {
			continue
		}
		if n := strings.Count(f.val, ServicePlaceholder); n != 1 {
			return fmt.Errorf("heartbeat %s pattern %q must contain %s exactly once, found %d", f.name, f.val, ServicePlaceholder, n)
		}
	}
	return nil
}

// KeyFor returns the key holding service's latest heartbeat.
func (p Patterns) KeyFor(service string) string {
	return strings.Replace(p.WithDefaults().Key, ServicePlaceholder, service, 1)
}

// ChannelFor returns the channel service's heartbeats are published on.
func (p Patterns) ChannelFor(service string) string {
	return strings.Replace(p.WithDefaults().Channel, ServicePlaceholder, service, 1)
}

// KeyGlob returns a Redis glob matching every service's key.
func (p Patterns) KeyGlob() string { return patternGlob(p.WithDefaults().Key) }

// ChannelGlob returns a Redis glob matching every service's channel, for
// PSUBSCRIBE.
func (p Patterns) ChannelGlob() string { return patternGlob(p.WithDefaults().Channel) }

// ServiceFromKey returns the service whose key is key, or false if key does
// not follow the key pattern or names no valid service.
func (p Patterns) ServiceFromKey(key string) (string, bool) {
	return serviceFrom(p.WithDefaults().Key, key)
}

// ServiceFromChannel is ServiceFromKey for channel names.
func (p Patterns) ServiceFromChannel(channel string) (string, bool) {
	return serviceFrom(p.WithDefaults().Channel, channel)
}

func serviceFrom(pattern, s string) (string, bool) {
	prefix, suffix, ok := strings.Cut(pattern, ServicePlaceholder)
	if !ok || !strings.HasPrefix(s, prefix) || !strings.HasSuffix(s, suffix) || len(s) < len(prefix)+len(suffix) {
		return "", false
	}
	service := s[len(prefix) : len(s)-len(suffix)]
	if ValidServiceName(service) != nil {
		return "", false
	}
	return service, true
}

// patternGlob escapes Redis glob metacharacters in pattern and turns the
// placeholder into '*'.
func patternGlob(pattern string) string {
	prefix, suffix, _ := strings.Cut(pattern, ServicePlaceholder)
	return globEscape(prefix) + "*" + globEscape(suffix)
}

func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '*', '?', '[', ']', '\\':
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// StoreOption adjusts a store opened by OpenRedis or OpenLocal.
type StoreOption func(*storeConfig)

type storeConfig struct {
	errorLog     func(error)
	pollInterval time.Duration
}

func newStoreConfig(opts []StoreOption) storeConfig {
	c := storeConfig{errorLog: func(error) {}, pollInterval: 500 * time.Millisecond}
	for _, o := range opts {
		o(&c)
	}
	return c
}

// WithWatchErrorLog sets the function told about problems Watch skips over, such
// as a malformed message or an unreadable file. By default they are dropped.
// fn may be called from the goroutine running Watch.
func WithWatchErrorLog(fn func(error)) StoreOption {
	return func(c *storeConfig) {
		if fn != nil {
			c.errorLog = fn
		}
	}
}

// WithPollInterval sets how often LocalStore.Watch looks for new heartbeats
// (default 500ms). RedisStore ignores it.
func WithPollInterval(d time.Duration) StoreOption {
	return func(c *storeConfig) {
		if d > 0 {
			c.pollInterval = d
		}
	}
}

// ErrTooManyServices is returned by Put when the store already keeps its
// maximum number of services (WithMaxServices) and m is of a new one.
var ErrTooManyServices = errors.New("heartbeat store: too many services")

// unavailableError marks a failure to reach the store at all, as opposed to
// the store answering with an error.
type unavailableError struct{ cause error }

func (e *unavailableError) Error() string {
	return "heartbeat store unreachable: " + e.cause.Error()
}

func (e *unavailableError) Unwrap() error { return e.cause }

// IsUnavailable reports whether err, or an error it wraps, says the store
// could not be reached (connection refused, timeout, broken connection).
// Such errors read "heartbeat store unreachable: <cause>", one clear reason
// to show instead of every operation's failure.
func IsUnavailable(err error) bool {
	var u *unavailableError
	return errors.As(err, &u)
}

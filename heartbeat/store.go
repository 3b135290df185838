package heartbeat

import (
	"context"
	"crypto/tls"
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
	// Delete removes the service's latest heartbeat, if any (`checker
	// heartbeat forget`); a service that publishes again comes back.
	Delete(ctx context.Context, service string) error
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

// StoreOption adjusts a store opened by OpenRedis, NewRedisStore, OpenLocal
// or OpenStore.
type StoreOption func(*storeConfig)

type storeConfig struct {
	log             func(error) // nil when none was given
	pollInterval    time.Duration
	now             func() time.Time
	maxServices     int
	keyTTL          time.Duration
	tlsConfig       *tls.Config
	keepRedisLogger bool
}

func newStoreConfig(opts []StoreOption) storeConfig {
	c := storeConfig{pollInterval: 500 * time.Millisecond, now: time.Now}
	for _, o := range opts {
		o(&c)
	}
	return c
}

// logf returns the store's log, or one that drops everything.
func (c storeConfig) logf() func(error) {
	if c.log == nil {
		return func(error) {}
	}
	return c.log
}

// WithStoreLog sets where a store reports what it skips over or recovers
// from: a malformed message or unreadable file met by Watch, a lost and
// restored subscription, heartbeats Mirror refuses, and go-redis's own log
// lines about this store's connections (see WithKeepRedisLogger). By
// default they are dropped. fn may be called from any goroutine, including
// the one running Watch; it must not block.
//
// The errors that mean a watch lost its subscription or got it back match
// ErrWatchLost and ErrWatchRestored with errors.Is.
func WithStoreLog(fn func(error)) StoreOption {
	return func(c *storeConfig) { c.log = fn }
}

// WithWatchErrorLog is WithStoreLog under its former name.
//
// Deprecated: use WithStoreLog, which also receives reconnection notices
// and go-redis's log lines.
func WithWatchErrorLog(fn func(error)) StoreOption { return WithStoreLog(fn) }

// WithPollInterval sets how often LocalStore.Watch looks for new heartbeats
// (default 500ms). RedisStore ignores it.
func WithPollInterval(d time.Duration) StoreOption {
	return func(c *storeConfig) {
		if d > 0 {
			c.pollInterval = d
		}
	}
}

// WithStoreClock sets the clock a store uses to age its entries (default
// time.Now).
func WithStoreClock(now func() time.Time) StoreOption {
	return func(c *storeConfig) {
		if now != nil {
			c.now = now
		}
	}
}

// WithMaxServices caps the number of services a store keeps: Put of a new
// service beyond n fails with ErrTooManyServices, while services the store
// already keeps always update. n <= 0 means no cap (the default). The count
// is cached and refreshed at most every few seconds, so that the check
// costs no scan per Put; several writers at once may briefly overshoot the
// cap by a few services, never without bound.
func WithMaxServices(n int) StoreOption {
	return func(c *storeConfig) { c.maxServices = max(n, 0) }
}

// WithKeyTTL makes heartbeats expire: a Redis key is set with this time to
// live, and a LocalStore entry not updated for this long is treated as gone
// and pruned. 0 (the default) keeps heartbeats until they are replaced. A
// service whose heartbeat expired reads as never seen.
func WithKeyTTL(d time.Duration) StoreOption {
	return func(c *storeConfig) { c.keyTTL = max(d, 0) }
}

// WithTLSConfig sets the TLS settings of a Redis store (see LoadTLSConfig
// for building them from files). With a rediss:// URL they replace the
// default ones, keeping the URL's host as the server name when cfg names
// none; with a list of host:port they turn TLS on. A redis:// URL says
// "no TLS" and is refused with them. cfg is cloned; a nil cfg changes
// nothing. LocalStore ignores it.
func WithTLSConfig(cfg *tls.Config) StoreOption {
	return func(c *storeConfig) {
		if cfg != nil {
			c.tlsConfig = cfg.Clone()
		}
	}
}

// WithKeepRedisLogger leaves go-redis's process-wide logger alone. By
// default the first Redis store opened in a process replaces it (with
// redis.SetLogger) by one that passes each go-redis log line to the log of
// the store or publisher whose operation it is about (WithStoreLog,
// WithErrorLog), and drops the lines nobody asked for, instead of writing
// them to stderr. A service that sets its own go-redis logger should pass
// this option to every store it opens.
func WithKeepRedisLogger() StoreOption {
	return func(c *storeConfig) { c.keepRedisLogger = true }
}

// StoreConfig names a store the way checker's [heartbeat] section does;
// OpenStore opens it.
type StoreConfig struct {
	// Redis is the address ParseRedisSpec reads; empty means the local
	// store in LocalDir.
	Redis    string
	Patterns Patterns
	LocalDir string
	// TLSCA, TLSCert and TLSKey are PEM files for a rediss:// store (see
	// LoadTLSConfig).
	TLSCA, TLSCert, TLSKey string
	// MaxServices and KeyTTL are as WithMaxServices and WithKeyTTL.
	MaxServices int
	KeyTTL      time.Duration
}

// OpenStore opens the store c names: Redis when c.Redis is set, else the
// local store in c.LocalDir. It does not connect; an unreachable server
// shows on first use. opts come after those derived from c.
func OpenStore(c StoreConfig, opts ...StoreOption) (Store, error) {
	base := []StoreOption{WithMaxServices(c.MaxServices), WithKeyTTL(c.KeyTTL)}
	if c.Redis == "" {
		return OpenLocal(c.LocalDir, append(base, opts...)...)
	}
	if c.TLSCA != "" || c.TLSCert != "" || c.TLSKey != "" {
		cfg, err := LoadTLSConfig(c.TLSCA, c.TLSCert, c.TLSKey)
		if err != nil {
			return nil, err
		}
		base = append(base, WithTLSConfig(cfg))
	}
	return OpenRedis(c.Redis, c.Patterns, append(base, opts...)...)
}

// UnreadableError is returned by List, together with the heartbeats it
// could read, when some entries could not be read or decoded (a bad value,
// a key of another type): those services' own problem, not the store's.
type UnreadableError struct {
	// Services are the services whose entries could not be read.
	Services []string
	// Err joins the reasons, one per entry.
	Err   error
	where string
}

func (e *UnreadableError) Error() string {
	return fmt.Sprintf("%s: %d unreadable heartbeat(s): %v", e.where, len(e.Services), e.Err)
}

func (e *UnreadableError) Unwrap() error { return e.Err }

// ErrTooManyServices is returned by Put when the store already keeps its
// maximum number of services (WithMaxServices) and m is of a new one.
var ErrTooManyServices = errors.New("heartbeat store: too many services")

// ErrWatchLost and ErrWatchRestored mark the store log entries (see
// WithStoreLog) saying that a running Watch lost its subscription and is
// reconnecting, and that it is back.
var (
	ErrWatchLost     = errors.New("heartbeat watch: subscription lost")
	ErrWatchRestored = errors.New("heartbeat watch: subscription restored")
)

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

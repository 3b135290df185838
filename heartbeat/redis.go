package heartbeat

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// Timeouts for Redis. They are short so that a dead or unreachable server
// fails a cron run in seconds instead of hanging it.
const (
	redisDialTimeout = 2 * time.Second
	redisIOTimeout   = 2 * time.Second
	// redisOpTimeout bounds Put and Get as a whole, retries included.
	redisOpTimeout = 5 * time.Second
	// redisHealthCheck is how long Watch waits in silence before it checks
	// the subscription with a PING.
	redisHealthCheck = 30 * time.Second
	redisScanCount   = 500
	// A Watch that lost its subscription tries again after watchRetryMin,
	// doubling the wait after each failure up to watchRetryMax.
	watchRetryMin = 100 * time.Millisecond
	watchRetryMax = 5 * time.Second
)

// RedisStore is a Store on Redis, Valkey or Dragonfly, standalone or
// clustered. The latest heartbeat of a service is the value of its key and
// each Put is also PUBLISHed on its channel, as named by Patterns.
type RedisStore struct {
	patterns Patterns
	addr     string      // server address(es) for messages, never with credentials
	log      func(error) // the store log; never nil
	opLog    func(error) // the store log when one was given, for go-redis's lines; else nil
	keyTTL   time.Duration
	now      func() time.Time
	cap      *serviceCap // nil without WithMaxServices
	db       int         // the database selected, for messages
	// cluster is set once the client is a cluster client: a failure may
	// then be another node's than the address given.
	cluster atomic.Bool
	// getOnly is set once the server refused this user GETRANGE: reads use
	// GET instead (the whole value, still refused past MaxMessageSize).
	getOnly atomic.Bool
	owned   bool // Close closes the client
	// unregister removes the store log from the go-redis log router.
	unregister func()
	// healthCheck is how long Watch waits in silence before it checks the
	// subscription with a PING; retryMin and retryMax bound the wait
	// between reconnection attempts. Tests shorten them.
	healthCheck, retryMin, retryMax time.Duration

	mu     sync.Mutex // guards client and detect
	client redis.UniversalClient
	// detect holds the options of a single node until it has been asked
	// (INFO cluster) whether it is a cluster node; nil once known.
	detect *redis.Options
}

// OpenRedis returns a store on the server named by spec (see
// ParseRedisSpec), which is one of:
//
//   - a redis:// or rediss:// (TLS) URL as read by redis.ParseURL, e.g.
//     rediss://user:secret@cache.example.com:6379/0;
//   - such a URL with addr=host:port query parameters naming more cluster
//     nodes, as read by redis.ParseClusterURL;
//   - a comma-separated list of host:port cluster node addresses, e.g.
//     "10.0.0.1:6379,10.0.0.2:6379", or a single host:port.
//
// A single node (a URL without addr=, or one host:port) may be a node of a
// Redis Cluster, as a cloud provider's configuration endpoint is: on first
// use the store asks it (INFO cluster) and, when it reports
// cluster_enabled:1, uses the whole cluster through it. A server that
// refuses INFO is used as a standalone server, and this is logged.
//
// Empty fields of p take their defaults. OpenRedis does not connect: an
// unreachable server shows up as an error on first use, for which
// IsUnavailable holds. Timeouts not given in the URL default to 2s for
// dialing, reading and writing. Errors never contain the password.
//
// Unless WithKeepRedisLogger is given, the first Redis store of a process
// replaces go-redis's process-wide logger; see WithKeepRedisLogger.
func OpenRedis(spec string, p Patterns, opts ...StoreOption) (*RedisStore, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	rs, err := ParseRedisSpec(spec)
	if err != nil {
		return nil, fmt.Errorf("heartbeat: %w", err)
	}
	cfg := newStoreConfig(opts)
	if cfg.tlsConfig != nil && rs.URL && !rs.TLS {
		return nil, fmt.Errorf("heartbeat: redis URL for %s: %w", rs.Addrs[0], errTLSWithoutRediss)
	}
	s := newRedisStore(p, rs.String(), cfg)
	s.owned = true
	switch {
	case rs.clOptions != nil:
		o := rs.clOptions
		o.TLSConfig = mergeTLS(cfg.tlsConfig, o.TLSConfig, rs.Addrs[0])
		tuneClusterOptions(o)
		s.client = redis.NewClusterClient(o)
		s.cluster.Store(true)
	case rs.options != nil:
		o := rs.options
		o.TLSConfig = mergeTLS(cfg.tlsConfig, o.TLSConfig, rs.Addrs[0])
		tuneOptions(o)
		s.client, s.detect, s.db = redis.NewClient(o), o, o.DB
	case len(rs.Addrs) > 1:
		o := &redis.ClusterOptions{Addrs: rs.Addrs, TLSConfig: mergeTLS(cfg.tlsConfig, nil, rs.Addrs[0])}
		tuneClusterOptions(o)
		s.client = redis.NewClusterClient(o)
		s.cluster.Store(true)
	default:
		o := &redis.Options{Addr: rs.Addrs[0], TLSConfig: mergeTLS(cfg.tlsConfig, nil, rs.Addrs[0])}
		tuneOptions(o)
		s.client, s.detect = redis.NewClient(o), o
	}
	return s, nil
}

// NewRedisStore returns a store on client, a go-redis client the caller
// already has (a *redis.Client, *redis.ClusterClient, *redis.Ring or
// failover client). The store uses the client as it is — its timeouts,
// TLS and cluster settings — and Close leaves it open: the caller owns it.
// WithTLSConfig does not apply.
//
// Unless WithKeepRedisLogger is given, the first Redis store of a process
// replaces go-redis's process-wide logger; see WithKeepRedisLogger.
func NewRedisStore(client redis.UniversalClient, p Patterns, opts ...StoreOption) (*RedisStore, error) {
	if client == nil {
		return nil, errors.New("heartbeat: redis client is nil")
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	cfg := newStoreConfig(opts)
	s := newRedisStore(p, clientAddr(client), cfg)
	s.client = client
	switch c := client.(type) {
	case *redis.Client:
		s.db = c.Options().DB
	case *redis.ClusterClient:
		s.cluster.Store(true)
	}
	return s, nil
}

func newRedisStore(p Patterns, addr string, cfg storeConfig) *RedisStore {
	s := &RedisStore{
		patterns: p.WithDefaults(), addr: addr, log: cfg.logf(), opLog: cfg.log,
		keyTTL: cfg.keyTTL, now: cfg.now, healthCheck: redisHealthCheck, retryMin: watchRetryMin, retryMax: watchRetryMax,
		unregister: func() {},
	}
	if cfg.maxServices > 0 {
		s.cap = newServiceCap(cfg.maxServices, cfg.now)
	}
	if !cfg.keepRedisLogger {
		redisLogs.install()
	}
	if cfg.log != nil {
		s.unregister = redisLogs.register(cfg.log)
	}
	return s
}

// clientAddr names the server(s) of a caller's client for messages.
func clientAddr(c redis.UniversalClient) string {
	switch c := c.(type) {
	case *redis.Client:
		return c.Options().Addr
	case *redis.ClusterClient:
		return strings.Join(c.Options().Addrs, ",")
	case *redis.Ring:
		var addrs []string
		for _, a := range c.Options().Addrs {
			addrs = append(addrs, a)
		}
		sort.Strings(addrs)
		return strings.Join(addrs, ",")
	}
	return fmt.Sprintf("%T", c)
}

// mergeTLS returns the TLS settings to use: the caller's (a clone) when
// given, with the URL's server name when they name none; else go-redis's
// from the URL, if any.
func mergeTLS(given, fromURL *tls.Config, addr string) *tls.Config {
	if given == nil {
		return fromURL
	}
	c := given.Clone()
	if c.ServerName == "" {
		if fromURL != nil && fromURL.ServerName != "" {
			c.ServerName = fromURL.ServerName
		} else if host, _, err := net.SplitHostPort(addr); err == nil {
			c.ServerName = host
		}
	}
	if c.MinVersion == 0 {
		c.MinVersion = tls.VersionTLS12
	}
	return c
}

// tuneOptions fills in short timeouts and few retries where the URL left
// the go-redis defaults (5s timeouts, 3 retries of 5 dial attempts each),
// and turns off what costs a round trip per connection for nothing here.
func tuneOptions(o *redis.Options) {
	o.DialTimeout = orDefault(o.DialTimeout, redisDialTimeout)
	o.ReadTimeout = orDefault(o.ReadTimeout, redisIOTimeout)
	o.WriteTimeout = orDefault(o.WriteTimeout, redisIOTimeout)
	o.PoolTimeout = orDefault(o.PoolTimeout, redisIOTimeout)
	if o.MaxRetries == 0 {
		o.MaxRetries = 1
	}
	if o.DialerRetries == 0 {
		o.DialerRetries = 1
	}
	o.ContextTimeoutEnabled = true
	o.DisableIdentity = true
	o.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
}

func tuneClusterOptions(o *redis.ClusterOptions) {
	o.DialTimeout = orDefault(o.DialTimeout, redisDialTimeout)
	o.ReadTimeout = orDefault(o.ReadTimeout, redisIOTimeout)
	o.WriteTimeout = orDefault(o.WriteTimeout, redisIOTimeout)
	o.PoolTimeout = orDefault(o.PoolTimeout, redisIOTimeout)
	if o.MaxRetries == 0 {
		o.MaxRetries = 1
	}
	if o.DialerRetries == 0 {
		o.DialerRetries = 1
	}
	o.ContextTimeoutEnabled = true
	o.DisableIdentity = true
	o.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
}

// clusterOptionsFrom returns cluster options that reach the cluster through
// the node o names, with o's credentials, TLS and timeouts.
func clusterOptionsFrom(o *redis.Options) *redis.ClusterOptions {
	return &redis.ClusterOptions{
		Addrs:                 []string{o.Addr},
		ClientName:            o.ClientName,
		Protocol:              o.Protocol,
		Username:              o.Username,
		Password:              o.Password,
		MaxRetries:            o.MaxRetries,
		MinRetryBackoff:       o.MinRetryBackoff,
		MaxRetryBackoff:       o.MaxRetryBackoff,
		DialTimeout:           o.DialTimeout,
		DialerRetries:         o.DialerRetries,
		ReadTimeout:           o.ReadTimeout,
		WriteTimeout:          o.WriteTimeout,
		ContextTimeoutEnabled: o.ContextTimeoutEnabled,
		PoolFIFO:              o.PoolFIFO,
		PoolSize:              o.PoolSize,
		PoolTimeout:           o.PoolTimeout,
		MinIdleConns:          o.MinIdleConns,
		MaxIdleConns:          o.MaxIdleConns,
		MaxActiveConns:        o.MaxActiveConns,
		ConnMaxIdleTime:       o.ConnMaxIdleTime,
		ConnMaxLifetime:       o.ConnMaxLifetime,
		TLSConfig:             o.TLSConfig,
		DisableIdentity:       true,
		MaintNotificationsConfig: &maintnotifications.Config{
			Mode: maintnotifications.ModeDisabled,
		},
	}
}

// conn returns the client, first finding out whether a single node is a
// cluster node. It fails only when that question cannot be asked.
func (s *RedisStore) conn(ctx context.Context) (redis.UniversalClient, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.detect == nil {
		return s.client, nil
	}
	info, err := s.client.Info(ctx, "cluster").Result()
	if err != nil {
		var reply redis.Error // the server's error reply
		msg := err.Error()
		refused := errors.As(err, &reply) && ((strings.HasPrefix(msg, "NOPERM") && strings.Contains(msg, "'info'")) || strings.HasPrefix(msg, "ERR"))
		if !refused || isConnectionError(err) || ctx.Err() != nil {
			// Not asked at all (unreachable, TLS, authentication,
			// loading): ask again next time.
			return nil, s.fail("INFO cluster", err)
		}
		// An ACL may forbid INFO. Such a node is most likely standalone;
		// were it a cluster node, commands would fail with MOVED, which
		// fail() explains.
		s.log(fmt.Errorf("heartbeat store %s: cannot tell whether it is a cluster node (INFO cluster: %v); using it as a standalone server", s.addr, err))
		s.detect = nil
		return s.client, nil
	}
	if strings.Contains(info, "cluster_enabled:1") {
		if s.detect.DB != 0 {
			return nil, fmt.Errorf("heartbeat store %s is a Redis Cluster node: a cluster has only database 0, not %d", s.addr, s.detect.DB)
		}
		old := s.client
		s.client = redis.NewClusterClient(clusterOptionsFrom(s.detect))
		s.cluster.Store(true)
		_ = old.Close()
	}
	s.detect = nil
	return s.client, nil
}

// opContext bounds one operation and carries the store log to go-redis.
func (s *RedisStore) opContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(withLog(ctx, s.opLog), redisOpTimeout)
}

func orDefault(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// Put stores m under its service's key (with the store's TTL) and
// publishes it on its channel, in one round trip. With WithMaxServices, a
// service the store does not know yet costs one EXISTS more, and Put fails
// with ErrTooManyServices when the store is full.
func (s *RedisStore) Put(ctx context.Context, m Message) error {
	if err := ValidServiceName(m.ServiceName); err != nil {
		return fmt.Errorf("heartbeat store: put: %w", err)
	}
	b, err := Encode(m)
	if err != nil {
		return fmt.Errorf("heartbeat store: put: %w", err)
	}
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	c, err := s.conn(ctx)
	if err != nil {
		return err
	}
	key, channel := s.patterns.KeyFor(m.ServiceName), s.patterns.ChannelFor(m.ServiceName)
	if err := s.admit(ctx, c, m.ServiceName, key); err != nil {
		return err
	}
	_, err = c.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, key, b, s.keyTTL)
		p.Publish(ctx, channel, b)
		return nil
	})
	if err != nil {
		return s.fail(fmt.Sprintf("SET %s / PUBLISH %s", key, channel), err)
	}
	return nil
}

// admit applies the cap on services to a put of service's key.
func (s *RedisStore) admit(ctx context.Context, c redis.UniversalClient, service, key string) error {
	err := s.cap.admit(ctx, service,
		func(ctx context.Context) (bool, error) {
			n, err := c.Exists(ctx, key).Result()
			if err != nil {
				return false, s.fail("EXISTS "+key, err)
			}
			return n > 0, nil
		},
		func(ctx context.Context) (int, error) {
			n, err := s.count(ctx, c)
			if err != nil && isAccessError(err) && strings.HasPrefix(err.Error(), "NOPERM") {
				// This user may not SCAN: the services cannot be
				// counted, so they are not capped (the user's ACL
				// bounds what it may write).
				return 0, nil
			}
			if err != nil {
				return 0, s.fail("SCAN MATCH "+s.patterns.KeyGlob(), err)
			}
			return n, nil
		})
	if errors.Is(err, ErrTooManyServices) {
		return fmt.Errorf("heartbeat store %s: %w", s.addr, err)
	}
	return err
}

// Delete removes the service's key.
func (s *RedisStore) Delete(ctx context.Context, service string) error {
	if err := ValidServiceName(service); err != nil {
		return fmt.Errorf("heartbeat store: delete: %w", err)
	}
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	c, err := s.conn(ctx)
	if err != nil {
		return err
	}
	key := s.patterns.KeyFor(service)
	if err := c.Del(ctx, key).Err(); err != nil {
		return s.fail("DEL "+key, err)
	}
	return nil
}

// Get returns the latest heartbeat of service, or false if its key does not
// exist.
func (s *RedisStore) Get(ctx context.Context, service string) (Message, bool, error) {
	if err := ValidServiceName(service); err != nil {
		return Message{}, false, fmt.Errorf("heartbeat store: get: %w", err)
	}
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	c, err := s.conn(ctx)
	if err != nil {
		return Message{}, false, err
	}
	key := s.patterns.KeyFor(service)
	// GETRANGE reads one byte past the limit, so an oversized value is
	// refused by Decode without being loaded whole.
	b, err := s.read(ctx, c, key).Bytes()
	if s.noGetRange(err) {
		b, err = s.read(ctx, c, key).Bytes()
	}
	if errors.Is(err, redis.Nil) {
		return Message{}, false, nil // GET's answer for a missing key
	}
	if err != nil {
		return Message{}, false, s.fail(s.readName()+" "+key, err)
	}
	if len(b) == 0 && !s.getOnly.Load() {
		// A missing key and an empty value both read as "": tell them
		// apart, reading both in one transaction, since a writer may
		// have stored the key since.
		var exists *redis.IntCmd
		var value *redis.StringCmd
		_, err := c.TxPipelined(ctx, func(p redis.Pipeliner) error {
			exists = p.Exists(ctx, key)
			value = s.read(ctx, p, key)
			return nil
		})
		if err != nil && !errors.Is(err, redis.Nil) {
			return Message{}, false, s.fail("EXISTS "+key, err)
		}
		if exists.Val() == 0 {
			return Message{}, false, nil
		}
		b = []byte(value.Val())
	}
	m, err := s.decodeEntry(key, service, b)
	if err != nil {
		return Message{}, false, fmt.Errorf("heartbeat store %s: %w", s.addr, err)
	}
	return m, true, nil
}

// read reads the value of key: with GETRANGE up to one byte past
// MaxMessageSize, or with GET for a user the server refuses GETRANGE.
func (s *RedisStore) read(ctx context.Context, c redis.Cmdable, key string) *redis.StringCmd {
	if s.getOnly.Load() {
		return c.Get(ctx, key)
	}
	return c.GetRange(ctx, key, 0, MaxMessageSize)
}

// readName is the command read sends, for messages.
func (s *RedisStore) readName() string {
	if s.getOnly.Load() {
		return "GET"
	}
	return "GETRANGE"
}

// noGetRange reports whether err is the server refusing this user
// GETRANGE (an ACL that allows GET only), and if so switches reads to GET:
// the caller reads again.
func (s *RedisStore) noGetRange(err error) bool {
	if err == nil || s.getOnly.Load() || !isAccessError(err) || !strings.Contains(strings.ToLower(err.Error()), "'getrange'") {
		return false
	}
	s.getOnly.Store(true)
	return true
}

// decodeEntry decodes the value of key, which belongs to service.
func (s *RedisStore) decodeEntry(key, service string, b []byte) (Message, error) {
	if len(b) > MaxMessageSize {
		// Read with GETRANGE up to one byte past the limit: the real
		// size is unknown, only that it is over.
		return Message{}, fmt.Errorf("key %q: its value is more than %d bytes, over the %d-byte limit", Escape(key), MaxMessageSize, MaxMessageSize)
	}
	m, err := Decode(b)
	if err != nil {
		return Message{}, fmt.Errorf("key %q: %w", Escape(key), err)
	}
	if m.ServiceName != service {
		return Message{}, fmt.Errorf("key %q holds a heartbeat of service %q", Escape(key), m.ServiceName)
	}
	return m, nil
}

// List scans for every key matching the key pattern (on every master of a
// cluster) and returns the heartbeats they hold, sorted by service name.
// Keys that match the glob but name no valid service are ignored.
func (s *RedisStore) List(ctx context.Context) ([]Message, error) {
	ctx = withLog(ctx, s.opLog)
	c, err := s.conn(ctx)
	if err != nil {
		return nil, err
	}
	var (
		mu      sync.Mutex
		msgs    []Message
		bad     []error
		badName []string
		seen    = make(map[string]bool)
	)
	err = s.forEachNode(ctx, c, func(ctx context.Context, node *redis.Client) error {
		return s.scanNode(ctx, node, true, func(key string, b []byte, readErr error) {
			service, _ := s.patterns.ServiceFromKey(key)
			var m Message
			err := readErr
			if err == nil {
				m, err = s.decodeEntry(key, service, b)
			} else {
				err = fmt.Errorf("%s: %w", key, err)
			}
			mu.Lock()
			defer mu.Unlock()
			if seen[key] {
				return
			}
			seen[key] = true
			if err != nil {
				bad, badName = append(bad, err), append(badName, service)
				return
			}
			msgs = append(msgs, m)
		})
	})
	if err != nil {
		return nil, s.fail("SCAN MATCH "+s.patterns.KeyGlob(), err)
	}

	sort.Slice(msgs, func(i, j int) bool { return msgs[i].ServiceName < msgs[j].ServiceName })
	if len(bad) > 0 {
		return msgs, &UnreadableError{Services: badName, Err: errors.Join(bad...), where: "heartbeat store " + s.addr}
	}
	return msgs, nil
}

// count returns the number of keys that hold a service's heartbeat.
func (s *RedisStore) count(ctx context.Context, c redis.UniversalClient) (int, error) {
	var (
		mu sync.Mutex
		n  int
	)
	err := s.forEachNode(ctx, c, func(ctx context.Context, node *redis.Client) error {
		return s.scanNode(ctx, node, false, func(string, []byte, error) {
			mu.Lock()
			n++
			mu.Unlock()
		})
	})
	return n, err
}

// forEachNode calls fn for each node holding a part of the keyspace: every
// master of a cluster, every shard of a ring, or the one server.
func (s *RedisStore) forEachNode(ctx context.Context, c redis.UniversalClient, fn func(context.Context, *redis.Client) error) error {
	switch c := c.(type) {
	case *redis.ClusterClient:
		return c.ForEachMaster(ctx, fn)
	case *redis.Ring:
		return c.ForEachShard(ctx, fn)
	case *redis.Client:
		return fn(ctx, c)
	}
	return fmt.Errorf("unsupported client type %T", c)
}

// scanNode walks one node's keyspace and calls found for each key that
// holds a service's heartbeat; with fetch, it reads the values from the
// same node (so that it also works on a cluster master) and passes them.
func (s *RedisStore) scanNode(ctx context.Context, node *redis.Client, fetch bool, found func(key string, b []byte, err error)) error {
	glob := s.patterns.KeyGlob()
	var cursor uint64
	for {
		keys, next, err := node.Scan(ctx, cursor, glob, redisScanCount).Result()
		if err != nil {
			return err
		}
		var ours []string
		for _, k := range keys {
			if _, ok := s.patterns.ServiceFromKey(k); ok {
				ours = append(ours, k)
			}
		}
		if !fetch {
			for _, k := range ours {
				found(k, nil, nil)
			}
		} else if len(ours) > 0 {
			// Each command's own error is looked at below: the server
			// refusing one key (WRONGTYPE: another program's hash) is that
			// entry's problem; a broken connection is the store's.
			cmds, err := node.Pipelined(ctx, func(p redis.Pipeliner) error {
				for _, k := range ours {
					p.GetRange(ctx, k, 0, MaxMessageSize)
				}
				return nil
			})
			if pipelineFailed(cmds, err) {
				return err
			}
			for i, cmd := range cmds {
				b, err := cmd.(*redis.StringCmd).Bytes()
				if errors.Is(err, redis.Nil) || (err == nil && len(b) == 0) {
					continue // deleted since the scan
				}
				var reply redis.Error
				if err != nil && errors.As(err, &reply) && !isConnectionError(err) {
					found(ours[i], nil, err)
					continue
				}
				if err != nil {
					return err
				}
				found(ours[i], b, nil)
			}
		}
		cursor = next
		if cursor == 0 {
			return nil
		}
	}
}

// Watch subscribes to every service's channel with PSUBSCRIBE and calls fn
// for each heartbeat received. Messages that do not decode, and those whose
// service_name is not the service their channel names, are reported to
// the store log (see WithStoreLog) and skipped.
//
// When the subscription breaks — the server restarts, the connection drops,
// or the server stops answering the periodic PING — Watch reports
// ErrWatchLost to the store log, reconnects with a backoff from 100ms to
// 5s, and reports ErrWatchRestored once subscribed again; heartbeats
// published meanwhile are missed (Get and List still have the latest).
// Watch returns nil when ctx is done, and an error (for which IsUnavailable
// holds when the server cannot be reached) only when the first
// subscription fails.
func (s *RedisStore) Watch(ctx context.Context, fn func(Message)) error {
	return s.subscribe(ctx, func(rm *redis.Message) {
		m, err := Decode([]byte(rm.Payload))
		if err != nil {
			s.log(fmt.Errorf("heartbeat watch: skipped message on channel %q: %w", Escape(rm.Channel), err))
			return
		}
		if service, ok := s.patterns.ServiceFromChannel(rm.Channel); !ok || service != m.ServiceName {
			// Another service's beat, or a channel that names none: what
			// Mirror refuses to store is not shown as that service's.
			s.log(fmt.Errorf("heartbeat watch: skipped message on channel %q: it is from service %q, not the one the channel names", Escape(rm.Channel), Escape(m.ServiceName)))
			return
		}
		fn(m)
	})
}

// subscribe runs a PSUBSCRIBE on the channel pattern and passes each
// message to fn, reconnecting as Watch describes.
func (s *RedisStore) subscribe(ctx context.Context, fn func(*redis.Message)) error {
	ctx = withLog(ctx, s.opLog)
	op := "PSUBSCRIBE " + s.patterns.ChannelGlob()
	wait := s.retryMin
	everSubscribed, lost := false, false
	for {
		subscribed, err := s.subscribeOnce(ctx, func() {
			everSubscribed = true
			wait = s.retryMin
			if lost {
				lost = false
				s.log(fmt.Errorf("%w: %s on %s", ErrWatchRestored, op, s.addr))
			}
		}, fn)
		if ctx.Err() != nil {
			return nil
		}
		if !everSubscribed {
			return err
		}
		if subscribed || !lost {
			lost = true
			s.log(fmt.Errorf("%w: %v; reconnecting in %s", ErrWatchLost, err, wait))
		} else {
			s.log(fmt.Errorf("heartbeat watch: still no subscription: %v; next attempt in %s", err, wait))
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		wait = min(2*wait, s.retryMax)
	}
}

// subscribeOnce holds one subscription until it fails or ctx is done,
// calling confirmed once the server has confirmed it. It reports whether
// the subscription was confirmed, and why it ended.
func (s *RedisStore) subscribeOnce(ctx context.Context, confirmed func(), fn func(*redis.Message)) (subscribed bool, err error) {
	c, err := s.conn(ctx)
	if err != nil {
		return false, err // already says what failed
	}
	glob := s.patterns.ChannelGlob()
	defer func() {
		if err != nil {
			err = s.fail("PSUBSCRIBE "+glob, err)
		}
	}()
	ps := c.PSubscribe(ctx, glob)
	defer ps.Close()
	// Receive does not watch ctx; closing the subscription unblocks it.
	stop := context.AfterFunc(ctx, func() { ps.Close() })
	defer stop()

	// The first reply confirms the subscription, or tells why there is none.
	if _, err := ps.ReceiveTimeout(ctx, redisOpTimeout); err != nil {
		return false, err
	}
	confirmed()

	pingSent := false // a health-check PING awaits its answer
	for {
		wait := s.healthCheck
		if pingSent {
			wait = 2 * redisIOTimeout
		}
		msg, err := ps.ReceiveTimeout(ctx, wait)
		if ctx.Err() != nil {
			return true, nil
		}
		if err != nil {
			if pingSent || !isTimeout(err) {
				// Unanswered PING, or a broken connection: start afresh.
				return true, err
			}
			if err := ps.Ping(ctx); err != nil {
				return true, err
			}
			pingSent = true
			continue
		}
		pingSent = false
		if rm, ok := msg.(*redis.Message); ok {
			fn(rm)
		}
	}
}

// Close closes the connections to the server, unless the client was the
// caller's (NewRedisStore).
func (s *RedisStore) Close() error {
	s.unregister()
	if !s.owned {
		return nil
	}
	s.mu.Lock()
	c := s.client
	s.mu.Unlock()
	return c.Close()
}

// fail wraps err from op, marking connection problems as unavailability.
func (s *RedisStore) fail(op string, err error) error {
	if isTLSError(err) {
		// Reached, but the TLS handshake failed: a matter of
		// certificates, not of the network.
		return fmt.Errorf("heartbeat store %s: TLS handshake failed (check tls_ca, tls_cert and tls_key against the server's certificates): %s: %w", s.addr, op, err)
	}
	if isConnectionError(err) {
		switch {
		case s.cluster.Load():
			// go-redis does not say which node failed: the one given
			// may be healthy.
			err = fmt.Errorf("redis cluster reached through %s (the node that failed may be another): %w", s.addr, err)
		case !strings.Contains(err.Error(), s.addr):
			err = fmt.Errorf("redis at %s: %w", s.addr, err)
		}
		return &unavailableError{cause: err}
	}
	if isAccessError(err) && strings.Contains(err.Error(), "'select'") {
		return fmt.Errorf("heartbeat store %s: the user may not SELECT database %d (let the user run SELECT, or use database 0): %s: %w", s.addr, s.db, op, err)
	}
	if strings.HasPrefix(err.Error(), "MOVED ") || strings.HasPrefix(err.Error(), "ASK ") {
		return fmt.Errorf("heartbeat store %s: %s: the server is a Redis Cluster node but was used as a standalone server (it refused INFO); list the cluster's nodes as host:port,host:port: %w", s.addr, op, err)
	}
	return fmt.Errorf("heartbeat store %s: %s: %w", s.addr, op, err)
}

// isConnectionError reports whether err means the server could not be
// reached or the connection broke, rather than the server refusing a
// command. A caller's cancellation is neither.
func isConnectionError(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	for _, target := range []error{
		context.DeadlineExceeded, os.ErrDeadlineExceeded, io.EOF, io.ErrUnexpectedEOF,
		net.ErrClosed, syscall.ECONNREFUSED, syscall.ECONNRESET, syscall.EPIPE,
		redis.ErrPoolTimeout, redis.ErrPoolExhausted,
	} {
		if errors.Is(err, target) {
			return true
		}
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	return redis.IsLoadingError(err) || redis.IsClusterDownError(err) ||
		redis.IsTryAgainError(err) || redis.IsMasterDownError(err)
}

// isTLSError reports whether err is a failed TLS handshake: a certificate
// that does not verify, or the server refusing ours.
func isTLSError(err error) bool {
	var (
		verify  *tls.CertificateVerificationError
		alert   tls.AlertError
		unknown x509.UnknownAuthorityError
		host    x509.HostnameError
		invalid x509.CertificateInvalidError
		header  tls.RecordHeaderError
	)
	if errors.As(err, &verify) || errors.As(err, &alert) || errors.As(err, &unknown) ||
		errors.As(err, &host) || errors.As(err, &invalid) || errors.As(err, &header) {
		return true
	}
	// A remote alert reaches us as a *net.OpError around an unexported
	// type; its text is the one sure sign.
	return strings.Contains(err.Error(), "remote error: tls: ")
}

// isAccessError reports whether err is the server refusing this client:
// authentication (NOAUTH, WRONGPASS) or an ACL permission (NOPERM).
func isAccessError(err error) bool {
	var reply redis.Error
	if !errors.As(err, &reply) {
		return false
	}
	msg := reply.Error()
	for _, p := range []string{"NOPERM", "NOAUTH", "WRONGPASS"} {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}

// pipelineFailed reports whether err, the error of a pipeline that ran
// cmds, failed the pipeline as a whole rather than one of its commands:
// go-redis returns a failure to set up the connection (AUTH, SELECT
// refused) without setting it on any command.
func pipelineFailed(cmds []redis.Cmder, err error) bool {
	if err == nil {
		return false
	}
	for _, c := range cmds {
		if c.Err() == err {
			return false
		}
	}
	return true
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

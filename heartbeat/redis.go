package heartbeat

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
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
)

// RedisStore is a Store on Redis, Valkey or Dragonfly, standalone or
// clustered. The latest heartbeat of a service is the value of its key and
// each Put is also PUBLISHed on its channel, as named by Patterns.
type RedisStore struct {
	client   redis.UniversalClient
	patterns Patterns
	addr     string // server address(es) for messages, never with credentials
	errorLog func(error)
	// healthCheck is how long Watch waits in silence before it checks the
	// subscription with a PING; tests shorten it.
	healthCheck time.Duration
}

// OpenRedis returns a store on the server named by spec, which is one of:
//
//   - a redis:// or rediss:// (TLS) URL as read by redis.ParseURL, e.g.
//     rediss://user:secret@cache.example.com:6379/0;
//   - such a URL with addr=host:port query parameters naming more cluster
//     nodes, as read by redis.ParseClusterURL;
//   - a comma-separated list of host:port cluster node addresses, e.g.
//     "10.0.0.1:6379,10.0.0.2:6379". A single host:port without a scheme is
//     taken as a standalone server.
//
// Empty fields of p take their defaults. OpenRedis does not connect: an
// unreachable server shows up as an error on first use, for which
// IsUnavailable holds. Timeouts not given in the URL default to 2s for
// dialing, reading and writing.
func OpenRedis(spec string, p Patterns, opts ...StoreOption) (*RedisStore, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	cfg := newStoreConfig(opts)
	s := &RedisStore{patterns: p.WithDefaults(), errorLog: cfg.errorLog, healthCheck: redisHealthCheck}

	spec = strings.TrimSpace(spec)
	if spec == "" {
		return nil, errors.New("heartbeat: redis address is empty")
	}
	if strings.Contains(spec, "://") {
		if err := s.openURL(spec); err != nil {
			return nil, err
		}
		return s, nil
	}

	var addrs []string
	for _, a := range strings.Split(spec, ",") {
		a = strings.TrimSpace(a)
		if a == "" {
			continue
		}
		host, port, err := net.SplitHostPort(a)
		if err != nil || host == "" {
			return nil, fmt.Errorf("heartbeat: redis address %q is not host:port (or use a redis:// URL)", a)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("heartbeat: redis address %q has an invalid port", a)
		}
		addrs = append(addrs, a)
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("heartbeat: redis address %q lists no host:port", spec)
	}
	s.addr = strings.Join(addrs, ",")
	if len(addrs) == 1 {
		o := &redis.Options{Addr: addrs[0]}
		tuneOptions(o)
		s.client = redis.NewClient(o)
	} else {
		o := &redis.ClusterOptions{Addrs: addrs}
		tuneClusterOptions(o)
		s.client = redis.NewClusterClient(o)
	}
	return s, nil
}

func (s *RedisStore) openURL(spec string) error {
	u, err := url.Parse(spec)
	if err != nil {
		// url.Error repeats the URL, password included; keep only the reason.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("heartbeat: redis URL is malformed: %v", err)
	}
	switch u.Scheme {
	case "redis", "rediss":
	default:
		return fmt.Errorf("heartbeat: redis URL scheme %q is not supported (use redis:// or rediss://)", u.Scheme)
	}
	s.addr = u.Host
	if u.Query().Has("addr") {
		o, err := redis.ParseClusterURL(spec)
		if err != nil {
			return fmt.Errorf("heartbeat: redis URL for %s: %w", u.Host, err)
		}
		tuneClusterOptions(o)
		s.addr = strings.Join(o.Addrs, ",")
		s.client = redis.NewClusterClient(o)
		return nil
	}
	o, err := redis.ParseURL(spec)
	if err != nil {
		return fmt.Errorf("heartbeat: redis URL for %s: %w", u.Host, err)
	}
	tuneOptions(o)
	s.client = redis.NewClient(o)
	return nil
}

// tuneOptions fills in short timeouts and few retries where the URL left
// the go-redis defaults (5s timeouts, 3 retries of 5 dial attempts each).
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
}

func orDefault(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// Put stores m under its service's key and publishes it on its channel, in
// one round trip.
func (s *RedisStore) Put(ctx context.Context, m Message) error {
	if err := ValidServiceName(m.ServiceName); err != nil {
		return fmt.Errorf("heartbeat store: put: %w", err)
	}
	b, err := Encode(m)
	if err != nil {
		return fmt.Errorf("heartbeat store: put: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, redisOpTimeout)
	defer cancel()
	key, channel := s.patterns.KeyFor(m.ServiceName), s.patterns.ChannelFor(m.ServiceName)
	_, err = s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, key, b, 0)
		p.Publish(ctx, channel, b)
		return nil
	})
	if err != nil {
		return s.fail(fmt.Sprintf("SET %s / PUBLISH %s", key, channel), err)
	}
	return nil
}

// Get returns the latest heartbeat of service, or false if its key does not
// exist.
func (s *RedisStore) Get(ctx context.Context, service string) (Message, bool, error) {
	if err := ValidServiceName(service); err != nil {
		return Message{}, false, fmt.Errorf("heartbeat store: get: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, redisOpTimeout)
	defer cancel()
	key := s.patterns.KeyFor(service)
	// GETRANGE reads one byte past the limit, so an oversized value is
	// refused by Decode without being loaded whole.
	b, err := s.client.GetRange(ctx, key, 0, MaxMessageSize).Bytes()
	if err != nil && !errors.Is(err, redis.Nil) {
		return Message{}, false, s.fail("GETRANGE "+key, err)
	}
	if len(b) == 0 {
		// A missing key and an empty value both read as "": tell them apart.
		n, err := s.client.Exists(ctx, key).Result()
		if err != nil {
			return Message{}, false, s.fail("EXISTS "+key, err)
		}
		if n == 0 {
			return Message{}, false, nil
		}
	}
	m, err := s.decodeEntry(key, service, b)
	if err != nil {
		return Message{}, false, fmt.Errorf("heartbeat store %s: %w", s.addr, err)
	}
	return m, true, nil
}

// decodeEntry decodes the value of key, which belongs to service.
func (s *RedisStore) decodeEntry(key, service string, b []byte) (Message, error) {
	m, err := Decode(b)
	if err != nil {
		return Message{}, fmt.Errorf("key %q: %w", key, err)
	}
	if m.ServiceName != service {
		return Message{}, fmt.Errorf("key %q holds a heartbeat of service %q", key, m.ServiceName)
	}
	return m, nil
}

// List scans for every key matching the key pattern (on every master of a
// cluster) and returns the heartbeats they hold, sorted by service name.
// Keys that match the glob but name no valid service are ignored.
func (s *RedisStore) List(ctx context.Context) ([]Message, error) {
	var (
		mu   sync.Mutex
		msgs []Message
		bad  []error
		seen = make(map[string]bool)
	)
	collect := func(key string, b []byte) {
		service, _ := s.patterns.ServiceFromKey(key)
		m, err := s.decodeEntry(key, service, b)
		mu.Lock()
		defer mu.Unlock()
		if seen[key] {
			return
		}
		seen[key] = true
		if err != nil {
			bad = append(bad, err)
			return
		}
		msgs = append(msgs, m)
	}

	var err error
	switch c := s.client.(type) {
	case *redis.ClusterClient:
		err = c.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error {
			return s.scanNode(ctx, node, collect)
		})
	case *redis.Client:
		err = s.scanNode(ctx, c, collect)
	default:
		err = fmt.Errorf("unsupported client type %T", c)
	}
	if err != nil {
		return nil, s.fail("SCAN MATCH "+s.patterns.KeyGlob(), err)
	}

	sort.Slice(msgs, func(i, j int) bool { return msgs[i].ServiceName < msgs[j].ServiceName })
	if len(bad) > 0 {
		return msgs, fmt.Errorf("heartbeat store %s: %d unreadable heartbeat(s): %w", s.addr, len(bad), errors.Join(bad...))
	}
	return msgs, nil
}

// scanNode walks one node's keyspace and fetches the matching keys from the
// same node, so that it also works on a cluster master.
func (s *RedisStore) scanNode(ctx context.Context, node *redis.Client, collect func(key string, b []byte)) error {
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
		if len(ours) > 0 {
			cmds, err := node.Pipelined(ctx, func(p redis.Pipeliner) error {
				for _, k := range ours {
					p.GetRange(ctx, k, 0, MaxMessageSize)
				}
				return nil
			})
			if err != nil && !errors.Is(err, redis.Nil) {
				return err
			}
			for i, cmd := range cmds {
				b, err := cmd.(*redis.StringCmd).Bytes()
				if errors.Is(err, redis.Nil) || (err == nil && len(b) == 0) {
					continue // deleted since the scan
				}
				if err != nil {
					return err
				}
				collect(ours[i], b)
			}
		}
		cursor = next
		if cursor == 0 {
			return nil
		}
	}
}

// Watch subscribes to every service's channel with PSUBSCRIBE and calls fn
// for each heartbeat received. Messages that do not decode are reported to
// the error log (see WithWatchErrorLog) and skipped. Watch returns nil when ctx is
// done, and an error for which IsUnavailable holds when the server cannot
// be reached or stops answering.
func (s *RedisStore) Watch(ctx context.Context, fn func(Message)) error {
	glob := s.patterns.ChannelGlob()
	ps := s.client.PSubscribe(ctx, glob)
	defer ps.Close()
	// Receive does not watch ctx; closing the subscription unblocks it.
	stop := context.AfterFunc(ctx, func() { ps.Close() })
	defer stop()

	op := "PSUBSCRIBE " + glob
	// The first reply confirms the subscription, or tells why there is none.
	if _, err := ps.ReceiveTimeout(ctx, redisOpTimeout); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return s.fail(op, err)
	}

	pingSent := false // a health-check PING awaits its answer
	broken := false   // the last receive failed on a broken connection
	for {
		wait := s.healthCheck
		if pingSent {
			wait = 2 * redisIOTimeout
		}
		msg, err := ps.ReceiveTimeout(ctx, wait)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			if pingSent || (broken && !isTimeout(err)) {
				return s.fail(op, err)
			}
			broken = !isTimeout(err)
			// After a broken connection go-redis redials and resubscribes on
			// the next command; the PING both triggers and checks that.
			if err := ps.Ping(ctx); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return s.fail(op, err)
			}
			pingSent = true
			continue
		}
		pingSent, broken = false, false
		if rm, ok := msg.(*redis.Message); ok {
			m, err := Decode([]byte(rm.Payload))
			if err != nil {
				s.errorLog(fmt.Errorf("heartbeat watch: skipped message on channel %q: %w", rm.Channel, err))
				continue
			}
			fn(m)
		}
	}
}

// Close closes the connections to the server.
func (s *RedisStore) Close() error {
	return s.client.Close()
}

// fail wraps err from op, marking connection problems as unavailability.
func (s *RedisStore) fail(op string, err error) error {
	if isConnectionError(err) {
		if !strings.Contains(err.Error(), s.addr) {
			err = fmt.Errorf("redis at %s: %w", s.addr, err)
		}
		return &unavailableError{cause: err}
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

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

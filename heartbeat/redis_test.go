package heartbeat

import (
	"context"
	"crypto/tls"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// openTestRedis opens a store on srv and closes it when the test ends.
func openTestRedis(t *testing.T, spec string, p Patterns, opts ...StoreOption) *RedisStore {
	t.Helper()
	s, err := OpenRedis(spec, p, opts...)
	if err != nil {
		t.Fatalf("OpenRedis(%q): %v", spec, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// rawClient is a plain go-redis client for looking behind the store's back.
func rawClient(t *testing.T, addr string) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { c.Close() })
	return c
}

func TestRedisStoreContract(t *testing.T) {
	storeContract(t, func(t *testing.T) Store {
		srv := startRedis(t)
		return openTestRedis(t, "redis://"+srv.Addr+"/0", Patterns{})
	})
}

func TestOpenRedisSpecs(t *testing.T) {
	tests := []struct {
		spec    string
		cluster bool
		tls     bool
	}{
		{spec: "redis://127.0.0.1:6379/0"},
		{spec: "redis://:secret@cache.internal:6380/2"},
		{spec: "rediss://cache.example.com:6379", tls: true},
		{spec: "127.0.0.1:6379"},
		{spec: " 127.0.0.1:7000, 127.0.0.1:7001 ,127.0.0.1:7002", cluster: true},
		{spec: "redis://10.0.0.1:7000?addr=10.0.0.2:7000", cluster: true},
		{spec: "rediss://10.0.0.1:7000?addr=10.0.0.2:7000", cluster: true, tls: true},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			s := openTestRedis(t, tt.spec, Patterns{})
			switch c := s.client.(type) {
			case *redis.ClusterClient:
				if !tt.cluster {
					t.Fatalf("got a cluster client, want a standalone one")
				}
				o := c.Options()
				if o.DialTimeout != redisDialTimeout || o.ReadTimeout != redisIOTimeout || o.WriteTimeout != redisIOTimeout {
					t.Errorf("timeouts = %s/%s/%s, want 2s each", o.DialTimeout, o.ReadTimeout, o.WriteTimeout)
				}
				if (o.TLSConfig != nil) != tt.tls {
					t.Errorf("TLS = %v, want %v", o.TLSConfig != nil, tt.tls)
				}
			case *redis.Client:
				if tt.cluster {
					t.Fatalf("got a standalone client, want a cluster one")
				}
				o := c.Options()
				if o.DialTimeout != redisDialTimeout || o.ReadTimeout != redisIOTimeout || o.WriteTimeout != redisIOTimeout {
					t.Errorf("timeouts = %s/%s/%s, want 2s each", o.DialTimeout, o.ReadTimeout, o.WriteTimeout)
				}
				if (o.TLSConfig != nil) != tt.tls {
					t.Errorf("TLS = %v, want %v", o.TLSConfig != nil, tt.tls)
				}
			default:
				t.Fatalf("unexpected client type %T", c)
			}
		})
	}

	s := openTestRedis(t, "redis://127.0.0.1:1?dial_timeout=7s", Patterns{})
	if got := s.client.(*redis.Client).Options().DialTimeout; got != 7*time.Second {
		t.Errorf("dial_timeout from the URL = %s, want 7s kept", got)
	}
}

func TestOpenRedisErrors(t *testing.T) {
	tests := []struct {
		spec string
		p    Patterns
		opts []StoreOption
		want string
	}{
		{"", Patterns{}, nil, "empty"},
		{" , ", Patterns{}, nil, "lists no host:port"},
		{"http://127.0.0.1:6379", Patterns{}, nil, `scheme "http" is not supported`},
		{"localhost", Patterns{}, nil, `"localhost" is not host:port`},
		{"a:1,b", Patterns{}, nil, `"b" is not host:port`},
		{"a:notaport", Patterns{}, nil, "is not a number from 1 to 65535"},
		{"redis://user:s3cret@h:1/notadb", Patterns{}, nil, `database "notadb" is not a number`},
		{"redis://user:s3cret@h:badport", Patterns{}, nil, "does not parse"},
		{"redis://h:1", Patterns{Key: "fixed"}, nil, "exactly once"},
		{"redis://:s3cret@h:1", Patterns{}, []StoreOption{WithTLSConfig(&tls.Config{})}, "use rediss://"},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			s, err := OpenRedis(tt.spec, tt.p, tt.opts...)
			if err == nil {
				s.Close()
				t.Fatalf("OpenRedis(%q) succeeded, want error containing %q", tt.spec, tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("error %q leaks the password", err)
			}
		})
	}
}

func TestRedisCustomPatternsAndForeignKeys(t *testing.T) {
	srv := startRedis(t)
	p := Patterns{Key: "hb[x]:{service}:last", Channel: "health:service:{service}:heartbeat"}
	s := openTestRedis(t, "redis://"+srv.Addr, p)
	raw := rawClient(t, srv.Addr)
	ctx := context.Background()

	m := Message{ServiceName: "svc", Timestamp: time.Now().UTC().Truncate(time.Microsecond), HeartbeatCount: 4}
	if err := s.Put(ctx, m); err != nil {
		t.Fatalf("Put: %v", err)
	}
	if v, err := raw.Get(ctx, "hb[x]:svc:last").Result(); err != nil || !strings.Contains(v, `"heartbeat_count":4`) {
		t.Fatalf("raw GET of custom key = %q, %v", v, err)
	}
	// Keys the glob matches but the pattern does not own, and keys of other
	// applications, are left alone.
	for k, v := range map[string]string{
		"hb[x]:a:b:last":              `{"service_name":"a:b","timestamp":"2025-01-16T08:30:00Z"}`,
		"hbx:svc2:last":               `{"service_name":"svc2","timestamp":"2025-01-16T08:30:00Z"}`,
		"heartbeat:service:unrelated": `{"service_name":"unrelated","timestamp":"2025-01-16T08:30:00Z"}`,
	} {
		raw.Set(ctx, k, v, 0)
	}
	list, err := s.List(ctx)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if len(list) != 1 || list[0].ServiceName != "svc" {
		t.Fatalf("List = %+v, want only svc", list)
	}

	// Watch listens on the custom channel pattern.
	got := watchFor(t, s, func(m Message) bool { return m.ServiceName == "svc" && m.HeartbeatCount == 5 }, func() {
		_ = s.Put(ctx, Message{ServiceName: "svc", Timestamp: time.Now(), HeartbeatCount: 5})
	})
	if got.HeartbeatCount != 5 {
		t.Errorf("watched %+v", got)
	}
	eventually(t, "Watch to drop its subscription", func() bool {
		n, err := raw.PubSubNumPat(ctx).Result()
		return err == nil && n == 0
	})
}

func TestRedisCorruptEntries(t *testing.T) {
	srv := startRedis(t)
	s := openTestRedis(t, srv.Addr, Patterns{})
	raw := rawClient(t, srv.Addr)
	ctx := context.Background()
	if err := s.Put(ctx, Message{ServiceName: "good", Timestamp: time.Now()}); err != nil {
		t.Fatalf("Put: %v", err)
	}
	raw.Set(ctx, "heartbeat:service:broken", "{not json", 0)
	raw.Set(ctx, "heartbeat:service:imposter", `{"service_name":"good","timestamp":"2025-01-16T08:30:00Z"}`, 0)

	if _, _, err := s.Get(ctx, "broken"); err == nil || !strings.Contains(err.Error(), `key "heartbeat:service:broken"`) {
		t.Errorf("Get(broken) error = %v, want one naming the key", err)
	}
	// An empty value is not a missing key.
	raw.Set(ctx, "heartbeat:service:blank", "", 0)
	if _, _, err := s.Get(ctx, "blank"); err == nil || !strings.Contains(err.Error(), "heartbeat message is empty") {
		t.Errorf("Get(blank) error = %v, want the empty value reported", err)
	}
	raw.Del(ctx, "heartbeat:service:blank")
	if _, ok, err := s.Get(ctx, "blank"); ok || err != nil {
		t.Errorf("Get of a missing key = %v, %v; want not found", ok, err)
	}
	list, err := s.List(ctx)
	if err == nil {
		t.Fatal("List succeeded despite corrupt entries")
	}
	for _, want := range []string{"2 unreadable", `"heartbeat:service:broken"`, `"heartbeat:service:imposter" holds a heartbeat of service "good"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("List error %q does not mention %q", err, want)
		}
	}
	if IsUnavailable(err) {
		t.Errorf("corrupt data reported as unavailability: %v", err)
	}
	if len(list) != 1 || list[0].ServiceName != "good" {
		t.Errorf("List = %+v, want the readable entry too", list)
	}
}

func TestRedisWatchSkipsMalformedMessages(t *testing.T) {
	srv := startRedis(t)
	sink := &errorSink{}
	s := openTestRedis(t, srv.Addr, Patterns{}, WithStoreLog(sink.log))
	raw := rawClient(t, srv.Addr)
	ctx := context.Background()
	var sawOther atomic.Bool
	watchFor(t, s, func(m Message) bool {
		if m.ServiceName == "other" {
			sawOther.Store(true)
		}
		return m.ServiceName == "fine" && sink.contains("junk") && sink.contains("bad5")
	}, func() {
		raw.Publish(ctx, "heartbeat:service:junk", `{"service_name":`)
		raw.Publish(ctx, "heartbeat:service:bad5", `{"service_name":"other","timestamp":"2025-01-16T08:30:00Z"}`)
		_ = s.Put(ctx, Message{ServiceName: "fine", Timestamp: time.Now()})
	})
	if !sink.contains(`skipped message on channel "heartbeat:service:junk": heartbeat message is not valid JSON`) {
		t.Errorf("error log = %q, want the skipped message explained", sink.String())
	}
	if sawOther.Load() || !sink.contains(`skipped message on channel "heartbeat:service:bad5": it is from service "other"`) {
		t.Errorf("a beat of service other on bad5's channel was delivered (%v), or the log %q does not say why it was skipped", sawOther.Load(), sink.String())
	}
}

func TestRedisGoingAway(t *testing.T) {
	srv := startRedis(t)
	sink := &errorSink{}
	s := openTestRedis(t, "redis://"+srv.Addr, Patterns{}, WithStoreLog(sink.log))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := s.Put(ctx, Message{ServiceName: "a", Timestamp: time.Now()}); err != nil {
		t.Fatalf("Put: %v", err)
	}

	watchErr := make(chan error, 1)
	watching := make(chan struct{})
	var once sync.Once
	go func() {
		watchErr <- s.Watch(ctx, func(Message) { once.Do(func() { close(watching) }) })
	}()
	eventually(t, "Watch to receive a beat", func() bool {
		_ = s.Put(ctx, Message{ServiceName: "a", Timestamp: time.Now()})
		select {
		case <-watching:
			return true
		default:
			return false
		}
	})

	srv.Kill()

	ops := []struct {
		name string
		run  func() error
	}{
		{"Get", func() error { _, _, err := s.Get(ctx, "a"); return err }},
		{"List", func() error { _, err := s.List(ctx); return err }},
		{"Put", func() error { return s.Put(ctx, Message{ServiceName: "a", Timestamp: time.Now()}) }},
		{"Watch (new)", func() error { return s.Watch(ctx, func(Message) {}) }},
	}
	for _, op := range ops {
		start := time.Now()
		err := op.run()
		elapsed := time.Since(start)
		if err == nil {
			t.Errorf("%s after the server died: no error", op.name)
			continue
		}
		if !IsUnavailable(err) || !strings.HasPrefix(err.Error(), "heartbeat store unreachable: ") {
			t.Errorf("%s error %q: want a 'heartbeat store unreachable' error", op.name, err)
		}
		if elapsed > 5*time.Second {
			t.Errorf("%s took %s to fail, want a few seconds at most", op.name, elapsed)
		}
	}

	// The running Watch noticed, said so, and keeps trying.
	eventually(t, "the running Watch to report the lost subscription", func() bool {
		return sink.containsErr(ErrWatchLost)
	})
	if !sink.contains("heartbeat store unreachable") {
		t.Errorf("store log %q does not say why the subscription was lost", sink.String())
	}
	select {
	case err := <-watchErr:
		t.Errorf("running Watch returned %v; want it to keep reconnecting", err)
	default:
	}
	cancel()
	select {
	case err := <-watchErr:
		if err != nil {
			t.Errorf("Watch returned %v after cancel, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Error("reconnecting Watch did not return within 5s of cancel")
	}
}

func TestRedisUnreachable(t *testing.T) {
	// A server that accepts connections but never answers: reads must time
	// out rather than hang.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})

	tests := []struct{ name, spec string }{
		{"refused", closedAddr(t)},
		{"silent", l.Addr().String()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openTestRedis(t, tt.spec, Patterns{})
			start := time.Now()
			_, _, err := s.Get(context.Background(), "a")
			if !IsUnavailable(err) {
				t.Fatalf("Get error = %v, want unavailable", err)
			}
			if !strings.Contains(err.Error(), tt.spec) {
				t.Errorf("error %q does not name the server %s", err, tt.spec)
			}
			if elapsed := time.Since(start); elapsed > 6*time.Second {
				t.Errorf("Get took %s to fail", elapsed)
			}
		})
	}
}

func TestRedisWatchHealthCheck(t *testing.T) {
	srv := startRedis(t)
	sink := &errorSink{}
	s := openTestRedis(t, srv.Addr, Patterns{}, WithStoreLog(sink.log))
	s.healthCheck = 50 * time.Millisecond
	ctx := context.Background()

	beats := make(chan Message, 100)
	watchErr := make(chan error, 1)
	go func() { watchErr <- s.Watch(ctx, func(m Message) { beats <- m }) }()
	eventually(t, "the first beat", func() bool {
		_ = s.Put(ctx, Message{ServiceName: "a", Timestamp: time.Now()})
		return len(beats) > 0
	})

	// Several silent health-check periods pass; the watch stays up.
	time.Sleep(300 * time.Millisecond)
	for len(beats) > 0 {
		<-beats
	}
	if err := s.Put(ctx, Message{ServiceName: "a", Timestamp: time.Now(), HeartbeatCount: 42}); err != nil {
		t.Fatalf("Put: %v", err)
	}
	select {
	case m := <-beats:
		if m.HeartbeatCount != 42 {
			t.Errorf("got %+v", m)
		}
	case err := <-watchErr:
		t.Fatalf("Watch ended during a quiet spell: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("beat after a quiet spell not delivered")
	}

	// A hung server (stopped, so connections stay open but nothing answers)
	// is noticed by the unanswered PING; the watch reconnects once the
	// server answers again.
	if err := srv.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.cmd.Process.Signal(syscall.SIGCONT) })
	eventually(t, "the hung server to be noticed", func() bool { return sink.containsErr(ErrWatchLost) })
	if err := srv.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the subscription to be restored", func() bool { return sink.containsErr(ErrWatchRestored) })
	eventually(t, "a beat after the restore", func() bool {
		_ = s.Put(ctx, Message{ServiceName: "a", Timestamp: time.Now(), HeartbeatCount: 43})
		for {
			select {
			case m := <-beats:
				if m.HeartbeatCount == 43 {
					return true
				}
			case err := <-watchErr:
				t.Fatalf("Watch ended: %v", err)
			default:
				return false
			}
		}
	})
}

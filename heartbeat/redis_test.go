package heartbeat

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
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
		want string
	}{
		{"", Patterns{}, "empty"},
		{" , ", Patterns{}, "lists no host:port"},
		{"http://127.0.0.1:6379", Patterns{}, `scheme "http" is not supported`},
		{"localhost", Patterns{}, `"localhost" is not host:port`},
		{"a:1,b", Patterns{}, `"b" is not host:port`},
		{"a:notaport", Patterns{}, "invalid port"},
		{"redis://user:s3cret@h:1/notadb", Patterns{}, "invalid database number"},
		{"redis://user:s3cret@h:badport", Patterns{}, "malformed"},
		{"redis://h:1", Patterns{Key: "fixed"}, "exactly once"},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			s, err := OpenRedis(tt.spec, tt.p)
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
	s := openTestRedis(t, srv.Addr, Patterns{}, WithWatchErrorLog(sink.log))
	raw := rawClient(t, srv.Addr)
	ctx := context.Background()
	watchFor(t, s, func(m Message) bool { return m.ServiceName == "fine" && sink.contains("junk") }, func() {
		raw.Publish(ctx, "heartbeat:service:junk", `{"service_name":`)
		_ = s.Put(ctx, Message{ServiceName: "fine", Timestamp: time.Now()})
	})
	if !sink.contains(`skipped message on channel "heartbeat:service:junk": heartbeat message is not valid JSON`) {
		t.Errorf("error log = %q, want the skipped message explained", sink.String())
	}
}

func TestRedisGoingAway(t *testing.T) {
	srv := startRedis(t)
	s := openTestRedis(t, "redis://"+srv.Addr, Patterns{})
	ctx := context.Background()
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

	select {
	case err := <-watchErr:
		if !IsUnavailable(err) {
			t.Errorf("running Watch returned %v, want an unavailable error", err)
		}
	case <-time.After(10 * time.Second):
		t.Error("running Watch did not notice the server was gone within 10s")
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

func TestRedisCluster(t *testing.T) {
	// Two masters sharing the slots, so List has to scan both.
	busB := freePort(t)
	a := startRedis(t, "--cluster-enabled", "yes", "--cluster-port", fmt.Sprint(freePort(t)), "--cluster-node-timeout", "2000")
	b := startRedis(t, "--cluster-enabled", "yes", "--cluster-port", fmt.Sprint(busB), "--cluster-node-timeout", "2000")
	ctx := context.Background()
	ra, rb := rawClient(t, a.Addr), rawClient(t, b.Addr)
	if err := ra.ClusterAddSlotsRange(ctx, 0, 8191).Err(); err != nil {
		t.Fatalf("CLUSTER ADDSLOTSRANGE: %v", err)
	}
	if err := rb.ClusterAddSlotsRange(ctx, 8192, 16383).Err(); err != nil {
		t.Fatalf("CLUSTER ADDSLOTSRANGE: %v", err)
	}
	host, port, _ := net.SplitHostPort(b.Addr)
	// The bus ports are not port+10000, so MEET must be told b's.
	if err := ra.Do(ctx, "CLUSTER", "MEET", host, port, busB).Err(); err != nil {
		t.Fatalf("CLUSTER MEET: %v", err)
	}
	eventually(t, "the cluster to form", func() bool {
		for _, c := range []*redis.Client{ra, rb} {
			info, err := c.ClusterInfo(ctx).Result()
			if err != nil || !strings.Contains(info, "cluster_state:ok") || !strings.Contains(info, "cluster_known_nodes:2") {
				return false
			}
		}
		return true
	})

	s := openTestRedis(t, a.Addr+","+b.Addr, Patterns{})
	if _, ok := s.client.(*redis.ClusterClient); !ok {
		t.Fatalf("client is %T, want *redis.ClusterClient", s.client)
	}
	var want []string
	for i := range 20 {
		name := fmt.Sprintf("svc%02d", i)
		want = append(want, name)
		// Right after forming, a node may still answer CLUSTERDOWN briefly.
		eventually(t, "Put "+name, func() bool {
			return s.Put(ctx, Message{ServiceName: name, Timestamp: time.Now()}) == nil
		})
	}
	na, _ := ra.DBSize(ctx).Result()
	nb, _ := rb.DBSize(ctx).Result()
	if na == 0 || nb == 0 {
		t.Fatalf("keys per master = %d and %d; the test needs both used", na, nb)
	}
	list, err := s.List(ctx)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	var got []string
	for _, m := range list {
		got = append(got, m.ServiceName)
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("List = %v, want %v", got, want)
	}
	if m, ok, err := s.Get(ctx, "svc07"); err != nil || !ok || m.ServiceName != "svc07" {
		t.Errorf("Get(svc07) = %+v, %v, %v", m, ok, err)
	}
	watchFor(t, s, func(m Message) bool { return m.ServiceName == "svc13" }, func() {
		_ = s.Put(ctx, Message{ServiceName: "svc13", Timestamp: time.Now()})
	})
}

func TestRedisWatchHealthCheck(t *testing.T) {
	srv := startRedis(t)
	s := openTestRedis(t, srv.Addr, Patterns{})
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
	// is noticed by the unanswered PING.
	if err := srv.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.cmd.Process.Signal(syscall.SIGCONT) })
	start := time.Now()
	select {
	case err := <-watchErr:
		if !IsUnavailable(err) {
			t.Errorf("Watch returned %v, want an unavailable error", err)
		}
		if elapsed := time.Since(start); elapsed > 8*time.Second {
			t.Errorf("took %s to notice", elapsed)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Watch did not notice the hung server within 15s")
	}
}

package heartbeat

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"checker/internal/redistest"
)

// TestRedisCluster runs the store against a real 3-master Redis Cluster,
// given in each of the ways [heartbeat] redis may name it. Each form gets
// its own key and channel patterns, so they share one cluster.
func TestRedisCluster(t *testing.T) {
	cl := redistest.StartCluster(t, 3)
	node := cl.Nodes[1].Addr
	forms := []struct{ name, spec string }{
		{"one node URL (a configuration endpoint)", "redis://" + node},
		{"one node host:port", node},
		{"comma list", strings.Join(cl.Addrs(), ",")},
		{"URL with addr= parameters", "redis://" + cl.Nodes[0].Addr + "?addr=" + cl.Nodes[2].Addr},
	}
	for i, f := range forms {
		t.Run(f.name, func(t *testing.T) {
			p := Patterns{Key: fmt.Sprintf("hb%d:{service}", i), Channel: fmt.Sprintf("hb%d:ch:{service}", i)}
			s := openTestRedis(t, f.spec, p)
			ctx := context.Background()
			const n = 18
			var want []string
			for j := range n {
				name := fmt.Sprintf("svc%02d", j)
				want = append(want, name)
				if err := s.Put(ctx, Message{ServiceName: name, Timestamp: time.Now(), HeartbeatCount: int64(j)}); err != nil {
					t.Fatalf("Put %s: %v", name, err)
				}
			}
			if _, ok := s.client.(*redis.ClusterClient); !ok {
				t.Fatalf("client is %T after first use, want *redis.ClusterClient", s.client)
			}
			// The keys are spread over the masters, and List finds them all.
			used := 0
			for _, nd := range cl.Nodes {
				keys, err := redistest.Do(nd.Addr, "EVAL", fmt.Sprintf("return #redis.call('KEYS', 'hb%d:*')", i), "0")
				if err != nil {
					t.Fatalf("count keys on %s: %v", nd.Addr, err)
				}
				if k, _ := strconv.Atoi(keys); k > 0 {
					used++
				}
			}
			if used < 2 {
				t.Fatalf("the %d keys sit on %d master(s); the test needs them spread", n, used)
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
				t.Fatalf("List = %v, want all %d services %v", got, n, want)
			}
			// GetMany reads named services across the masters in one
			// pipeline, with no SCAN.
			many, err := GetMany(ctx, s, append([]string{"never-seen"}, want...))
			if err != nil || len(many) != n {
				t.Fatalf("GetMany = %d heartbeats, %v; want all %d", len(many), err, n)
			}
			for _, name := range want {
				if m, ok, err := s.Get(ctx, name); err != nil || !ok || m.ServiceName != name {
					t.Errorf("Get(%s) = %+v, %v, %v", name, m, ok, err)
				}
			}
			watchFor(t, s, func(m Message) bool { return m.ServiceName == "svc13" && m.HeartbeatCount == 99 }, func() {
				_ = s.Put(ctx, Message{ServiceName: "svc13", Timestamp: time.Now(), HeartbeatCount: 99})
			})
		})
	}

	t.Run("cap counts every master", func(t *testing.T) {
		p := Patterns{Key: "cap:{service}", Channel: "cap:ch:{service}"}
		s := openTestRedis(t, node, p, WithMaxServices(10))
		ctx := context.Background()
		for j := range 10 {
			if err := s.Put(ctx, Message{ServiceName: fmt.Sprintf("c%d", j), Timestamp: time.Now()}); err != nil {
				t.Fatalf("Put c%d: %v", j, err)
			}
		}
		// A second store (another process) counts the cluster afresh.
		s2 := openTestRedis(t, cl.Nodes[2].Addr, p, WithMaxServices(10))
		err := s2.Put(ctx, Message{ServiceName: "c10", Timestamp: time.Now()})
		if !errors.Is(err, ErrTooManyServices) {
			t.Fatalf("Put of an 11th service = %v, want ErrTooManyServices", err)
		}
		if err := s2.Put(ctx, Message{ServiceName: "c3", Timestamp: time.Now()}); err != nil {
			t.Errorf("update of an existing service refused: %v", err)
		}
	})

	t.Run("mirror", func(t *testing.T) {
		p := Patterns{Key: "mir:{service}", Channel: "mir:ch:{service}"}
		s := openTestRedis(t, node, p)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		done := make(chan error, 1)
		go func() { done <- s.Mirror(ctx) }()
		ts := time.Now().UTC().Truncate(time.Microsecond)
		beat := fmt.Sprintf(`{"service_name":"pubonly","timestamp":%q,"heartbeat_count":3}`, ts.Format(time.RFC3339Nano))
		eventually(t, "the published beat to be stored", func() bool {
			// PUBLISH on any node reaches the subscriber on another.
			if _, err := redistest.Do(cl.Nodes[0].Addr, "PUBLISH", "mir:ch:pubonly", beat); err != nil {
				t.Fatalf("PUBLISH: %v", err)
			}
			m, ok, err := s.Get(context.Background(), "pubonly")
			return err == nil && ok && m.HeartbeatCount == 3
		})
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Mirror returned %v after cancel", err)
		}
	})
}

// TestRedisClusterNodeStopped: when a node other than the one named stops
// answering, the error does not blame the named node.
func TestRedisClusterNodeStopped(t *testing.T) {
	cl := redistest.StartCluster(t, 3)
	named := cl.Nodes[0]
	s := openTestRedis(t, "redis://"+named.Addr, Patterns{})
	ctx := context.Background()
	service := ""
	for i := range 100 {
		svc := fmt.Sprintf("svc%d", i)
		if cl.NodeFor(t, "heartbeat:service:"+svc) != named {
			service = svc
			break
		}
	}
	if err := s.Put(ctx, Message{ServiceName: service, Timestamp: time.Now()}); err != nil {
		t.Fatal(err)
	}
	stopped := cl.NodeFor(t, "heartbeat:service:"+service)
	if err := stopped.Cmd().Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer stopped.Cmd().Process.Signal(syscall.SIGCONT)
	_, _, err := s.Get(ctx, service)
	if err == nil || !IsUnavailable(err) {
		t.Fatalf("Get from a stopped node = %v, want unavailable", err)
	}
	t.Logf("with %s stopped: %v", stopped.Addr, err)
	if !strings.Contains(err.Error(), "redis cluster reached through redis://"+named.Addr) || strings.Contains(err.Error(), "redis at redis://"+named.Addr) {
		t.Errorf("error %q blames the named node %s", err, named.Addr)
	}
}

package heartbeat

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// BenchmarkPut measures one Put of a service the store already keeps, with
// and without the service cap, on a loopback redis-server and on the local
// store: the cap must cost nothing per update.
//
//	go test -run '^$' -bench Put -benchmem ./heartbeat/
func BenchmarkPut(b *testing.B) {
	ctx := context.Background()
	srv := startRedis(b)
	stores := []struct {
		name string
		s    Store
	}{}
	for _, capped := range []bool{false, true} {
		var opts []StoreOption
		suffix := "nocap"
		if capped {
			opts, suffix = []StoreOption{WithMaxServices(10000), WithKeyTTL(7 * 24 * time.Hour)}, "cap10000"
		}
		rs, err := OpenRedis(srv.Addr, Patterns{}, opts...)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { rs.Close() })
		ls, err := OpenLocal(b.TempDir(), opts...)
		if err != nil {
			b.Fatal(err)
		}
		stores = append(stores, struct {
			name string
			s    Store
		}{"redis/" + suffix, rs}, struct {
			name string
			s    Store
		}{"local/" + suffix, ls})
	}
	for _, st := range stores {
		b.Run(st.name, func(b *testing.B) {
			for i := range 100 {
				if err := st.s.Put(ctx, Message{ServiceName: fmt.Sprintf("svc%d", i), Timestamp: time.Now()}); err != nil {
					b.Fatal(err)
				}
			}
			m := Message{ServiceName: "svc7", InstanceID: "a1b2c3d4-e5f6-4789-8bcd-ef0123456789", Timestamp: time.Now(),
				UptimeSeconds: 3600, HeartbeatCount: 60, MemoryUsageMB: 156.3, CPUUsagePercent: 12.5,
				Data: map[string]any{"queue_size": 1380, "api_status": "authenticated"}}
			b.ResetTimer()
			for range b.N {
				if err := st.s.Put(ctx, m); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkPutNewServiceAtCap measures a refused Put of a new service into
// a full Redis store, the cost a flood of made-up names causes.
func BenchmarkPutNewServiceAtCap(b *testing.B) {
	ctx := context.Background()
	srv := startRedis(b)
	s, err := OpenRedis(srv.Addr, Patterns{}, WithMaxServices(1000))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	for i := range 1000 {
		if err := s.Put(ctx, Message{ServiceName: fmt.Sprintf("svc%d", i), Timestamp: time.Now()}); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for i := range b.N {
		if err := s.Put(ctx, Message{ServiceName: fmt.Sprintf("new%d", i), Timestamp: time.Now()}); err == nil {
			b.Fatal("a Put beyond the cap succeeded")
		}
	}
}

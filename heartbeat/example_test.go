package heartbeat_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"checker/heartbeat"
)

// A Go service publishes its heartbeat with two collectors of its own,
// started and stopped with the service's context. The local store keeps
// the example free of servers; a service with Redis opens its store with
// heartbeat.OpenRedis("rediss://…", heartbeat.Patterns{}), or wraps the
// go-redis client it already has with heartbeat.NewRedisStore.
func Example() {
	dir, err := os.MkdirTemp("", "heartbeat-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	store, err := heartbeat.OpenLocal(dir)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer store.Close()

	p := heartbeat.NewPublisher(store, "tracker_fetcher",
		heartbeat.WithInterval(30*time.Second),
		heartbeat.WithErrorLog(func(err error) { fmt.Println("heartbeat problem:", err) }))
	queue := []string{"a", "b", "c"}
	if err := p.AddCollector("queue_size", func(ctx context.Context) (any, error) { return len(queue), nil }); err != nil {
		fmt.Println(err)
	}
	if err := p.AddCollector("api_status", func(ctx context.Context) (any, error) { return "authenticated", nil }); err != nil {
		fmt.Println(err)
	}
	// Standard fields are the publisher's own: refused at once.
	if err := p.AddCollector("timestamp", func(ctx context.Context) (any, error) { return "mine", nil }); err != nil {
		fmt.Println(err)
	}

	// The service's lifetime: the publisher stops when ctx is cancelled.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := p.Start(ctx); err != nil {
		fmt.Println(err)
		return
	}
	// The first beat goes out at once (after MinCPUWindow at most).
	for {
		if _, ok, _ := store.Get(context.Background(), "tracker_fetcher"); ok {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	p.Stop() // waits for a beat in progress

	m, _, err := store.Get(context.Background(), "tracker_fetcher")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(m.ServiceName, "beat", m.HeartbeatCount, "queue_size", m.Data["queue_size"], "api_status", m.Data["api_status"])
	// Output:
	// heartbeat tracker_fetcher: collector name "timestamp" is a standard heartbeat field
	// tracker_fetcher beat 1 queue_size 3 api_status authenticated
}

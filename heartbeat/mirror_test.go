package heartbeat

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"checker/internal/redistest"
)

// TestMirror: a service that only PUBLISHes becomes visible to Get and
// List; older, foreign and broken messages change nothing.
func TestMirror(t *testing.T) {
	srv := startRedis(t)
	sink := &errorSink{}
	s := openTestRedis(t, srv.Addr, Patterns{}, WithStoreLog(sink.log), WithKeyTTL(time.Hour), WithMaxServices(3))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Mirror(ctx) }()

	publish := func(channel, payload string) {
		t.Helper()
		if _, err := redistest.Do(srv.Addr, "PUBLISH", channel, payload); err != nil {
			t.Fatalf("PUBLISH: %v", err)
		}
	}
	beat := func(service string, ts time.Time, count int) string {
		return fmt.Sprintf(`{"service_name":%q,"timestamp":%q,"heartbeat_count":%d,"queue":5}`, service, ts.Format(time.RFC3339Nano), count)
	}
	get := func(service string) (Message, bool) {
		t.Helper()
		m, ok, err := s.Get(context.Background(), service)
		if err != nil {
			t.Fatalf("Get(%s): %v", service, err)
		}
		return m, ok
	}
	now := time.Now().UTC().Truncate(time.Microsecond)

	eventually(t, "the published beat to be stored", func() bool {
		publish("heartbeat:service:pubonly", beat("pubonly", now, 10))
		m, ok := get("pubonly")
		return ok && m.HeartbeatCount == 10
	})
	if m, _ := get("pubonly"); m.Data["queue"] == nil {
		t.Errorf("stored beat lost its data: %+v", m)
	}
	if ttl, err := redistest.Do(srv.Addr, "TTL", "heartbeat:service:pubonly"); err != nil || ttl == "-1" {
		t.Errorf("mirrored key TTL = %s (%v), want the store's TTL", ttl, err)
	}

	// An older beat does not replace a newer one; a newer one does.
	publish("heartbeat:service:pubonly", beat("pubonly", now.Add(-time.Minute), 9))
	publish("heartbeat:service:other", beat("pubonly", now.Add(time.Minute), 666)) // wrong channel
	publish("heartbeat:service:pubonly", `{"service_name":"pubonly","timestamp":"2025-01-16T08:30:00"}`)
	publish("heartbeat:service:pubonly", `{"service_name":"pubonly","timestamp":"2025-01-16T08:30:00Z","cpu_usage_percent":"NaN"}`)
	eventually(t, "the newer beat to be stored", func() bool {
		publish("heartbeat:service:pubonly", beat("pubonly", now.Add(time.Second), 11))
		m, _ := get("pubonly")
		return m.HeartbeatCount == 11
	})
	if _, ok := get("other"); ok {
		t.Error("a message on another service's channel was stored under it")
	}
	for _, want := range []string{
		`message on channel "heartbeat:service:other" is from service "pubonly"`,
		`is not RFC 3339 with a UTC offset`,
	} {
		if !sink.contains(want) {
			t.Errorf("store log lacks %q:\n%s", want, sink.String())
		}
	}

	// Put's own publications are seen and left alone.
	if err := s.Put(context.Background(), Message{ServiceName: "both", Timestamp: now, HeartbeatCount: 1}); err != nil {
		t.Fatal(err)
	}
	// The cap holds for mirrored services too: pubonly, both, and one more.
	eventually(t, "a third service to be stored", func() bool {
		publish("heartbeat:service:third", beat("third", now, 1))
		_, ok := get("third")
		return ok
	})
	eventually(t, "the full store to be reported", func() bool {
		publish("heartbeat:service:fourth", beat("fourth", now, 1))
		return sink.containsErr(ErrTooManyServices)
	})
	if _, ok := get("fourth"); ok {
		t.Error("the mirror stored a service beyond the cap")
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Mirror returned %v after cancel", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Mirror did not return within 5s of cancel")
	}
}

func TestMirrorUnreachable(t *testing.T) {
	s := openTestRedis(t, closedAddr(t), Patterns{})
	err := s.Mirror(context.Background())
	if !IsUnavailable(err) {
		t.Errorf("Mirror on a closed port = %v, want an unavailable error", err)
	}
}

func TestLogLimiter(t *testing.T) {
	clock := &fakeClock{now: time.Now()}
	sink := &errorSink{}
	l := &logLimiter{every: time.Minute, now: clock.Now, log: sink.log}
	for range 5 {
		l.report("decode", errors.New("bad message"))
	}
	l.report("full", errors.New("store full"))
	clock.Advance(61 * time.Second)
	l.report("decode", errors.New("bad message"))
	want := "bad message\nstore full\nbad message (and 4 more like it in the last 1m0s)"
	if got := sink.String(); got != want {
		t.Errorf("logged:\n%s\nwant:\n%s", got, want)
	}
}

package heartbeat

import (
	"context"
	"strings"
	"testing"
	"time"
)

// runWatch runs s.Watch until the test ends and returns a function that
// puts beats with count until the watch delivers one.
func runWatch(t *testing.T, s *RedisStore) (waitBeat func(count int64)) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	beats := make(chan Message, 100)
	watchErr := make(chan error, 1)
	go func() { watchErr <- s.Watch(ctx, func(m Message) { beats <- m }) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-watchErr:
			if err != nil {
				t.Errorf("Watch returned %v after cancel", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Watch did not return within 5s of cancel")
		}
	})
	return func(count int64) {
		t.Helper()
		eventually(t, "a beat through the watch", func() bool {
			_ = s.Put(context.Background(), Message{ServiceName: "svc", Timestamp: time.Now(), HeartbeatCount: count})
			for {
				select {
				case m := <-beats:
					if m.HeartbeatCount == count {
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
}

// TestRedisWatchSurvivesRestart restarts redis-server under a running
// Watch, twice: the watch says it lost the subscription, reconnects by
// itself and delivers the beats published after each restart.
func TestRedisWatchSurvivesRestart(t *testing.T) {
	srv := startRedis(t)
	sink := &errorSink{}
	s := openTestRedis(t, srv.URL(), Patterns{}, WithStoreLog(sink.log))
	s.retryMin, s.retryMax = 20*time.Millisecond, 200*time.Millisecond
	waitBeat := runWatch(t, s)
	waitBeat(1)
	for round := int64(2); round <= 3; round++ {
		srv.Restart(t)
		waitBeat(round)
	}
	if !sink.containsErr(ErrWatchLost) || !sink.containsErr(ErrWatchRestored) {
		t.Errorf("store log does not report the lost and restored subscription:\n%s", sink.String())
	}
}

// TestRedisWatchDownForAWhile: while the server stays down, the watch keeps
// trying and reports each failed attempt, then recovers.
func TestRedisWatchDownForAWhile(t *testing.T) {
	srv := startRedis(t)
	sink := &errorSink{}
	s := openTestRedis(t, srv.Addr, Patterns{}, WithStoreLog(sink.log))
	s.retryMin, s.retryMax = 10*time.Millisecond, 40*time.Millisecond
	waitBeat := runWatch(t, s)
	waitBeat(1)
	srv.Kill()
	eventually(t, "three failed reconnection attempts", func() bool {
		return strings.Count(sink.String(), "heartbeat watch: still no subscription") >= 3
	})
	if n := strings.Count(sink.String(), ErrWatchLost.Error()); n != 1 {
		t.Errorf("the loss was reported %d times, want once:\n%s", n, sink.String())
	}
	srv.Restart(t)
	waitBeat(2)
	if n := strings.Count(sink.String(), ErrWatchRestored.Error()); n != 1 {
		t.Errorf("the restore was reported %d times, want once:\n%s", n, sink.String())
	}
}

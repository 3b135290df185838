package heartbeat

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"checker/internal/redistest"
)

// redisServer is a redis-server process on a loopback port, owned by a
// test; cmd lets a test signal it (SIGSTOP).
type redisServer struct {
	*redistest.Server
	cmd *exec.Cmd
}

// startRedis runs a throwaway redis-server (see redistest.Start) with extra
// arguments appended and kills it when the test ends.
func startRedis(t testing.TB, extra ...string) *redisServer {
	t.Helper()
	srv := redistest.Start(t, extra...)
	return &redisServer{Server: srv, cmd: srv.Cmd()}
}

// closedAddr returns a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	return redistest.ClosedAddr(t)
}

// errorSink collects errors reported through an error log callback.
type errorSink struct {
	mu   sync.Mutex // guards errs
	errs []error
}

func (s *errorSink) log(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.errs = append(s.errs, err)
}

// contains reports whether any collected error mentions substr.
func (s *errorSink) contains(substr string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, err := range s.errs {
		if strings.Contains(err.Error(), substr) {
			return true
		}
	}
	return false
}

// containsErr reports whether any collected error matches target
// (errors.Is).
func (s *errorSink) containsErr(target error) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, err := range s.errs {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}

func (s *errorSink) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var parts []string
	for _, err := range s.errs {
		parts = append(parts, err.Error())
	}
	return strings.Join(parts, "\n")
}

// eventually polls cond every 10ms until it holds or 10s pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after 10s waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// watchFor runs store.Watch until it delivers a message for which match
// holds, calling feed every 20ms meanwhile so that something is published
// once the watch is listening. It checks that Watch then returns nil on
// cancellation.
func watchFor(t *testing.T, store Store, match func(Message) bool, feed func()) Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	got := make(chan Message, 1)
	watchErr := make(chan error, 1)
	go func() {
		watchErr <- store.Watch(ctx, func(m Message) {
			if match(m) {
				select {
				case got <- m:
				default:
				}
			}
		})
	}()
	ticker := time.NewTicker(20 * time.Millisecond)
	defer ticker.Stop()
	for {
		select {
		case m := <-got:
			cancel()
			select {
			case err := <-watchErr:
				if err != nil {
					t.Fatalf("Watch returned %v after cancel, want nil", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Watch did not return within 5s of cancel")
			}
			return m
		case err := <-watchErr:
			t.Fatalf("Watch returned early: %v", err)
		case <-ctx.Done():
			t.Fatal("no matching heartbeat seen by Watch within 15s")
		case <-ticker.C:
			if feed != nil {
				feed()
			}
		}
	}
}

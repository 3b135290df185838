package heartbeat

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"checker/internal/redistest"
)

// capStores are the two stores, opened with a cap, a TTL and the clock.
var capStores = []struct {
	name string
	open func(t *testing.T, clock func() time.Time, opts ...StoreOption) (Store, func(service string))
}{
	{"redis", func(t *testing.T, clock func() time.Time, opts ...StoreOption) (Store, func(string)) {
		srv := startRedis(t)
		s := openTestRedis(t, srv.Addr, Patterns{}, append([]StoreOption{WithStoreClock(clock)}, opts...)...)
		return s, func(service string) {
			if _, err := redistest.Do(srv.Addr, "DEL", "heartbeat:service:"+service); err != nil {
				t.Fatal(err)
			}
		}
	}},
	{"local", func(t *testing.T, clock func() time.Time, opts ...StoreOption) (Store, func(string)) {
		s := openTestLocal(t, append([]StoreOption{WithStoreClock(clock)}, opts...)...)
		return s, func(service string) {
			if err := os.Remove(s.path(service)); err != nil {
				t.Fatal(err)
			}
		}
	}},
}

func TestMaxServices(t *testing.T) {
	for _, st := range capStores {
		t.Run(st.name, func(t *testing.T) {
			clock := &fakeClock{now: time.Now()}
			s, remove := st.open(t, clock.Now, WithMaxServices(3))
			ctx := context.Background()
			put := func(service string) error {
				return s.Put(ctx, Message{ServiceName: service, Timestamp: time.Now()})
			}
			for _, svc := range []string{"a", "b", "c"} {
				if err := put(svc); err != nil {
					t.Fatalf("Put %s: %v", svc, err)
				}
			}
			err := put("d")
			if !errors.Is(err, ErrTooManyServices) {
				t.Fatalf("Put of a 4th service = %v, want ErrTooManyServices", err)
			}
			if !strings.Contains(err.Error(), `"d" is new`) || !strings.Contains(err.Error(), "keeps 3") {
				t.Errorf("error %q does not say what was refused and why", err)
			}
			if _, ok, _ := s.Get(ctx, "d"); ok {
				t.Error("the refused service was stored")
			}
			for _, svc := range []string{"a", "b", "c", "a"} {
				if err := put(svc); err != nil {
					t.Errorf("update of %s refused: %v", svc, err)
				}
			}
			// A service removed behind the store's back frees a place once
			// the cached count is refreshed.
			remove("b")
			if err := put("d"); !errors.Is(err, ErrTooManyServices) {
				t.Errorf("Put d within the refresh period = %v; want the cached count to hold", err)
			}
			clock.Advance(capRefresh + time.Second)
			if err := put("d"); err != nil {
				t.Errorf("Put d after the refresh: %v", err)
			}
			if err := put("e"); !errors.Is(err, ErrTooManyServices) {
				t.Errorf("Put e = %v, want ErrTooManyServices", err)
			}
		})
	}
}

// TestMaxServicesCostsNoScanPerPut floods a capped Redis store with new and
// known services and counts the SCANs the server ran.
func TestMaxServicesCostsNoScanPerPut(t *testing.T) {
	srv := startRedis(t)
	s := openTestRedis(t, srv.Addr, Patterns{}, WithMaxServices(50))
	ctx := context.Background()
	refused := 0
	for i := range 500 {
		err := s.Put(ctx, Message{ServiceName: fmt.Sprintf("flood%d", i%200), Timestamp: time.Now()})
		switch {
		case errors.Is(err, ErrTooManyServices):
			refused++
		case err != nil:
			t.Fatalf("Put: %v", err)
		}
	}
	if refused == 0 {
		t.Fatal("no Put was refused")
	}
	stats, err := redistest.Do(srv.Addr, "INFO", "commandstats")
	if err != nil {
		t.Fatal(err)
	}
	scans := 0
	for _, line := range strings.Split(stats, "\n") {
		if rest, ok := strings.CutPrefix(line, "cmdstat_scan:calls="); ok {
			scans, _ = strconv.Atoi(strings.Split(rest, ",")[0])
		}
	}
	// One count (a SCAN or two) per refresh period, not one per Put.
	if scans > 10 {
		t.Errorf("%d SCAN calls for 500 Puts (%d refused); want the count cached", scans, refused)
	}
	n, err := s.count(ctx, s.client)
	if err != nil || n != 50 {
		t.Errorf("services kept = %d (%v), want exactly the cap of 50", n, err)
	}
}

func TestRedisKeyTTL(t *testing.T) {
	srv := startRedis(t)
	ctx := context.Background()
	withTTL := openTestRedis(t, srv.Addr, Patterns{}, WithKeyTTL(7*24*time.Hour))
	if err := withTTL.Put(ctx, Message{ServiceName: "a", Timestamp: time.Now()}); err != nil {
		t.Fatal(err)
	}
	ttl, err := redistest.Do(srv.Addr, "TTL", "heartbeat:service:a")
	if n, _ := strconv.Atoi(ttl); err != nil || n < 7*24*3600-60 || n > 7*24*3600 {
		t.Errorf("TTL = %s (%v), want about 7 days", ttl, err)
	}
	noTTL := openTestRedis(t, srv.Addr, Patterns{})
	if err := noTTL.Put(ctx, Message{ServiceName: "a", Timestamp: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if ttl, err := redistest.Do(srv.Addr, "TTL", "heartbeat:service:a"); err != nil || ttl != "-1" {
		t.Errorf("TTL without key_ttl = %s (%v), want -1 (none)", ttl, err)
	}
}

func TestLocalKeyTTL(t *testing.T) {
	clock := &fakeClock{now: time.Now()}
	s := openTestLocal(t, WithKeyTTL(time.Hour), WithStoreClock(clock.Now))
	ctx := context.Background()
	for _, svc := range []string{"old", "fresh"} {
		if err := s.Put(ctx, Message{ServiceName: svc, Timestamp: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	// "old" was last written two hours ago.
	past := time.Now().Add(-2 * time.Hour)
	if err := os.Chtimes(s.path("old"), past, past); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := s.Get(ctx, "old"); ok || err != nil {
		t.Errorf("Get(old) = %v, %v; want an expired heartbeat read as never seen", ok, err)
	}
	list, err := s.List(ctx)
	if err != nil || len(list) != 1 || list[0].ServiceName != "fresh" {
		t.Fatalf("List = %+v, %v; want only fresh", list, err)
	}
	if _, err := os.Stat(s.path("old")); !os.IsNotExist(err) {
		t.Errorf("the expired file is still there: %v", err)
	}
	// Everything ages out when the clock moves on.
	clock.Advance(2 * time.Hour)
	if list, err := s.List(ctx); err != nil || len(list) != 0 {
		t.Errorf("List two hours later = %+v, %v; want nothing", list, err)
	}
	if left, _ := filepath.Glob(filepath.Join(s.Dir(), "*")); len(left) != 0 {
		t.Errorf("files left after pruning: %v", left)
	}
}

// TestLocalPruneKeepsAFreshHeartbeat: a Put that lands between the expiry
// check and the removal is not lost.
func TestLocalPruneKeepsAFreshHeartbeat(t *testing.T) {
	s := openTestLocal(t, WithKeyTTL(time.Hour))
	ctx := context.Background()
	if err := s.Put(ctx, Message{ServiceName: "svc", Timestamp: time.Now(), HeartbeatCount: 1}); err != nil {
		t.Fatal(err)
	}
	past := time.Now().Add(-2 * time.Hour)
	if err := os.Chtimes(s.path("svc"), past, past); err != nil {
		t.Fatal(err)
	}
	stale, err := os.Stat(s.path("svc"))
	if err != nil {
		t.Fatal(err)
	}
	// The fresh beat arrives after the check saw the stale file.
	if err := s.Put(ctx, Message{ServiceName: "svc", Timestamp: time.Now(), HeartbeatCount: 2}); err != nil {
		t.Fatal(err)
	}
	s.prune("svc", stale)
	m, ok, err := s.Get(ctx, "svc")
	if err != nil || !ok || m.HeartbeatCount != 2 {
		t.Fatalf("Get after the racing prune = %+v, %v, %v; want beat 2 kept", m, ok, err)
	}
	if left, _ := filepath.Glob(filepath.Join(s.Dir(), "~*")); len(left) != 0 {
		t.Errorf("aside files left: %v", left)
	}
}

func TestOpenStore(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenStore(StoreConfig{LocalDir: dir, MaxServices: 1, KeyTTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := s.Put(ctx, Message{ServiceName: "a", Timestamp: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, Message{ServiceName: "b", Timestamp: time.Now()}); !errors.Is(err, ErrTooManyServices) {
		t.Errorf("MaxServices not applied: %v", err)
	}
	if _, err := OpenStore(StoreConfig{Redis: "redis://:pw@h:1", TLSCA: filepath.Join(dir, "nope.pem")}); err == nil || !strings.Contains(err.Error(), "nope.pem") {
		t.Errorf("OpenStore with a missing CA file = %v, want an error naming it", err)
	}
	if _, err := OpenStore(StoreConfig{Redis: "http://h:1"}); err == nil {
		t.Error("OpenStore accepted an http URL")
	}
}

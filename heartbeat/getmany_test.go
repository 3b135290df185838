package heartbeat

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// TestGetManyWithoutScan: a user allowed GET but not SCAN reads named
// services with GetMany, while List, which must scan, says why it cannot.
func TestGetManyWithoutScan(t *testing.T) {
	srv := startRedis(t, "--user", "default", "on", "nopass", "~*", "&*", "+@all",
		"--user", "noscan", "on", ">pw", "~*", "&*", "+@all", "-scan")
	admin := openTestRedis(t, "redis://"+srv.Addr, Patterns{})
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Microsecond)
	for _, svc := range []string{"alpha", "beta"} {
		if err := admin.Put(ctx, Message{ServiceName: svc, Timestamp: now, HeartbeatCount: 3}); err != nil {
			t.Fatal(err)
		}
	}
	if err := rawClient(t, srv.Addr).Set(ctx, "heartbeat:service:broken", "{", 0).Err(); err != nil {
		t.Fatal(err)
	}
	s := openTestRedis(t, "redis://noscan:pw@"+srv.Addr, Patterns{})

	got, err := GetMany(ctx, s, []string{"beta", "ghost", "alpha", "beta"})
	if err != nil {
		t.Fatalf("GetMany: %v", err)
	}
	if len(got) != 2 || got[0].ServiceName != "alpha" || got[1].ServiceName != "beta" || got[1].HeartbeatCount != 3 {
		t.Fatalf("GetMany = %+v, want alpha and beta", got)
	}

	got, err = GetMany(ctx, s, []string{"alpha", "broken"})
	var ue *UnreadableError
	if !errors.As(err, &ue) || len(ue.Services) != 1 || ue.Services[0] != "broken" || len(got) != 1 {
		t.Fatalf("GetMany with a bad entry = %+v, %v; want alpha and an UnreadableError naming broken", got, err)
	}

	if _, err := GetMany(ctx, s, nil); err != nil {
		t.Fatalf("GetMany of nothing (a PING) = %v", err)
	}

	_, err = s.List(ctx)
	if err == nil || !strings.Contains(err.Error(), "NOPERM") || IsUnavailable(err) {
		t.Fatalf("List without SCAN = %v, want a NOPERM error that is not 'unreachable'", err)
	}
}

// TestGetManyLocal: the local store reads named services one by one.
func TestGetManyLocal(t *testing.T) {
	s, err := OpenLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	if err := s.Put(ctx, Message{ServiceName: "alpha", Timestamp: time.Now()}); err != nil {
		t.Fatal(err)
	}
	got, err := GetMany(ctx, s, []string{"ghost", "alpha"})
	if err != nil || len(got) != 1 || got[0].ServiceName != "alpha" {
		t.Fatalf("GetMany = %+v, %v", got, err)
	}
}

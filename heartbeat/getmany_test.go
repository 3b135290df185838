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

// TestRestrictedUsers: a publisher that may not SCAN publishes a new
// service (the cap cannot count, so it does not refuse), and a reader
// allowed GET but not GETRANGE reads with GET.
func TestRestrictedUsers(t *testing.T) {
	srv := startRedis(t, "--user", "default", "on", "nopass", "~*", "&*", "+@all",
		"--user", "noscan", "on", ">pw", "~*", "&*", "+@all", "-scan",
		"--user", "getonly", "on", ">pw", "~heartbeat:*", "resetchannels", "+get", "+ping", "+hello", "+exists")
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Microsecond)
	pub := openTestRedis(t, "redis://noscan:pw@"+srv.Addr, Patterns{}, WithMaxServices(10))
	if err := pub.Put(ctx, Message{ServiceName: "alpha", Timestamp: now, HeartbeatCount: 1}); err != nil {
		t.Fatalf("a new service published by a user without SCAN: %v", err)
	}
	r := openTestRedis(t, "redis://getonly:pw@"+srv.Addr, Patterns{})
	got, err := GetMany(ctx, r, []string{"alpha", "ghost"})
	if err != nil || len(got) != 1 || got[0].ServiceName != "alpha" {
		t.Fatalf("GetMany by a GET-only user = %+v, %v; want alpha", got, err)
	}
	if m, found, err := r.Get(ctx, "alpha"); err != nil || !found || m.HeartbeatCount != 1 {
		t.Fatalf("Get by a GET-only user = %+v, %v, %v", m, found, err)
	}
	if _, found, err := r.Get(ctx, "ghost"); err != nil || found {
		t.Fatalf("Get of a missing service by a GET-only user = %v, %v", found, err)
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

// TestCheckWritable: a server out of memory with noeviction refuses the
// probe write, naming OOM; a user not allowed to write cannot tell; the
// probe key is not a service.
func TestCheckWritable(t *testing.T) {
	srv := startRedis(t, "--user", "default", "on", "nopass", "~*", "&*", "+@all",
		"--user", "reader", "on", ">pw", "~*", "&*", "+@read", "+@connection", "+info")
	s := openTestRedis(t, "redis://"+srv.Addr, Patterns{})
	ctx := context.Background()
	if err := s.CheckWritable(ctx); err != nil {
		t.Fatalf("CheckWritable on a healthy server: %v", err)
	}
	start := time.Now()
	for range 100 {
		if err := s.CheckWritable(ctx); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("one probe on an open connection: %s", time.Since(start)/100)
	if list, err := s.List(ctx); err != nil || len(list) != 0 {
		t.Errorf("List after the probe = %v, %v; want no service", list, err)
	}
	reader := openTestRedis(t, "redis://reader:pw@"+srv.Addr, Patterns{})
	if err := reader.CheckWritable(ctx); err != nil {
		t.Errorf("CheckWritable by a read-only user = %v, want nil (cannot tell)", err)
	}

	raw := rawClient(t, srv.Addr)
	if err := raw.ConfigSet(ctx, "maxmemory-policy", "noeviction").Err(); err != nil {
		t.Fatal(err)
	}
	if err := raw.ConfigSet(ctx, "maxmemory", "1").Err(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.ConfigSet(context.Background(), "maxmemory", "0") })
	err := s.CheckWritable(ctx)
	if err == nil || !strings.Contains(err.Error(), "OOM") || !strings.Contains(err.Error(), "refuses writes") || !strings.Contains(err.Error(), srv.Addr) {
		t.Fatalf("CheckWritable at maxmemory = %v, want a refused write naming OOM", err)
	}
	if err := reader.CheckWritable(ctx); err != nil {
		t.Errorf("CheckWritable by a read-only user at maxmemory = %v, want nil", err)
	}
}

// TestMirrorLogsTheCause: a mirrored write the server refuses is logged
// with the server's reason, not only EXECABORT.
func TestMirrorLogsTheCause(t *testing.T) {
	srv := startRedis(t)
	sink := &errorSink{}
	s := openTestRedis(t, srv.Addr, Patterns{}, WithStoreLog(sink.log))
	raw := rawClient(t, srv.Addr)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, kv := range [][2]string{{"maxmemory-policy", "noeviction"}, {"maxmemory", "1"}} {
		if err := raw.ConfigSet(ctx, kv[0], kv[1]).Err(); err != nil {
			t.Fatal(err)
		}
	}
	go func() { _ = s.Mirror(ctx) }()
	payload := `{"service_name":"pubonly","timestamp":"` + time.Now().UTC().Format(time.RFC3339Nano) + `"}`
	eventually(t, "the refused write to be logged", func() bool {
		raw.Publish(ctx, "heartbeat:service:pubonly", payload)
		return sink.contains("heartbeat mirror")
	})
	if !sink.contains("OOM") {
		t.Errorf("mirror log %q does not give the server's reason (OOM)", sink.String())
	}
}

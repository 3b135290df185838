package heartbeat

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestPatterns(t *testing.T) {
	tests := []struct {
		name                 string
		p                    Patterns
		key, channel         string
		keyGlob, channelGlob string
	}{
		{
			name: "defaults", p: Patterns{},
			key: "heartbeat:service:svc", channel: "heartbeat:service:svc",
			keyGlob: "heartbeat:service:*", channelGlob: "heartbeat:service:*",
		},
		{
			name: "custom", p: Patterns{Key: "hb:{service}:last", Channel: "health:service:{service}:heartbeat"},
			key: "hb:svc:last", channel: "health:service:svc:heartbeat",
			keyGlob: "hb:*:last", channelGlob: "health:service:*:heartbeat",
		},
		{
			name: "glob characters escaped", p: Patterns{Key: "hb[1]?:{service}*", Channel: `x\{service}`},
			key: "hb[1]?:svc*", channel: `x\svc`,
			keyGlob: `hb\[1\]\?:*\*`, channelGlob: `x\\*`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.p.Validate(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			if got := tt.p.KeyFor("svc"); got != tt.key {
				t.Errorf("KeyFor = %q, want %q", got, tt.key)
			}
			if got := tt.p.ChannelFor("svc"); got != tt.channel {
				t.Errorf("ChannelFor = %q, want %q", got, tt.channel)
			}
			if got := tt.p.KeyGlob(); got != tt.keyGlob {
				t.Errorf("KeyGlob = %q, want %q", got, tt.keyGlob)
			}
			if got := tt.p.ChannelGlob(); got != tt.channelGlob {
				t.Errorf("ChannelGlob = %q, want %q", got, tt.channelGlob)
			}
			if got, ok := tt.p.ServiceFromKey(tt.key); !ok || got != "svc" {
				t.Errorf("ServiceFromKey(%q) = %q, %v", tt.key, got, ok)
			}
			if got, ok := tt.p.ServiceFromChannel(tt.channel); !ok || got != "svc" {
				t.Errorf("ServiceFromChannel(%q) = %q, %v", tt.channel, got, ok)
			}
		})
	}

	p := DefaultPatterns()
	for _, key := range []string{"heartbeat:service:", "heartbeat:service:a:b", "other:a", "heartbeat:servic"} {
		if s, ok := p.ServiceFromKey(key); ok {
			t.Errorf("ServiceFromKey(%q) = %q, want no service", key, s)
		}
	}
}

func TestPatternsValidate(t *testing.T) {
	for _, p := range []Patterns{
		{Key: "heartbeat:fixed"},
		{Channel: "{service}:{service}"},
	} {
		if err := p.Validate(); err == nil || !strings.Contains(err.Error(), "exactly once") {
			t.Errorf("Validate(%+v) = %v, want an 'exactly once' error", p, err)
		}
	}
}

func TestIsUnavailable(t *testing.T) {
	base := &unavailableError{cause: errors.New("dial tcp 127.0.0.1:1: connect: connection refused")}
	if !IsUnavailable(base) || !IsUnavailable(fmt.Errorf("check web: %w", base)) {
		t.Error("IsUnavailable missed a (wrapped) unavailable error")
	}
	if IsUnavailable(errors.New("heartbeat store unreachable: lookalike")) || IsUnavailable(nil) {
		t.Error("IsUnavailable matched an unrelated error")
	}
	if got := base.Error(); got != "heartbeat store unreachable: dial tcp 127.0.0.1:1: connect: connection refused" {
		t.Errorf("Error() = %q", got)
	}
}

// storeContract checks the behaviour every Store must have. open returns a
// fresh, empty store.
func storeContract(t *testing.T, open func(t *testing.T) Store) {
	t.Run("put get list never-seen", func(t *testing.T) {
		s := open(t)
		ctx := context.Background()
		if _, ok, err := s.Get(ctx, "nobody"); err != nil || ok {
			t.Fatalf("Get(never seen) = ok %v, err %v; want false, nil", ok, err)
		}
		if list, err := s.List(ctx); err != nil || len(list) != 0 {
			t.Fatalf("List(empty) = %v, %v", list, err)
		}
		ts := time.Date(2025, 1, 16, 8, 30, 0, 123456000, time.UTC)
		for i, name := range []string{"web", "api", "batch.nightly"} {
			m := Message{ServiceName: name, InstanceID: "i-" + name, Timestamp: ts.Add(time.Duration(i) * time.Second),
				HeartbeatCount: int64(i + 1), Data: map[string]any{"n": i}}
			if err := s.Put(ctx, m); err != nil {
				t.Fatalf("Put(%s): %v", name, err)
			}
		}
		// A newer beat replaces the older one.
		if err := s.Put(ctx, Message{ServiceName: "web", InstanceID: "i-web2", Timestamp: ts.Add(time.Minute), HeartbeatCount: 9}); err != nil {
			t.Fatalf("Put(web again): %v", err)
		}
		m, ok, err := s.Get(ctx, "web")
		if err != nil || !ok {
			t.Fatalf("Get(web) = ok %v, err %v", ok, err)
		}
		if m.InstanceID != "i-web2" || m.HeartbeatCount != 9 || !m.Timestamp.Equal(ts.Add(time.Minute)) {
			t.Errorf("Get(web) = %+v, want the latest beat", m)
		}
		list, err := s.List(ctx)
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		var names []string
		for _, m := range list {
			names = append(names, m.ServiceName)
		}
		if got := strings.Join(names, ","); got != "api,batch.nightly,web" {
			t.Errorf("List services = %s, want api,batch.nightly,web (sorted)", got)
		}
		if list[0].Data["n"] == nil {
			t.Errorf("List lost service data: %+v", list[0])
		}
	})

	t.Run("invalid service names refused", func(t *testing.T) {
		s := open(t)
		ctx := context.Background()
		if err := s.Put(ctx, Message{ServiceName: "../etc/passwd", Timestamp: time.Now()}); err == nil {
			t.Error("Put accepted an invalid service name")
		}
		if _, _, err := s.Get(ctx, "a/b"); err == nil {
			t.Error("Get accepted an invalid service name")
		}
	})

	t.Run("publisher to watch round trip", func(t *testing.T) {
		s := open(t)
		sink := &errorSink{}
		p := NewPublisher(s, "roundtrip", WithInterval(20*time.Millisecond), WithErrorLog(sink.log))
		p.cpuWindow, p.minInterval = 0, 0
		mustAdd(t, p, "queue_size", func(context.Context) (any, error) { return 1380, nil })
		if err := p.Start(context.Background()); err != nil {
			t.Fatalf("Start: %v", err)
		}
		defer p.Stop()
		m := watchFor(t, s, func(m Message) bool { return m.ServiceName == "roundtrip" }, nil)
		if m.InstanceID != p.InstanceID() || m.HeartbeatCount < 1 {
			t.Errorf("watched %+v, want instance %s", m, p.InstanceID())
		}
		if got := fmt.Sprint(m.Data["queue_size"]); got != "1380" {
			t.Errorf("queue_size = %s, want 1380", got)
		}
		p.Stop()
		if s := sink.String(); s != "" {
			t.Errorf("publisher reported errors: %s", s)
		}
	})
}

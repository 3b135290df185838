package heartbeat

import (
	"encoding/json"
	"testing"
	"time"
)

func TestFormatBeat(t *testing.T) {
	now := time.Date(2025, 1, 16, 8, 30, 20, 0, time.UTC)
	base := Message{
		ServiceName:     "tracker_fetcher",
		InstanceID:      "a1b2c3d4-e5f6-4789-8bcd-ef0123456789",
		Timestamp:       time.Date(2025, 1, 16, 8, 30, 15, 123456000, time.UTC),
		UptimeSeconds:   4320,
		HeartbeatCount:  72,
		MemoryUsageMB:   156.3,
		CPUUsagePercent: 12.5,
	}
	withData := base
	withData.Data = map[string]any{
		"queue_size": json.Number("1380"),
		"api_status": "authenticated",
		"tags":       []any{"a", "b"},
		"note":       "line1\nline2",
	}
	future := base
	future.Timestamp = now.Add(42 * time.Second)
	yesterday := base
	yesterday.Timestamp = now.Add(-24 * time.Hour)
	push := base
	push.InstanceID = "push-10.1.2.3"
	push.UptimeSeconds = 0

	tests := []struct {
		name string
		m    Message
		now  time.Time
		want string
	}{
		{"plain", base, now,
			"tracker_fetcher (a1b2c3d4) 08:30:15  up 1.2h  beats 72  mem 156.3MB  cpu 12.5%"},
		{"service data sorted", withData, now,
			"tracker_fetcher (a1b2c3d4) 08:30:15  up 1.2h  beats 72  mem 156.3MB  cpu 12.5%\n" +
				"  api_status: authenticated\n" +
				"  note: \"line1\\nline2\"\n" +
				"  queue_size: 1380\n" +
				"  tags: [\"a\",\"b\"]"},
		{"local time zone", base, now.In(time.FixedZone("X", 2*3600)),
			"tracker_fetcher (a1b2c3d4) 10:30:15  up 1.2h  beats 72  mem 156.3MB  cpu 12.5%"},
		{"future timestamp flagged", future, now,
			"tracker_fetcher (a1b2c3d4) 08:31:02  up 1.2h  beats 72  mem 156.3MB  cpu 12.5%  (timestamp is 42s in the future (clock skew?))"},
		{"other day shows the date", yesterday, now,
			"tracker_fetcher (a1b2c3d4) 2025-01-15 08:30:20  up 1.2h  beats 72  mem 156.3MB  cpu 12.5%"},
		{"push instance", push, now,
			"tracker_fetcher (push-10.1.2.3) 08:30:15  up 0s  beats 72  mem 156.3MB  cpu 12.5%"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := FormatBeat(tt.m, tt.now); got != tt.want {
				t.Errorf("FormatBeat =\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}

func TestFormatUptime(t *testing.T) {
	tests := []struct {
		sec  float64
		want string
	}{
		{0, "0s"}, {59, "59s"}, {60, "1.0m"}, {750, "12.5m"}, {3600, "1.0h"}, {4320, "1.2h"},
		{47 * 3600, "47.0h"}, {3 * 86400, "3.0d"},
	}
	for _, tt := range tests {
		if got := formatUptime(tt.sec); got != tt.want {
			t.Errorf("formatUptime(%v) = %s, want %s", tt.sec, got, tt.want)
		}
	}
}

func TestShortInstanceID(t *testing.T) {
	tests := map[string]string{
		"a1b2c3d4-e5f6-7890-abcd-ef1234567890": "a1b2c3d4",
		"inst-1":                               "inst-1",
		"push-127.0.0.1":                       "push-127.0.0.1",
		"":                                     "",
		"host.example.com:pid-1234567890123":   "host.example.com:pid-123",
	}
	for in, want := range tests {
		if got := ShortInstanceID(in); got != want {
			t.Errorf("ShortInstanceID(%q) = %q, want %q", in, got, want)
		}
	}
}

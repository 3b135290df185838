package heartbeat

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestMessageRoundTripKeepsServiceFields(t *testing.T) {
	ts := time.Date(2025, 1, 16, 8, 30, 0, 123456000, time.FixedZone("CET", 3600))
	in := Message{
		ServiceName:     "tracker_fetcher",
		InstanceID:      "0f3c2a9e-1b7d-4c55-9e0a-5d2b8f6a7c41",
		Timestamp:       ts,
		UptimeSeconds:   7200.25,
		HeartbeatCount:  120,
		MemoryUsageMB:   210.4,
		CPUUsagePercent: 3.5,
		Data: map[string]any{
			"queue_size":  json.Number("1380"),
			"api_status":  "ok",
			"big":         json.Number("12345678901234567890"),
			"nested":      map[string]any{"a": []any{json.Number("1"), "x", nil, true}},
			"nothing":     nil,
			"last_run_ok": false,
		},
	}
	b, err := Encode(in)
	if err != nil {
		t.Fatalf("Encode: %v", err)
	}
	if !strings.Contains(string(b), `"timestamp":"2025-01-16T08:30:00.123456+01:00"`) {
		t.Errorf("timestamp not RFC 3339 with offset and microseconds: %s", b)
	}
	if !strings.HasPrefix(string(b), `{"service_name":"tracker_fetcher","instance_id":`) {
		t.Errorf("standard fields do not come first: %s", b)
	}
	if !strings.Contains(string(b), `"queue_size":1380`) || !strings.Contains(string(b), `"big":12345678901234567890`) {
		t.Errorf("service fields not flat at top level: %s", b)
	}

	out, err := Decode(b)
	if err != nil {
		t.Fatalf("Decode(%s): %v", b, err)
	}
	if !out.Timestamp.Equal(in.Timestamp) {
		t.Errorf("timestamp = %v, want %v", out.Timestamp, in.Timestamp)
	}
	if _, off := out.Timestamp.Zone(); off != 3600 {
		t.Errorf("timestamp offset = %d, want 3600", off)
	}
	out.Timestamp, in.Timestamp = time.Time{}, time.Time{}
	if !reflect.DeepEqual(out, in) {
		t.Errorf("round trip changed the message:\n got %#v\nwant %#v", out, in)
	}
}

func TestDecodeForeignPublisher(t *testing.T) {
	// Shaped like a heartbeat from a non-Go publisher: float count, Z offset,
	// service fields mixed in among the standard ones.
	raw := `{
		"cache_size": 52,
		"service_name": "geocoder",
		"instance_id": "9d1e",
		"timestamp": "2025-03-02T10:00:00Z",
		"uptime_seconds": 61,
		"heartbeat_count": 2.0,
		"memory_usage_mb": 80.5,
		"cpu_usage_percent": null,
		"mode": "batch"
	}`
	m, err := Decode([]byte(raw))
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	want := Message{
		ServiceName: "geocoder", InstanceID: "9d1e",
		Timestamp:     time.Date(2025, 3, 2, 10, 0, 0, 0, time.UTC),
		UptimeSeconds: 61, HeartbeatCount: 2, MemoryUsageMB: 80.5,
		Data: map[string]any{"cache_size": json.Number("52"), "mode": "batch"},
	}
	if !m.Timestamp.Equal(want.Timestamp) {
		t.Errorf("timestamp = %v, want %v", m.Timestamp, want.Timestamp)
	}
	m.Timestamp, want.Timestamp = time.Time{}, time.Time{}
	if !reflect.DeepEqual(m, want) {
		t.Errorf("got %#v\nwant %#v", m, want)
	}
}

func TestEncodeDropsDataShadowingStandardFields(t *testing.T) {
	m := Message{
		ServiceName: "svc", Timestamp: time.Unix(0, 0).UTC(),
		Data: map[string]any{"timestamp": "bogus", "service_name": "other", "extra": 1},
	}
	b, err := Encode(m)
	if err != nil {
		t.Fatalf("Encode: %v", err)
	}
	if strings.Count(string(b), `"timestamp"`) != 1 || strings.Contains(string(b), "bogus") || strings.Contains(string(b), "other") {
		t.Errorf("Data shadowed a standard field: %s", b)
	}
	if !strings.Contains(string(b), `"extra":1`) {
		t.Errorf("extra field missing: %s", b)
	}
}

func TestMessageWorksWithEncodingJSON(t *testing.T) {
	list := []Message{{ServiceName: "a", Timestamp: time.Unix(100, 0).UTC(), HeartbeatCount: 3}}
	b, err := json.Marshal(list)
	if err != nil {
		t.Fatalf("Marshal: %v", err)
	}
	var back []Message
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatalf("Unmarshal(%s): %v", b, err)
	}
	if len(back) != 1 || back[0].ServiceName != "a" || back[0].HeartbeatCount != 3 || !back[0].Timestamp.Equal(list[0].Timestamp) {
		t.Errorf("got %+v", back)
	}
}

func TestDecodeErrors(t *testing.T) {
	huge := `{"service_name":"a","timestamp":"2025-01-16T08:30:00Z","blob":"` + strings.Repeat("x", MaxMessageSize) + `"}`
	tests := []struct {
		name, in, want string
	}{
		{"empty", ``, "empty"},
		{"blank", "  \n", "empty"},
		{"truncated", `{"service_name":"a"`, "not valid JSON"},
		{"trailing garbage", `{"service_name":"a","timestamp":"2025-01-16T08:30:00Z"} x`, "not valid JSON"},
		{"array", `[1,2]`, "not a JSON object"},
		{"string", `"hello"`, "not a JSON object"},
		{"missing service_name", `{"timestamp":"2025-01-16T08:30:00Z"}`, "no service_name"},
		{"null service_name", `{"service_name":null,"timestamp":"2025-01-16T08:30:00Z"}`, "no service_name"},
		{"missing timestamp", `{"service_name":"a"}`, `"a" has no timestamp`},
		{"timestamp without offset", `{"service_name":"a","timestamp":"2025-01-16T08:30:00.123456"}`, "not RFC 3339 with a UTC offset"},
		{"timestamp garbage", `{"service_name":"a","timestamp":"yesterday"}`, `timestamp "yesterday"`},
		{"timestamp number", `{"service_name":"a","timestamp":1737016200}`, `field "timestamp": want a string, got the number 1737016200`},
		{"service_name number", `{"service_name":5,"timestamp":"2025-01-16T08:30:00Z"}`, `field "service_name": want a string`},
		{"bad service name", `{"service_name":"a b","timestamp":"2025-01-16T08:30:00Z"}`, `character ' ' at position 2`},
		{"negative count", `{"service_name":"a","timestamp":"2025-01-16T08:30:00Z","heartbeat_count":-3}`, `field "heartbeat_count": -3 is negative`},
		{"negative memory", `{"service_name":"a","timestamp":"2025-01-16T08:30:00Z","memory_usage_mb":-1.5}`, `field "memory_usage_mb": -1.5 is negative`},
		{"negative uptime", `{"service_name":"a","timestamp":"2025-01-16T08:30:00Z","uptime_seconds":-1}`, `field "uptime_seconds": -1 is negative`},
		{"negative cpu", `{"service_name":"a","timestamp":"2025-01-16T08:30:00Z","cpu_usage_percent":-0.1}`, `field "cpu_usage_percent": -0.1 is negative`},
		{"count string", `{"service_name":"a","timestamp":"2025-01-16T08:30:00Z","heartbeat_count":"7"}`, `field "heartbeat_count": want an integer, got a string`},
		{"count fraction", `{"service_name":"a","timestamp":"2025-01-16T08:30:00Z","heartbeat_count":7.5}`, "want an integer, got 7.5"},
		{"memory object", `{"service_name":"a","timestamp":"2025-01-16T08:30:00Z","memory_usage_mb":{}}`, "want a number, got an object"},
		{"too big", huge, "over the 65536-byte limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode([]byte(tt.in))
			if err == nil {
				t.Fatalf("Decode succeeded, want error containing %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}

func TestEncodeRefusesOversizeAndUnencodable(t *testing.T) {
	big := Message{ServiceName: "a", Timestamp: time.Now(), Data: map[string]any{"blob": strings.Repeat("x", MaxMessageSize)}}
	if _, err := Encode(big); err == nil || !strings.Contains(err.Error(), "over the 65536-byte limit") {
		t.Errorf("Encode(oversize) error = %v, want size limit error", err)
	}
	bad := Message{ServiceName: "a", Timestamp: time.Now(), Data: map[string]any{"fn": func() {}}}
	if _, err := Encode(bad); err == nil || !strings.Contains(err.Error(), `field "fn"`) {
		t.Errorf("Encode(func value) error = %v, want error naming the field", err)
	}
}

func TestValidServiceName(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"a", true},
		{"tracker_fetcher", true},
		{"api-v2.prod", true},
		{"...", true},
		{".hidden", true},
		{"a..b", true},
		{".", false},  // an HTTP path /heartbeat/. is cleaned away
		{"..", false}, // likewise
		{strings.Repeat("x", 128), true},
		{"", false},
		{strings.Repeat("x", 129), false},
		{"a b", false},
		{"a/b", false},
		{"a:b", false},
		{"a*", false},
		{"café", false},
		{"a\n", false},
	}
	for _, tt := range tests {
		err := ValidServiceName(tt.name)
		if (err == nil) != tt.ok {
			t.Errorf("ValidServiceName(%q) = %v, want ok=%v", tt.name, err, tt.ok)
		}
	}
	// The character is named as written, counted in characters.
	if err := ValidServiceName("café"); err == nil || !strings.Contains(err.Error(), "character 'é' at position 4") {
		t.Errorf("ValidServiceName(café) = %v", err)
	}
}

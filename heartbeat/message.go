package heartbeat

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strings"
	"time"
)

// MaxMessageSize is the largest encoded heartbeat accepted, in bytes. Decode,
// Encode, the stores and PushHandler all refuse bigger messages: a heartbeat
// is a liveness signal, not a data channel.
const MaxMessageSize = 64 << 10

// MaxServiceNameLen is the longest service name ValidServiceName accepts.
const MaxServiceNameLen = 128

// timestampLayout writes RFC 3339 with microseconds and a numeric offset
// (+00:00 rather than Z), the shape other heartbeat publishers produce.
const timestampLayout = "2006-01-02T15:04:05.000000-07:00"

// JSON names of the standard fields.
const (
	fieldServiceName = "service_name"
	fieldInstanceID  = "instance_id"
	fieldTimestamp   = "timestamp"
	fieldUptime      = "uptime_seconds"
	fieldCount       = "heartbeat_count"
	fieldMemory      = "memory_usage_mb"
	fieldCPU         = "cpu_usage_percent"
)

// Message is one heartbeat: who sent it, when, and a few process figures.
// Data holds the service-specific fields; on the wire they sit flat at the
// top level next to the standard fields. Decoded Data numbers are
// json.Number so they survive a round trip unchanged.
type Message struct {
	ServiceName     string
	InstanceID      string
	Timestamp       time.Time
	UptimeSeconds   float64
	HeartbeatCount  int64
	MemoryUsageMB   float64
	CPUUsagePercent float64
	Data            map[string]any
}

// IsStandardField reports whether name is the JSON name of one of Message's
// standard fields. Such names cannot be used as Data keys: on encode the
// standard field wins and the Data entry is dropped.
func IsStandardField(name string) bool {
	switch name {
	case fieldServiceName, fieldInstanceID, fieldTimestamp, fieldUptime,
		fieldCount, fieldMemory, fieldCPU:
		return true
	}
	return false
}

// ValidServiceName returns nil if name can be used as a service name: 1 to
// 128 characters, each an ASCII letter, digit, '_', '.' or '-', and not "."
// or "..". Names end up in store keys, channel names, file names and URL
// paths (where "." and ".." would be cleaned away), so nothing else is
// allowed.
func ValidServiceName(name string) error {
	if name == "" {
		return fmt.Errorf("service name is empty")
	}
	if len(name) > MaxServiceNameLen {
		return fmt.Errorf("service name %.20q… is %d characters, longer than %d", name, len(name), MaxServiceNameLen)
	}
	pos := 0
	for _, c := range name {
		pos++
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9',
			c == '_', c == '.', c == '-':
		default:
			return fmt.Errorf("service name %q: character %q at position %d is not allowed (use ASCII letters, digits, '_', '.' or '-')", name, c, pos)
		}
	}
	if name == "." || name == ".." {
		return fmt.Errorf("service name %q is a path element (a URL path /heartbeat/%s would not reach it); use a name with a letter or digit", name, name)
	}
	return nil
}

// Decode parses one JSON heartbeat. It fails, saying why, when b is larger
// than MaxMessageSize, is not a JSON object, lacks service_name or timestamp,
// has a service name ValidServiceName rejects, or has a timestamp that is not
// RFC 3339 with a UTC offset. Fields other than the standard ones go to Data.
func Decode(b []byte) (Message, error) {
	if len(b) > MaxMessageSize {
		return Message{}, fmt.Errorf("heartbeat message is %d bytes, over the %d-byte limit", len(b), MaxMessageSize)
	}
	return decode(b, decodeRules{requireService: true, requireTimestamp: true})
}

// Encode returns the JSON form of m (see MarshalJSON) and fails if it is
// larger than MaxMessageSize, which Decode would refuse.
func Encode(m Message) ([]byte, error) {
	b, err := m.MarshalJSON()
	if err != nil {
		return nil, err
	}
	if len(b) > MaxMessageSize {
		return nil, fmt.Errorf("heartbeat message for %q is %d bytes, over the %d-byte limit", m.ServiceName, len(b), MaxMessageSize)
	}
	return b, nil
}

// MarshalJSON writes the standard fields first, in a fixed order, then the
// Data fields sorted by name, all at the top level. Data entries named like a
// standard field are left out. The timestamp is RFC 3339 with microseconds
// and a numeric offset, e.g. 2025-01-16T08:30:00.123456+00:00.
func (m Message) MarshalJSON() ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteByte('{')
	first := true
	put := func(key string, v any) error {
		val, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("heartbeat message field %q: %w", key, err)
		}
		if !first {
			buf.WriteByte(',')
		}
		first = false
		k, _ := json.Marshal(key)
		buf.Write(k)
		buf.WriteByte(':')
		buf.Write(val)
		return nil
	}
	std := []struct {
		key string
		val any
	}{
		{fieldServiceName, m.ServiceName},
		{fieldInstanceID, m.InstanceID},
		{fieldTimestamp, m.Timestamp.Format(timestampLayout)},
		{fieldUptime, m.UptimeSeconds},
		{fieldCount, m.HeartbeatCount},
		{fieldMemory, m.MemoryUsageMB},
		{fieldCPU, m.CPUUsagePercent},
	}
	for _, f := range std {
		if err := put(f.key, f.val); err != nil {
			return nil, err
		}
	}
	keys := make([]string, 0, len(m.Data))
	for k := range m.Data {
		if !IsStandardField(k) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		if err := put(k, m.Data[k]); err != nil {
			return nil, err
		}
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

// UnmarshalJSON decodes like Decode, without the size limit, so lists of
// messages (e.g. a status report) can be read back with encoding/json.
func (m *Message) UnmarshalJSON(b []byte) error {
	dm, err := decode(b, decodeRules{requireService: true, requireTimestamp: true})
	if err != nil {
		return err
	}
	*m = dm
	return nil
}

// decodeRules says which standard fields a decoder insists on. PushHandler
// fills in a missing service name and timestamp itself.
type decodeRules struct {
	requireService   bool
	requireTimestamp bool
}

func decode(b []byte, rules decodeRules) (Message, error) {
	trimmed := bytes.TrimSpace(b)
	if len(trimmed) == 0 {
		return Message{}, fmt.Errorf("heartbeat message is empty")
	}
	if trimmed[0] != '{' {
		return Message{}, fmt.Errorf("heartbeat message is not a JSON object (starts with %q)", preview(trimmed))
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(trimmed, &raw); err != nil {
		return Message{}, fmt.Errorf("heartbeat message is not valid JSON: %w", err)
	}

	var m Message
	for key, val := range raw {
		if IsStandardField(key) && string(val) == "null" {
			continue // an absent standard field
		}
		var err error
		switch key {
		case fieldServiceName:
			err = decodeString(val, &m.ServiceName)
		case fieldInstanceID:
			err = decodeString(val, &m.InstanceID)
		case fieldTimestamp:
			var s string
			if err = decodeString(val, &s); err == nil {
				m.Timestamp, err = ParseTimestamp(s)
			}
		case fieldUptime:
			err = decodeFloat(val, &m.UptimeSeconds)
		case fieldCount:
			err = decodeInt(val, &m.HeartbeatCount)
		case fieldMemory:
			err = decodeFloat(val, &m.MemoryUsageMB)
		case fieldCPU:
			err = decodeFloat(val, &m.CPUUsagePercent)
		default:
			var v any
			dec := json.NewDecoder(bytes.NewReader(val))
			dec.UseNumber()
			if err = dec.Decode(&v); err == nil {
				if m.Data == nil {
					m.Data = make(map[string]any)
				}
				m.Data[key] = v
			}
		}
		if err == nil {
			err = checkNotNegative(key, m)
		}
		if err != nil {
			return Message{}, fmt.Errorf("heartbeat message field %q: %w", key, err)
		}
	}

	if m.ServiceName == "" {
		if rules.requireService {
			return Message{}, fmt.Errorf("heartbeat message has no service_name")
		}
	} else if err := ValidServiceName(m.ServiceName); err != nil {
		return Message{}, fmt.Errorf("heartbeat message: %w", err)
	}
	if m.Timestamp.IsZero() && rules.requireTimestamp {
		return Message{}, fmt.Errorf("heartbeat message for %q has no timestamp", m.ServiceName)
	}
	return m, nil
}

// checkNotNegative refuses a negative figure in the standard field key
// of m: counts, uptime, memory and CPU use cannot be below zero.
func checkNotNegative(key string, m Message) error {
	var v float64
	switch key {
	case fieldUptime:
		v = m.UptimeSeconds
	case fieldCount:
		v = float64(m.HeartbeatCount)
	case fieldMemory:
		v = m.MemoryUsageMB
	case fieldCPU:
		v = m.CPUUsagePercent
	default:
		return nil
	}
	if v < 0 {
		return fmt.Errorf("%v is negative", v)
	}
	return nil
}

// ParseTimestamp parses an RFC 3339 timestamp that carries a UTC offset
// ("Z" or "+hh:mm"), with or without fractional seconds.
func ParseTimestamp(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("timestamp %q is not RFC 3339 with a UTC offset (want e.g. 2025-01-16T08:30:00.123456+00:00)", s)
	}
	return t, nil
}

func decodeString(val json.RawMessage, dst *string) error {
	if err := json.Unmarshal(val, dst); err != nil {
		return fmt.Errorf("want a string, got %s", jsonKind(val))
	}
	return nil
}

func decodeFloat(val json.RawMessage, dst *float64) error {
	if err := json.Unmarshal(val, dst); err != nil {
		return fmt.Errorf("want a number, got %s", jsonKind(val))
	}
	return nil
}

// decodeInt accepts integral floats such as 60.0 as well, since some
// publishers write every number as a float.
func decodeInt(val json.RawMessage, dst *int64) error {
	var n json.Number
	// json.Number also takes a quoted number; a string is still wrong here.
	if len(val) == 0 || val[0] == '"' || json.Unmarshal(val, &n) != nil {
		return fmt.Errorf("want an integer, got %s", jsonKind(val))
	}
	if i, err := n.Int64(); err == nil {
		*dst = i
		return nil
	}
	f, err := n.Float64()
	if err != nil || f != math.Trunc(f) || math.Abs(f) > 1<<53 {
		return fmt.Errorf("want an integer, got %s", n)
	}
	*dst = int64(f)
	return nil
}

// jsonKind names the JSON type of val for error messages.
func jsonKind(val json.RawMessage) string {
	s := strings.TrimSpace(string(val))
	if s == "" {
		return "nothing"
	}
	switch s[0] {
	case '"':
		return "a string"
	case '{':
		return "an object"
	case '[':
		return "an array"
	case 't', 'f':
		return "a boolean"
	}
	return "the number " + preview([]byte(s))
}

// preview shortens b for error messages.
func preview(b []byte) string {
	const max = 20
	if len(b) > max {
		return string(b[:max]) + "…"
	}
	return string(b)
}

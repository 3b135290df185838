package heartbeat

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"
	"unicode/utf8"
)

// FormatBeat renders m for a person watching heartbeats arrive: a summary
// line, then one "  key: value" line per Data field, sorted by key, e.g.
//
//	tracker_fetcher (a1b2c3d4) 08:30:15  up 1.2h  beats 72  mem 156.3MB  cpu 12.5%
//	  api_status: authenticated
//	  queue_size: 1380
//
// The time is shown in now's location, with the date when it is not now's
// date, and a timestamp too far in the future is flagged as clock skew.
// Text from the heartbeat (instance id, field names and values) is escaped
// (see Escape), so the result is safe to print on a terminal. It has no
// trailing newline.
func FormatBeat(m Message, now time.Time) string {
	var b strings.Builder
	b.WriteString(Escape(m.ServiceName))
	if id := ShortInstanceID(m.InstanceID); id != "" {
		fmt.Fprintf(&b, " (%s)", id)
	}
	ts := m.Timestamp.In(now.Location())
	layout := "15:04:05"
	if y, mo, d := ts.Date(); y != now.Year() || mo != now.Month() || d != now.Day() {
		layout = "2006-01-02 15:04:05"
	}
	fmt.Fprintf(&b, " %s  up %s  beats %d  mem %.1fMB  cpu %.1f%%",
		ts.Format(layout), formatUptime(m.UptimeSeconds), m.HeartbeatCount, m.MemoryUsageMB, m.CPUUsagePercent)
	if err := CheckClockSkew(m, now); err != nil {
		fmt.Fprintf(&b, "  (%v)", err)
	}

	keys := make([]string, 0, len(m.Data))
	for k := range m.Data {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "\n  %s: %s", Escape(k), formatValue(m.Data[k]))
	}
	return b.String()
}

// ShortInstanceID returns the leading part of a UUID-like instance id (the
// first 8 hex digits) and any other id cut to 24 characters, escaped (see
// Escape) so that it is safe to print.
func ShortInstanceID(id string) string {
	if head, _, ok := strings.Cut(id, "-"); ok && len(head) >= 8 && isHex(head) {
		return head[:8]
	}
	if utf8.RuneCountInString(id) > 24 {
		n := 0
		for i := range id {
			if n == 24 {
				id = id[:i]
				break
			}
			n++
		}
	}
	return Escape(id)
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

// formatUptime picks the unit that keeps the number short: 45s, 12.5m,
// 1.2h, 3.4d.
func formatUptime(sec float64) string {
	switch {
	case sec < 60:
		return fmt.Sprintf("%.0fs", sec)
	case sec < 3600:
		return fmt.Sprintf("%.1fm", sec/60)
	case sec < 2*86400:
		return fmt.Sprintf("%.1fh", sec/3600)
	default:
		return fmt.Sprintf("%.1fd", sec/86400)
	}
}

// formatValue shows strings bare (quoted and escaped if they hold
// characters Escape escapes) and anything else as compact JSON, escaped.
func formatValue(v any) string {
	if s, ok := v.(string); ok {
		if Escape(s) != s {
			return `"` + strings.ReplaceAll(Escape(s), `"`, `\"`) + `"`
		}
		return s
	}
	b, err := json.Marshal(v)
	if err != nil {
		return Escape(fmt.Sprint(v))
	}
	return Escape(string(b))
}

package heartbeat

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"
)

// FuzzDecode feeds arbitrary bytes to Decode and to the lenient decoder the
// push endpoint uses. Neither may panic; a refusal returns no message; an
// accepted heartbeat has a valid service name and a timestamp, keeps no
// standard field in Data, and survives Encode and a second Decode with the
// same encoding. The checked-in seeds are in testdata/fuzz/FuzzDecode.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"service_name":"tracker_fetcher","instance_id":"a1b2c3d4-e5f6-7890-abcd-ef1234567890","timestamp":"2025-01-16T08:30:00.123456+00:00","uptime_seconds":3600.5,"heartbeat_count":60,"memory_usage_mb":156.3,"cpu_usage_percent":12.5,"queue_size":1380,"api_status":"authenticated"}`))
	f.Add([]byte(`{"service_name":"a","timestamp":"2025-01-16T08:30:00Z"}`))
	f.Add([]byte(`{"service_name":null,"timestamp":"2025-01-16T08:30:00Z"}`))
	f.Add([]byte(`[1,2]`))
	f.Add([]byte(``))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Decode(data)
		if err != nil {
			if !reflect.DeepEqual(m, Message{}) {
				t.Fatalf("Decode returned %+v with error %v", m, err)
			}
			if err.Error() == "" {
				t.Fatal("Decode returned an empty error")
			}
		} else {
			checkAccepted(t, m, true)
		}

		// The push endpoint's decoder fills in service and timestamp itself.
		pm, perr := decode(data, decodeRules{})
		if perr == nil {
			checkAccepted(t, pm, false)
		}
		if err == nil && perr != nil {
			t.Fatalf("the push decoder refuses what Decode accepts: %v", perr)
		}
	})
}

// checkAccepted checks an accepted message and its round trip.
func checkAccepted(t *testing.T, m Message, strict bool) {
	t.Helper()
	if strict || m.ServiceName != "" {
		if err := ValidServiceName(m.ServiceName); err != nil {
			t.Fatalf("accepted service name %q: %v", m.ServiceName, err)
		}
	}
	if strict && m.Timestamp.IsZero() {
		t.Fatal("accepted a heartbeat without a timestamp")
	}
	for k := range m.Data {
		if IsStandardField(k) {
			t.Fatalf("standard field %q ended up in Data", k)
		}
	}
	if !strict {
		return
	}
	enc, err := Encode(m)
	if err != nil {
		// Encoding may grow a message past MaxMessageSize (HTML-escaped
		// characters, the fixed timestamp layout); anything else is a bug.
		if len(enc) == 0 && bytes.Contains([]byte(err.Error()), []byte("byte limit")) {
			return
		}
		t.Fatalf("cannot encode an accepted heartbeat %+v: %v", m, err)
	}
	again, err := Decode(enc)
	if err != nil {
		t.Fatalf("an encoded heartbeat does not decode: %v\n%s", err, enc)
	}
	enc2, err := Encode(again)
	if err != nil || !bytes.Equal(enc, enc2) {
		t.Fatalf("round trip changed the heartbeat (%v):\n%s\n%s", err, enc, enc2)
	}
	if !again.Timestamp.Equal(m.Timestamp.Truncate(time.Microsecond)) && !again.Timestamp.Equal(m.Timestamp) {
		t.Fatalf("round trip moved the timestamp from %s to %s", m.Timestamp, again.Timestamp)
	}
}

// FuzzParseRedisSpec puts arbitrary text where a password goes, between
// two markers, and checks that ParseRedisSpec never panics and that neither
// its error nor the spec it accepts holds a marker: no part of a password
// reaches a message, however badly it is written.
func FuzzParseRedisSpec(f *testing.F) {
	for _, pw := range []string{"s3cr3t", "s3#cr3t", "pa/ss", "p?a", "p@ss", "%zz", "12/34", "1?x=2", " ", "\x1b]0;x\a"} {
		f.Add(pw, false)
		f.Add(pw, true)
	}
	f.Fuzz(func(t *testing.T, pw string, withUser bool) {
		user := ""
		if withUser {
			user = "user"
		}
		spec := "redis://" + user + ":QZ" + pw + "QZ@cache.internal:6379/0"
		s, err := ParseRedisSpec(spec)
		if err != nil {
			if strings.Contains(err.Error(), "QZ") {
				t.Fatalf("ParseRedisSpec(%q) error leaks the password: %v", spec, err)
			}
			return
		}
		if strings.Contains(s.String(), "QZ") || strings.Contains(strings.Join(s.Addrs, ","), "QZ") {
			t.Fatalf("ParseRedisSpec(%q) = %q: the password became a node", spec, s.String())
		}
	})
}

// FuzzEscape checks that Escape leaves nothing a terminal acts on and that
// text needing no escape is returned unchanged.
func FuzzEscape(f *testing.F) {
	for _, s := range []string{"plain", "\x1b]0;TITLE\a", "a\u202eb", "\xff\xfe", "tab\there", "\u0085", "日本"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		e := Escape(s)
		if !utf8.ValidString(e) {
			t.Fatalf("Escape(%q) = %q is not UTF-8", s, e)
		}
		for _, r := range e {
			if r != ' ' && !unicode.IsPrint(r) {
				t.Fatalf("Escape(%q) = %q keeps %U", s, e, r)
			}
		}
		if utf8.ValidString(s) && !strings.ContainsFunc(s, needsEscape) && e != s {
			t.Fatalf("Escape(%q) = %q changed printable text", s, e)
		}
	})
}

package heartbeat

import (
	"bytes"
	"reflect"
	"testing"
	"time"
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

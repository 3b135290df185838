package state

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

var c0 = time.Date(2026, 11, 21, 12, 0, 0, 123, time.UTC)

// The records used as round-trip cases and fuzz seeds.
var (
	sampleJob = Job{Failing: true, Failures: 7, FirstFailure: c0, LastNotified: c0, Since: c0, LastSlot: "slot", FirstRun: c0,
		LastRun: c0, LastSuccess: c0, LastDuration: time.Second, LastStatus: "WARNING", LastMessage: "m ü", LastPerfdata: "a=1",
		LastLongOutput: "x\ny", NotifiedStatus: "WARNING", Thread: "t", Held: c0, Ack: &Ack{By: "a", At: c0, Reason: "r"}}
	sampleClaims = Claims{Claim: Claim{PID: 9, Started: c0, Expires: c0.Add(time.Hour)}, Jobs: []string{"a", "tcp:b[x:1]"}}
	sampleHealth = Health{LastRun: Run{Tier: "hour", Started: c0, Finished: c0, Error: "e"},
		Mail:    Mail{SelfCheckAt: c0, SelfCheckOK: true, SelfCheckError: "s", SendAt: c0, SendOK: true, SendError: "x"},
		Running: []Claim{{PID: 1, Started: c0, Expires: c0}}}
	sampleNotice = Notice{Job: "j", Kind: KindRecovery, Subject: "s", Body: "b", Created: c0, Status: "OK", Thread: "t", First: true,
		Queued: c0, To: []Delivery{{To: "a@b", Done: true, Attempts: 1, LastTry: c0, LastError: "e"}}, Sending: &Claim{PID: 2, Started: c0, Expires: c0}}
	sampleEvent     = Event{Time: c0, Job: "j", Kind: EventAcked, Status: "CRITICAL", Message: "m", To: []string{"a", "b"}, By: "me"}
	sampleSilence   = Silence{Pattern: "http:*", Until: c0, Reason: "r", By: "b", Created: c0}
	sampleService   = Service{Name: "svc", FirstSeen: c0, LastSeen: c0}
	sampleRecipient = Recipient{To: "a@b", Failing: true, Permanent: true, Since: c0, LastTry: c0, LastError: "550", Settings: "s", Reported: true, Sent: 12, Failed: 3}
)

// normalTimes makes decoded times comparable with the originals (decoding
// yields local times).
func normalTimes(v any) any {
	rv := reflect.ValueOf(v)
	out := reflect.New(rv.Type()).Elem()
	out.Set(rv)
	walk(out)
	return out.Interface()
}

func walk(v reflect.Value) {
	switch v.Kind() {
	case reflect.Struct:
		if t, ok := v.Interface().(time.Time); ok {
			if v.CanSet() {
				v.Set(reflect.ValueOf(t.UTC()))
			}
			return
		}
		for i := 0; i < v.NumField(); i++ {
			if v.Field(i).CanSet() {
				walk(v.Field(i))
			}
		}
	case reflect.Pointer:
		if !v.IsNil() {
			walk(v.Elem())
		}
	case reflect.Slice:
		for i := 0; i < v.Len(); i++ {
			walk(v.Index(i))
		}
	}
}

func TestRecordsRoundTrip(t *testing.T) {
	check := func(name string, want, got any, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !reflect.DeepEqual(normalTimes(want), normalTimes(got)) {
			t.Errorf("%s:\n got %+v\nwant %+v", name, got, want)
		}
	}
	j, err := DecodeJob(encodeJob(&sampleJob))
	check("job", sampleJob, j, err)
	h, err := DecodeHealth(encodeHealth(&sampleHealth))
	check("health", sampleHealth, h, err)
	n, err := DecodeNotice(encodeNotice(&sampleNotice))
	check("notice", sampleNotice, n, err)
	e, err := DecodeEvent(encodeEvent(&sampleEvent))
	check("event", sampleEvent, e, err)
	s, err := DecodeSilence(encodeSilence(&sampleSilence))
	check("silence", sampleSilence, s, err)
	v, err := DecodeService(encodeService(&sampleService))
	check("service", sampleService, v, err)
	r, err := DecodeRecipient(encodeRecipient(&sampleRecipient))
	check("recipient", sampleRecipient, r, err)
	cl, err := DecodeClaims(encodeClaims(&sampleClaims))
	check("claims", sampleClaims, cl, err)
	z, err := DecodeJob(encodeJob(&Job{}))
	check("zero job", Job{}, z, err)
}

func TestDecodeRefusesDamage(t *testing.T) {
	good := encodeJob(&sampleJob)
	cases := map[string][]byte{
		"empty":          nil,
		"kind only":      good[:1],
		"wrong kind":     append([]byte{'N'}, good[1:]...),
		"newer version":  append([]byte{'J', 2}, good[2:]...),
		"version zero":   append([]byte{'J', 0}, good[2:]...),
		"truncated":      good[:len(good)-3],
		"trailing bytes": append(bytes.Clone(good), 0),
		"huge string":    {'J', 1, 0, 2, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f},
		"bad bool":       {'J', 1, 7},
	}
	for name, b := range cases {
		if _, err := DecodeJob(b); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	neg := encodeJob(&Job{Failures: -1})
	if _, err := DecodeJob(neg); err == nil {
		t.Error("a negative failure count was accepted")
	}
}

// fuzzRecord checks one decoder: it never panics, and what it accepts
// encodes back to the same bytes.
func fuzzRecord[T any](f *testing.F, seed []byte, decode func([]byte) (T, error), encode func(*T) []byte) {
	f.Add(seed)
	f.Add(seed[:len(seed)/2])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := decode(b)
		if err != nil {
			return
		}
		again := encode(&v)
		w, err := decode(again)
		if err != nil {
			t.Fatalf("an accepted record does not decode after encoding: %v", err)
		}
		if !reflect.DeepEqual(normalTimes(v), normalTimes(w)) {
			t.Fatalf("record changed through encode/decode:\n%+v\n%+v", v, w)
		}
	})
}

func FuzzDecodeJob(f *testing.F) { fuzzRecord(f, encodeJob(&sampleJob), DecodeJob, encodeJob) }
func FuzzDecodeHealth(f *testing.F) {
	fuzzRecord(f, encodeHealth(&sampleHealth), DecodeHealth, encodeHealth)
}
func FuzzDecodeNotice(f *testing.F) {
	fuzzRecord(f, encodeNotice(&sampleNotice), DecodeNotice, encodeNotice)
}
func FuzzDecodeClaims(f *testing.F) {
	fuzzRecord(f, encodeClaims(&sampleClaims), DecodeClaims, encodeClaims)
}
func FuzzDecodeEvent(f *testing.F) {
	fuzzRecord(f, encodeEvent(&sampleEvent), DecodeEvent, encodeEvent)
}
func FuzzDecodeSilence(f *testing.F) {
	fuzzRecord(f, encodeSilence(&sampleSilence), DecodeSilence, encodeSilence)
}
func FuzzDecodeService(f *testing.F) {
	fuzzRecord(f, encodeService(&sampleService), DecodeService, encodeService)
}
func FuzzDecodeRecipient(f *testing.F) {
	fuzzRecord(f, encodeRecipient(&sampleRecipient), DecodeRecipient, encodeRecipient)
}

// FuzzDecodeJSONState feeds arbitrary bytes to the migration's decoder of
// the JSON state of earlier releases; what it accepts must migrate into
// records that read back.
func FuzzDecodeJSONState(f *testing.F) {
	f.Add([]byte(`{"version":1,"jobs":{"a":{"failures":2}}}`))
	f.Add([]byte(`{"version":1,"jobs":null,"outbox":[{"job":"a","kind":"failure","to":["x"]}]}`))
	f.Add([]byte(`{"version":2}`))
	f.Add([]byte(`{"version":1,"jobs":{"a":{"failing":true,"failures":3,"running":{"pid":1,"started":"2026-11-21T12:00:00Z","expires":"2999-01-01T00:00:00Z"}},
"b":{"running":{"pid":-4,"expires":"2999-01-01T00:00:00Z"}}},
"outbox":[{"job":"a","kind":"failure","to":["x","y"],"status":"CRITICAL","thread":"t","first":true,"queued":"2026-11-20T23:00:00Z",
"attempts":2,"last_error":"451","sending":{"pid":2147483648,"started":"2026-11-21T12:00:00Z","expires":"2026-11-21T12:01:00Z"}}]}`))
	f.Add([]byte(`{"version":1,"outbox":[{"job":"a","kind":"failure","attempts":4294967296}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := decodeJSONState(b)
		if err != nil {
			return
		}
		for name, j := range st.Jobs {
			if j == nil || j.Failures < 0 {
				t.Fatalf("accepted job %q = %+v", name, j)
			}
		}
		s := &Store{Path: filepath.Join(t.TempDir(), "state")}
		if err := os.WriteFile(s.Path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		err = s.View(func(tx *Tx) error {
			if err := tx.ForEachJob(func(_ string, _ Job, err error) error { return err }); err != nil {
				return err
			}
			if _, err := tx.Outbox(); err != nil {
				return err
			}
			if _, err := tx.AllClaims(); err != nil {
				return err
			}
			_, err := tx.Health()
			return err
		})
		if err != nil {
			t.Fatalf("a state the decoder accepted migrated into records that do not read back: %v", err)
		}
	})
}

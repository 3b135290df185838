package state_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"checker/state"
)

// newStore returns a store whose file lives in a fresh directory.
func newStore(t *testing.T) *state.Store {
	t.Helper()
	return &state.Store{Path: filepath.Join(t.TempDir(), "checker.state")}
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	slices.Sort(names)
	return names
}

var t0 = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)

// sample fills every kind of record.
func sample(tx *state.Tx) error {
	j := state.Job{Failing: true, Failures: 3, FirstFailure: t0, LastNotified: t0.Add(time.Minute), Since: t0, LastSlot: "2026-11-21T12:03+0000",
		FirstRun: t0.Add(-time.Hour), LastRun: t0.Add(3 * time.Minute), LastSuccess: t0.Add(-time.Minute), LastDuration: 1500 * time.Millisecond,
		LastStatus: "CRITICAL", LastMessage: "connection refused ✗", LastPerfdata: "time=0.1s;;;0", LastLongOutput: "line 2\nline 3",
		NotifiedStatus: "CRITICAL", Thread: "abc", Held: t0.Add(2 * time.Minute), Ack: &state.Ack{By: "alice", At: t0, Reason: "on it"}}
	if err := tx.PutJob("tcp:db", &j); err != nil {
		return err
	}
	h := state.Health{LastRun: state.Run{Tier: "minute", Started: t0, Finished: t0.Add(time.Second), Error: "x"},
		Mail:    state.Mail{SelfCheckAt: t0, SelfCheckOK: true, SendAt: t0, SendError: "boom"},
		Running: []state.Claim{{PID: 7, Started: t0, Expires: t0.Add(time.Hour)}}}
	if err := tx.PutHealth(&h); err != nil {
		return err
	}
	n := state.Notice{Job: "tcp:db", Kind: state.KindFailure, Subject: "s", Body: "b", Created: t0, Queued: t0, Status: "CRITICAL",
		Thread: "abc", First: true, To: []state.Delivery{{To: "a@x", Done: true}, {To: "b@x", Attempts: 2, LastTry: t0, LastError: "550"}}}
	if err := tx.PutNotice(&n); err != nil {
		return err
	}
	if err := tx.AddEvent(state.Event{Time: t0, Job: "tcp:db", Kind: state.EventFailing, Status: "CRITICAL", Message: "m", To: []string{"a@x"}, By: "cron"}); err != nil {
		return err
	}
	if err := tx.PutSilence(&state.Silence{Pattern: "tcp:*", Until: t0.Add(time.Hour), Reason: "maint", By: "bob", Created: t0}); err != nil {
		return err
	}
	if err := tx.PutService(&state.Service{Name: "svc", FirstSeen: t0, LastSeen: t0}); err != nil {
		return err
	}
	return tx.PutRecipient(&state.Recipient{To: "b@x", Failing: true, Permanent: true, Since: t0, LastTry: t0, LastError: "550", Settings: "1-2", Reported: true})
}

func TestRoundTripAndMode(t *testing.T) {
	s := newStore(t)
	if err := s.Update(t.Context(), sample); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(s.Path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("state file mode %04o, want 0600", fi.Mode().Perm())
	}
	err = s.View(func(tx *state.Tx) error {
		j, found, err := tx.Job("tcp:db")
		if err != nil || !found || j.Failures != 3 || j.Ack == nil || j.Ack.By != "alice" ||
			j.LastLongOutput != "line 2\nline 3" || j.LastDuration != 1500*time.Millisecond || !j.FirstRun.Equal(t0.Add(-time.Hour)) {
			t.Errorf("job = %+v, %v, %v", j, found, err)
		}
		if _, found, _ := tx.Job("nope"); found {
			t.Error("found a job never written")
		}
		h, err := tx.Health()
		if err != nil || h.LastRun.Tier != "minute" || h.Mail.SendError != "boom" || len(h.Running) != 1 {
			t.Errorf("health = %+v, %v", h, err)
		}
		out, err := tx.Outbox()
		if err != nil || len(out) != 1 || len(out[0].To) != 2 || !out[0].To[0].Done || out[0].To[1].Attempts != 2 || tx.OutboxLen() != 1 {
			t.Errorf("outbox = %+v, %v", out, err)
		}
		var evs []state.Event
		if err := tx.Events(time.Time{}, nil, func(e state.Event) error { evs = append(evs, e); return nil }); err != nil || len(evs) != 1 || evs[0].By != "cron" {
			t.Errorf("events = %+v, %v", evs, err)
		}
		sil, err := tx.Silences()
		if err != nil || len(sil) != 1 || sil[0].Reason != "maint" {
			t.Errorf("silences = %+v, %v", sil, err)
		}
		svc, err := tx.Services()
		if err != nil || len(svc) != 1 || svc[0].Name != "svc" {
			t.Errorf("services = %+v, %v", svc, err)
		}
		r, found, err := tx.Recipient("b@x")
		if err != nil || !found || !r.Permanent || !r.Reported {
			t.Errorf("recipient = %+v, %v, %v", r, found, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := dirNames(t, filepath.Dir(s.Path)); fmt.Sprint(got) != "[checker.state checker.state.lock]" {
		t.Errorf("directory holds %v", got)
	}
}

func TestViewMissingFileIsEmpty(t *testing.T) {
	s := newStore(t)
	err := s.View(func(tx *state.Tx) error {
		if _, found, err := tx.Job("x"); found || err != nil {
			t.Errorf("found a job in no state: %v", err)
		}
		if h, err := tx.Health(); err != nil || !h.LastRun.Finished.IsZero() {
			t.Errorf("health %+v, %v", h, err)
		}
		if tx.OutboxLen() != 0 {
			t.Error("outbox not empty")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s.Path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("View created the file: %v", err)
	}
}

func TestUpdateCreatesDirectory(t *testing.T) {
	s := &state.Store{Path: filepath.Join(t.TempDir(), "a", "b", "checker.state")}
	if err := s.Update(t.Context(), increment); err != nil {
		t.Fatal(err)
	}
	if got := counter(t, s.Path); got != 1 {
		t.Errorf("counter %d", got)
	}
}

func TestUpdateFnErrorKeepsOldState(t *testing.T) {
	s := newStore(t)
	if err := s.Update(t.Context(), increment); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	err := s.Update(t.Context(), func(tx *state.Tx) error {
		if err := increment(tx); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Errorf("Update = %v, want boom", err)
	}
	if got := counter(t, s.Path); got != 1 {
		t.Errorf("counter = %d: a failed transaction was committed", got)
	}
}

func TestReadOnlyTxRefusesWrites(t *testing.T) {
	s := newStore(t)
	if err := s.Update(t.Context(), increment); err != nil {
		t.Fatal(err)
	}
	err := s.View(func(tx *state.Tx) error { return tx.PutJob("x", &state.Job{}) })
	if err == nil {
		t.Error("a write in View succeeded")
	}
}

// validDB returns the bytes of a valid state database with one job.
func validDB(t *testing.T) []byte {
	t.Helper()
	s := newStore(t)
	if err := s.Update(t.Context(), sample); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(s.Path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// foreignDB returns a bbolt database of another program.
func foreignDB(t *testing.T) []byte {
	t.Helper()
	p := filepath.Join(t.TempDir(), "other.db")
	db, err := bolt.Open(p, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket([]byte("widgets"))
		if err != nil {
			return err
		}
		return b.Put([]byte("k"), []byte("v"))
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	return b
}

func TestCorruptFilesAreMovedAsideAndReplaced(t *testing.T) {
	good := validDB(t)
	random := make([]byte, 64<<10)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range random {
		random[i] = byte(rng.UintN(256))
	}
	flipped := bytes.Clone(good)
	for i := 0; i < 8192 && i < len(flipped); i++ {
		flipped[i] ^= 0xff // both meta pages
	}
	cases := map[string][]byte{
		"random bytes":        random,
		"truncated":           good[:len(good)/2],
		"truncated to meta":   good[:4096],
		"meta pages flipped":  flipped,
		"json not ours":       []byte(`{"hello": "world"}`),
		"json with a version": []byte(`{"hello": "world", "version": 1}`),
		"json garbage":        []byte(`{"version": 1, "jobs": {"x": {"failures": -1}}}`),
		"text":                []byte("hello, I am not a database\n"),
		"foreign bbolt":       foreignDB(t),
	}
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			s := newStore(t)
			s.Now = func() time.Time { return t0 }
			if err := os.WriteFile(s.Path, data, 0o600); err != nil {
				t.Fatal(err)
			}
			// A reader reports it and changes nothing.
			err := s.View(func(*state.Tx) error { return nil })
			var ce *state.CorruptError
			if !errors.As(err, &ce) {
				t.Errorf("View = %v, want a CorruptError", err)
			}
			if b, _ := os.ReadFile(s.Path); !bytes.Equal(b, data) {
				t.Fatal("View changed the corrupt file")
			}
			var recovered string
			if err := s.Update(t.Context(), func(tx *state.Tx) error {
				recovered = tx.TakeRecovered()
				return increment(tx)
			}); err != nil {
				t.Fatalf("Update: %v", err)
			}
			aside := s.Path + ".corrupt-20261121T120000.000000000Z"
			if b, err := os.ReadFile(aside); err != nil || !bytes.Equal(b, data) {
				t.Errorf("the corrupt file was not kept intact at %s: %v", aside, err)
			}
			if !strings.Contains(recovered, "corrupt") || !strings.Contains(recovered, aside) {
				t.Errorf("recovered = %q", recovered)
			}
			if strings.Contains(recovered, "internal error") {
				t.Errorf("recovered = %q: says where the database code fell, not what is wrong", recovered)
			}
			if got := counter(t, s.Path); got != 1 {
				t.Errorf("counter %d in the fresh state", got)
			}
			// The recovery is told once.
			if err := s.Update(t.Context(), func(tx *state.Tx) error {
				if r := tx.TakeRecovered(); r != "" {
					t.Errorf("recovery told twice: %q", r)
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestDirectoryAtStatePathIsMovedAside(t *testing.T) {
	s := newStore(t)
	if err := os.MkdirAll(filepath.Join(s.Path, "inside"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := s.Update(t.Context(), increment); err != nil {
		t.Fatal(err)
	}
	matches, _ := filepath.Glob(s.Path + ".corrupt-*")
	if len(matches) != 1 {
		t.Fatalf("moved aside: %v", matches)
	}
	if _, err := os.Stat(filepath.Join(matches[0], "inside")); err != nil {
		t.Errorf("the directory's contents were not kept: %v", err)
	}
	if counter(t, s.Path) != 1 {
		t.Error("no fresh state")
	}
}

// TestEmptyFileIsMovedAside: a 0-byte state file (a full disk, a crash
// before the first write reached the disk) held streaks and notify times
// that are gone: a writer moves it aside and reports it like any corrupt
// file. A reader sees no state yet and changes nothing, since the file may
// be one a writer is creating.
func TestEmptyFileIsMovedAside(t *testing.T) {
	for name, op := range map[string]func(s *state.Store) error{
		"update": func(s *state.Store) error { return s.Update(t.Context(), increment) },
		"check":  func(s *state.Store) error { return s.Check(t.Context()) },
	} {
		t.Run(name, func(t *testing.T) {
			s := newStore(t)
			s.Now = func() time.Time { return t0 }
			if err := os.WriteFile(s.Path, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			var ran bool
			if err := s.View(func(tx *state.Tx) error {
				ran = true
				if _, found, err := tx.Job("counter"); found || err != nil {
					t.Errorf("a reader of an empty file found a job (%v)", err)
				}
				return nil
			}); err != nil || !ran {
				t.Fatalf("View of an empty file = %v (ran %v), want an empty state", err, ran)
			}
			if fi, err := os.Stat(s.Path); err != nil || fi.Size() != 0 {
				t.Fatalf("View changed the empty file: %v", err)
			}
			if m, _ := filepath.Glob(s.Path + ".corrupt-*"); len(m) != 0 {
				t.Fatalf("View moved the empty file aside: %v", m)
			}

			err := op(s)
			aside := s.Path + ".corrupt-20261121T120000.000000000Z"
			if fi, serr := os.Stat(aside); serr != nil || fi.Size() != 0 {
				t.Fatalf("the empty file was not moved aside to %s: %v (%v)", aside, serr, err)
			}
			var ce *state.CorruptError
			switch {
			case name == "check" && (!errors.As(err, &ce) || !strings.Contains(err.Error(), "empty")):
				t.Errorf("Check = %v, want a CorruptError saying the file was empty", err)
			case name == "update" && err != nil:
				t.Fatalf("Update: %v", err)
			}
			var recovered string
			if err := s.Update(t.Context(), func(tx *state.Tx) error {
				recovered = tx.TakeRecovered()
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(recovered, "corrupt") || !strings.Contains(recovered, "empty") || !strings.Contains(recovered, aside) {
				t.Errorf("recovered = %q", recovered)
			}
			want := 0
			if name == "update" {
				want = 1
			}
			if got := counter(t, s.Path); got != want {
				t.Errorf("counter %d in the fresh state, want %d", got, want)
			}
		})
	}
}

// TestReadersDuringReplacement: while a writer moves corrupt files aside
// and creates fresh databases in their place, readers find a state, no
// state yet, or the corrupt file, and never move anything aside or fail
// on a database being born.
func TestReadersDuringReplacement(t *testing.T) {
	s := newStore(t)
	const rounds = 150
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var unexpected []error
	var mu sync.Mutex
	for range 2 {
		wg.Go(func() {
			r := &state.Store{Path: s.Path}
			for {
				select {
				case <-stop:
					return
				default:
				}
				err := r.View(func(tx *state.Tx) error { _, _, err := tx.Job("counter"); return err })
				var ce *state.CorruptError
				if err != nil && !errors.As(err, &ce) {
					mu.Lock()
					unexpected = append(unexpected, err)
					mu.Unlock()
				}
			}
		})
	}
	n := 0
	for i := range rounds {
		// Every other round, the writer finds an empty file.
		data := []byte("not a database")
		if i%2 == 0 {
			data = nil
		}
		if err := os.WriteFile(s.Path+".next", data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(s.Path+".next", s.Path); err != nil {
			t.Fatal(err)
		}
		at := t0.Add(time.Duration(i) * time.Second)
		s.Now = func() time.Time { return at }
		if err := s.Update(t.Context(), increment); err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
		n++
	}
	close(stop)
	wg.Wait()
	if len(unexpected) > 0 {
		t.Errorf("%d reads failed other than on a corrupt file, first: %v", len(unexpected), unexpected[0])
	}
	if m, _ := filepath.Glob(s.Path + ".corrupt-*"); len(m) != n {
		t.Errorf("%d files moved aside, want one per replaced file (%d)", len(m), n)
	}
}

func TestNewerSchemaIsRefused(t *testing.T) {
	s := newStore(t)
	if err := s.Update(t.Context(), increment); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(s.Path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error { return tx.Bucket([]byte("meta")).Put([]byte("version"), []byte("99")) }); err != nil {
		t.Fatal(err)
	}
	db.Close()
	before, _ := os.ReadFile(s.Path)
	for name, op := range map[string]func() error{
		"update": func() error { return s.Update(t.Context(), increment) },
		"view":   func() error { return s.View(func(*state.Tx) error { return nil }) },
	} {
		err := op()
		var ne *state.NewerError
		if !errors.As(err, &ne) || ne.Version != 99 || !strings.Contains(err.Error(), "newer checker") {
			t.Errorf("%s = %v, want a NewerError", name, err)
		}
	}
	if after, _ := os.ReadFile(s.Path); !bytes.Equal(before, after) {
		t.Error("a newer state was changed")
	}
	if m, _ := filepath.Glob(s.Path + ".corrupt-*"); len(m) != 0 {
		t.Errorf("a newer state was moved aside: %v", m)
	}
}

// A record of a newer release inside a valid database is refused by its
// decoder, not misread.
func TestNewerRecordVersionIsRefused(t *testing.T) {
	b := []byte{'J', 9, 1, 2, 3}
	if _, err := state.DecodeJob(b); err == nil || !strings.Contains(err.Error(), "version 9") {
		t.Errorf("DecodeJob of a version-9 record: %v", err)
	}
}

const oldJSON = `{"version":1,"jobs":{"tcp:db":{"failing":true,"failures":4,"first_failure":"2026-11-21T11:00:00Z",
"last_notified":"2026-11-21T11:05:00Z","since":"2026-11-21T11:00:00Z","last_slot":"2026-11-21T11:59+0000",
"last_run":"2026-11-21T11:59:00Z","last_status":"CRITICAL","last_message":"refused"},
"http:web":{"failing":false,"failures":0,"since":"2026-11-20T00:00:00Z","last_run":"2026-11-21T11:59:00Z","last_status":"OK","last_message":"200"}},
"outbox":[{"job":"tcp:db","kind":"failure","subject":"tcp:db is failing","body":"b","to":["a@x","b@x"],"created":"2026-11-21T11:05:00Z",
"status":"CRITICAL","thread":"t-db","first":true,"queued":"2026-11-20T23:00:00Z","attempts":3,"last_error":"451"},
{"job":"http:web","kind":"recovery","subject":"http:web is back","body":"r","to":["a@x"],"created":"2026-11-21T11:50:00Z","status":"OK"}],
"last_run":{"tier":"minute","started":"2026-11-21T11:59:00Z","finished":"2026-11-21T11:59:01Z"},
"mail":{"selfcheck_at":"2026-11-21T11:00:00Z","selfcheck_ok":true,"send_at":"2026-11-21T11:05:00Z","send_ok":false,"send_error":"451 try later"}}
`

func TestMigrateJSONState(t *testing.T) {
	s := newStore(t)
	if err := os.WriteFile(s.Path, []byte(oldJSON), 0o600); err != nil {
		t.Fatal(err)
	}
	check := func(tx *state.Tx) error {
		j, found, err := tx.Job("tcp:db")
		if err != nil || !found || !j.Failing || j.Failures != 4 || j.LastSlot != "2026-11-21T11:59+0000" ||
			!j.LastNotified.Equal(time.Date(2026, 11, 21, 11, 5, 0, 0, time.UTC)) || j.LastMessage != "refused" {
			t.Errorf("tcp:db = %+v, %v, %v", j, found, err)
		}
		if j, found, _ := tx.Job("http:web"); !found || j.Failing || j.LastStatus != "OK" {
			t.Errorf("http:web = %+v", j)
		}
		if j.Thread != "t-db" || j.NotifiedStatus != "CRITICAL" || !j.FirstFailure.Equal(time.Date(2026, 11, 21, 11, 0, 0, 0, time.UTC)) ||
			!j.Since.Equal(j.FirstFailure) || !j.LastRun.Equal(time.Date(2026, 11, 21, 11, 59, 0, 0, time.UTC)) || j.LastStatus != "CRITICAL" {
			t.Errorf("tcp:db lost fields: %+v", j)
		}
		out, err := tx.Outbox()
		if err != nil || len(out) != 2 {
			t.Fatalf("outbox = %+v, %v", out, err)
		}
		slices.SortFunc(out, func(a, b state.Notice) int { return strings.Compare(a.Kind, b.Kind) })
		f, r := out[0], out[1]
		want := state.Notice{Job: "tcp:db", Kind: state.KindFailure, Subject: "tcp:db is failing", Body: "b",
			To:      []state.Delivery{{To: "a@x", Attempts: 3, LastError: "451"}, {To: "b@x", Attempts: 3, LastError: "451"}},
			Created: time.Date(2026, 11, 21, 11, 5, 0, 0, time.UTC), Status: "CRITICAL", Thread: "t-db", First: true,
			Queued: time.Date(2026, 11, 20, 23, 0, 0, 0, time.UTC)}
		if !noticesEqual(f, want) {
			t.Errorf("failure notice = %+v\nwant %+v", f, want)
		}
		// A notice written before the JSON format had "queued" was queued
		// when it was created.
		if r.Status != "OK" || r.Thread != "" || r.First || !r.Queued.Equal(r.Created) || r.Created.IsZero() {
			t.Errorf("recovery notice = %+v", r)
		}
		h, err := tx.Health()
		if err != nil || h.LastRun.Tier != "minute" || h.Mail.SendOK || h.Mail.SendError != "451 try later" || !h.Mail.SelfCheckOK {
			t.Errorf("health = %+v, %v", h, err)
		}
		return nil
	}
	// A reader triggers the migration too (serve may start first).
	if err := s.View(check); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(s.Path + ".json-migrated"); err != nil || string(b) != oldJSON {
		t.Errorf("the JSON state was not kept aside: %v", err)
	}
	if err := s.Update(t.Context(), func(tx *state.Tx) error { return check(tx) }); err != nil {
		t.Fatal(err)
	}
	names := dirNames(t, filepath.Dir(s.Path))
	if fmt.Sprint(names) != "[checker.state checker.state.json-migrated checker.state.lock]" {
		t.Errorf("directory holds %v", names)
	}

	// A second JSON state (a backup restored, an earlier release run
	// again) is migrated too, and the first one's copy is kept.
	s.Now = func() time.Time { return t0 }
	if err := os.WriteFile(s.Path, []byte(oldJSON), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.Update(t.Context(), func(tx *state.Tx) error { return check(tx) }); err != nil {
		t.Fatal(err)
	}
	second := s.Path + ".json-migrated-20261121T120000.000000000Z"
	for _, p := range []string{s.Path + ".json-migrated", second} {
		if b, err := os.ReadFile(p); err != nil || string(b) != oldJSON {
			t.Errorf("%s: %v, want the JSON state kept", p, err)
		}
	}
}

// noticesEqual compares notices, times by instant.
func noticesEqual(a, b state.Notice) bool {
	if a.Job != b.Job || a.Kind != b.Kind || a.Subject != b.Subject || a.Body != b.Body || a.Status != b.Status ||
		a.Thread != b.Thread || a.First != b.First || !a.Created.Equal(b.Created) || !a.Queued.Equal(b.Queued) ||
		(a.Sending == nil) != (b.Sending == nil) || len(a.To) != len(b.To) {
		return false
	}
	if a.Sending != nil && (a.Sending.PID != b.Sending.PID || !a.Sending.Started.Equal(b.Sending.Started) || !a.Sending.Expires.Equal(b.Sending.Expires)) {
		return false
	}
	for i := range a.To {
		x, y := a.To[i], b.To[i]
		if x.To != y.To || x.Done != y.Done || x.Attempts != y.Attempts || !x.LastTry.Equal(y.LastTry) || x.LastError != y.LastError {
			return false
		}
	}
	return true
}

// TestMigrateJSONClaims: the claims of the JSON state (one per job, and
// one per notice being delivered) that have not expired are carried into
// the database, one claims record per invocation, so that the first run
// after the upgrade does not start a second copy of a job that an
// invocation of the earlier release is still running, nor send a notice it
// is sending. Expired and damaged claims hold nothing and are dropped.
func TestMigrateJSONClaims(t *testing.T) {
	sleeper := exec.CommandContext(t.Context(), "sleep", "600")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sleeper.Process.Kill()
		sleeper.Wait()
	})
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	alive, dead := sleeper.Process.Pid, gone.Process.Pid
	at := func(min int) string { return t0.Add(time.Duration(min) * time.Minute).Format(time.RFC3339) }
	claim := func(pid, started, expires int) string {
		return fmt.Sprintf(`{"pid":%d,"started":%q,"expires":%q}`, pid, at(started), at(expires))
	}
	doc := `{"version":1,"jobs":{
"command:backup":{"last_slot":"s","running":` + claim(alive, -3, 10) + `},
"tcp:db":{"last_slot":"s","running":` + claim(alive, -1, 5) + `},
"http:crashed":{"running":` + claim(dead, -2, 20) + `},
"http:expired":{"running":` + claim(alive, -90, -30) + `},
"http:no-pid":{"running":` + claim(0, -1, 5) + `},
"http:too-long":{"running":` + claim(alive, -1, 48*60) + `},
"http:idle":{}},
"outbox":[{"job":"tcp:db","kind":"failure","to":["a@x"],"created":` + strconv.Quote(at(-1)) + `,"sending":` + claim(alive, -1, 2) + `},
{"job":"http:web","kind":"failure","to":["a@x"],"created":` + strconv.Quote(at(-9)) + `,"sending":` + claim(alive, -9, -7) + `}]}`
	s := newStore(t)
	s.Now = func() time.Time { return t0 }
	if err := os.WriteFile(s.Path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.View(func(tx *state.Tx) error {
		all, err := tx.AllClaims()
		if err != nil {
			return err
		}
		slices.SortFunc(all, func(a, b state.Claims) int { return a.PID - b.PID })
		got := map[int]string{}
		for _, c := range all {
			got[c.PID] = fmt.Sprintf("%v %s %s", c.Jobs, c.Started.UTC().Format(time.RFC3339), c.Expires.UTC().Format(time.RFC3339))
		}
		want := map[int]string{
			// One invocation: its jobs, from its first claim to its last expiry.
			alive: fmt.Sprintf("[command:backup tcp:db] %s %s", at(-3), at(10)),
			// A run that died: its job counts as run in its slot, and it
			// is reported as a crashed run, until the claim expires.
			dead: fmt.Sprintf("[http:crashed] %s %s", at(-2), at(20)),
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("claims = %v\nwant     %v", got, want)
		}
		running, err := tx.Running(t0)
		if err != nil || fmt.Sprint(running) != "map[command:backup:true tcp:db:true]" {
			t.Errorf("Running = %v, %v", running, err)
		}
		h, err := tx.Health()
		if err != nil || len(h.Running) != 2 {
			t.Errorf("health running = %+v, %v", h.Running, err)
		}
		if c := h.Crashed(t0); !strings.Contains(c, strconv.Itoa(dead)) {
			t.Errorf("Crashed = %q, want the run that died (pid %d)", c, dead)
		}
		out, err := tx.Outbox()
		if err != nil || len(out) != 2 {
			t.Fatalf("outbox = %+v, %v", out, err)
		}
		for _, n := range out {
			switch n.Job {
			case "tcp:db":
				if n.Sending == nil || n.Sending.PID != alive || !n.Sending.Alive(t0) {
					t.Errorf("the claim of a notice being sent was dropped: %+v", n.Sending)
				}
			case "http:web":
				if n.Sending != nil {
					t.Errorf("an expired sending claim was kept: %+v", n.Sending)
				}
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

func TestConcurrentUpdatesGoroutines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "checker.state")
	const n = 20
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			s := &state.Store{Path: path}
			errs <- s.Update(context.Background(), increment)
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if got := counter(t, path); got != n {
		t.Errorf("counter = %d after %d increments: updates were lost", got, n)
	}
}

// TestConcurrentUpdatesProcesses: 100 processes (in waves of the machine's
// size) increment the same counter while readers read; none is lost.
func TestConcurrentUpdatesProcesses(t *testing.T) {
	path := filepath.Join(t.TempDir(), "checker.state")
	const procs, each = 100, 3
	cmds := make([]*exec.Cmd, procs)
	outs := make([]*bytes.Buffer, procs)
	for i := range cmds {
		cmds[i] = helper(t, "increment", path, each)
		outs[i] = new(bytes.Buffer)
		cmds[i].Stdout, cmds[i].Stderr = outs[i], outs[i]
		if err := cmds[i].Start(); err != nil {
			t.Fatal(err)
		}
	}
	stop := make(chan struct{})
	readerDone := make(chan int)
	go func() {
		reads := 0
		for {
			select {
			case <-stop:
				readerDone <- reads
				return
			default:
			}
			err := (&state.Store{Path: path, ReadWait: 30 * time.Second}).View(func(tx *state.Tx) error {
				_, _, err := tx.Job("counter")
				return err
			})
			if err != nil {
				t.Errorf("a reader failed: %v", err)
			}
			reads++
		}
	}()
	for i, c := range cmds {
		if err := c.Wait(); err != nil {
			t.Errorf("helper %d: %v\n%s", i, err, outs[i])
		}
	}
	close(stop)
	<-readerDone
	if got, want := counter(t, path), procs*each; got != want {
		t.Errorf("counter = %d, want %d: updates were lost", got, want)
	}
}

func TestLockWait(t *testing.T) {
	path := filepath.Join(t.TempDir(), "checker.state")
	held, release := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- (&state.Store{Path: path}).Update(context.Background(), func(tx *state.Tx) error {
			close(held)
			<-release
			return increment(tx)
		})
	}()
	<-held
	other := &state.Store{Path: path, LockWait: 200 * time.Millisecond}
	err := other.Update(t.Context(), func(*state.Tx) error {
		t.Error("fn ran while another Update held the lock")
		return nil
	})
	if !errors.Is(err, state.ErrLocked) {
		t.Errorf("Update = %v, want ErrLocked", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := (&state.Store{Path: path}).Update(ctx, increment); !errors.Is(err, context.Canceled) {
		t.Errorf("Update with a cancelled context = %v, want context.Canceled", err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("holder: %v", err)
	}
	if got := counter(t, path); got != 1 {
		t.Errorf("counter %d", got)
	}
}

// TestRootRefusesAnotherUsersState: root never writes (nor takes over) a
// state another user owns.
func TestRootRefusesAnotherUsersState(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	s := newStore(t)
	if err := s.Update(t.Context(), increment); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(s.Path, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(s.Path)
	err := s.Update(t.Context(), increment)
	var pe *state.PermissionError
	if !errors.As(err, &pe) || !pe.Foreign || !strings.Contains(err.Error(), "sudo -u") {
		t.Fatalf("Update = %v, want a foreign-owner PermissionError", err)
	}
	if after, _ := os.ReadFile(s.Path); !bytes.Equal(before, after) {
		t.Error("root changed another user's state")
	}
	// Nor may root create a state in another user's directory.
	dir := filepath.Join(t.TempDir(), "svc")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	err = (&state.Store{Path: filepath.Join(dir, "checker.state")}).Update(t.Context(), increment)
	if !errors.As(err, &pe) || !pe.Foreign || !strings.Contains(err.Error(), "state directory "+dir+" belongs to ") {
		t.Errorf("Update in another user's directory = %v", err)
	}
	if names := dirNames(t, dir); len(names) != 0 {
		t.Errorf("root left files in another user's directory: %v", names)
	}
}

// TestPermissionDeniedIsNotCorruption: a user who may not open the state
// gets a PermissionError naming file, owner and user; nothing moves.
func TestPermissionDeniedIsNotCorruption(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a helper as another user")
	}
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{filepath.Dir(dir), filepath.Dir(filepath.Dir(dir))} {
		os.Chmod(p, 0o755)
	}
	path := filepath.Join(dir, "checker.state")
	if err := (&state.Store{Path: path}).Update(t.Context(), increment); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(path)
	// The test binary lives in a private build directory; nobody needs a
	// copy it may run.
	bin := filepath.Join(t.TempDir(), "state.test")
	if b, err := os.ReadFile(os.Args[0]); err != nil || os.WriteFile(bin, b, 0o755) != nil {
		t.Fatalf("copy the test binary: %v", err)
	}
	os.Chmod(filepath.Dir(bin), 0o755)
	for _, mode := range []string{"increment", "view"} {
		cmd := helper(t, mode, path, 1)
		cmd.Path, cmd.Args[0] = bin, bin
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		out, err := cmd.CombinedOutput()
		if err == nil {
			t.Errorf("%s as nobody succeeded:\n%s", mode, out)
			continue
		}
		if !strings.Contains(string(out), "PERMISSION:") || !strings.Contains(string(out), path) || !strings.Contains(string(out), "root") {
			t.Errorf("%s as nobody: want a permission error naming the file and owner, got:\n%s", mode, out)
		}
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Error("the state changed")
	}
	if m, _ := filepath.Glob(path + ".corrupt-*"); len(m) != 0 {
		t.Errorf("an unreadable state was moved aside: %v", m)
	}
}

// TestFileSizeLimitKeepsOldState: a write that fails (EFBIG here, as a full
// disk would) leaves the previous state readable.
func TestFileSizeLimitKeepsOldState(t *testing.T) {
	s := newStore(t)
	if err := s.Update(t.Context(), increment); err != nil {
		t.Fatal(err)
	}
	out, err := helper(t, "fsize", s.Path, 1).CombinedOutput()
	if err != nil {
		t.Fatalf("helper: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "file too large") && !strings.Contains(string(out), "no space") {
		t.Errorf("the failed write did not say why:\n%s", out)
	}
	if got := counter(t, s.Path); got != 1 {
		t.Errorf("counter = %d after a failed write, want 1", got)
	}
}

// TestKillDuringWrites: writers killed with SIGKILL at random moments never
// leave a database that does not open, check clean and count monotonically.
func TestKillDuringWrites(t *testing.T) {
	kills := 200
	if testing.Short() {
		kills = 20
	}
	path := filepath.Join(t.TempDir(), "checker.state")
	rng := rand.New(rand.NewPCG(7, 7))
	last := 0
	for i := 0; i < kills; i++ {
		cmd := helper(t, "increment-big", path, 1000)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(2+rng.IntN(25)) * time.Millisecond)
		cmd.Process.Kill()
		cmd.Wait()
		if err := (&state.Store{Path: path}).Check(t.Context()); err != nil {
			t.Fatalf("after kill %d the database fails its check: %v", i, err)
		}
		got := counter(t, path)
		if got < last {
			t.Fatalf("after kill %d the counter went back from %d to %d", i, last, got)
		}
		last = got
	}
	if m, _ := filepath.Glob(path + ".corrupt-*"); len(m) != 0 {
		t.Errorf("kills made the database look corrupt: %v", m)
	}
	t.Logf("%d kills, %d committed transactions", kills, last)
}

// increment adds one to the "counter" job's Failures.
func increment(tx *state.Tx) error {
	j, _, err := tx.Job("counter")
	if err != nil {
		return err
	}
	j.Failures++
	return tx.PutJob("counter", &j)
}

func counter(t *testing.T, path string) int {
	t.Helper()
	var n int
	err := (&state.Store{Path: path}).View(func(tx *state.Tx) error {
		j, _, err := tx.Job("counter")
		n = j.Failures
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// helper returns a command that re-runs this test binary as a helper
// process (see TestHelperProcess) doing mode on the state at path.
func helper(t *testing.T, mode, path string, n int) *exec.Cmd {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), "STATE_TEST_HELPER="+mode, "STATE_TEST_PATH="+path, "STATE_TEST_N="+strconv.Itoa(n))
	return cmd
}

// TestHelperProcess is not a test: it is the body of the child processes
// that helper starts, and does nothing in a normal run.
func TestHelperProcess(t *testing.T) {
	mode := os.Getenv("STATE_TEST_HELPER")
	if mode == "" {
		return
	}
	s := &state.Store{Path: os.Getenv("STATE_TEST_PATH")}
	n, _ := strconv.Atoi(os.Getenv("STATE_TEST_N"))
	code := 0
	report := func(err error) {
		var pe *state.PermissionError
		if errors.As(err, &pe) {
			fmt.Fprintln(os.Stderr, "PERMISSION:", err)
		} else {
			fmt.Fprintln(os.Stderr, err)
		}
		code = 1
	}
	switch mode {
	case "increment":
		for range n {
			if err := s.Update(context.Background(), increment); err != nil {
				report(err)
			}
		}
	case "view":
		if err := s.View(func(*state.Tx) error { return nil }); err != nil {
			report(err)
		}
	case "increment-big":
		// Each transaction rewrites many records, so that kills land in
		// the middle of writes.
		for range n {
			err := s.Update(context.Background(), func(tx *state.Tx) error {
				for i := range 500 {
					j := state.Job{LastMessage: strings.Repeat("x", 100+i%50), LastRun: time.Now()}
					if err := tx.PutJob(fmt.Sprintf("job-%03d", i), &j); err != nil {
						return err
					}
				}
				return increment(tx)
			})
			if err != nil {
				report(err)
			}
		}
	case "fsize":
		lim := syscall.Rlimit{Cur: 1 << 20, Max: 1 << 20}
		if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &lim); err != nil {
			fmt.Fprintln(os.Stderr, "setrlimit:", err)
			os.Exit(2)
		}
		err := s.Update(context.Background(), func(tx *state.Tx) error {
			for i := range 400 {
				if err := tx.PutJob(fmt.Sprintf("big-%d", i), &state.Job{LastLongOutput: strings.Repeat("y", 60<<10)}); err != nil {
					return err
				}
			}
			return increment(tx)
		})
		if err == nil {
			fmt.Fprintln(os.Stderr, "Update succeeded beyond the file size limit")
			code = 1
		} else {
			fmt.Println(err)
		}
	default:
		fmt.Fprintln(os.Stderr, "unknown helper mode", mode)
		code = 2
	}
	os.Exit(code)
}

// TestSymlinkedStateStaysALink: with the state path a symbolic link, a
// corrupt file is moved aside where the link points, the fresh state is
// created there, and the link stays a link; a JSON state behind a link
// is migrated in place the same way.
func TestSymlinkedStateStaysALink(t *testing.T) {
	dir := t.TempDir()
	realDir := filepath.Join(dir, "real")
	if err := os.Mkdir(realDir, 0o700); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(realDir, "checker.state")
	link := filepath.Join(dir, "link.state")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	s := &state.Store{Path: link, Now: func() time.Time { return t0 }}
	if err := os.WriteFile(target, []byte("not a database"), 0o600); err != nil {
		t.Fatal(err)
	}
	var recovered string
	if err := s.Update(t.Context(), func(tx *state.Tx) error {
		recovered = tx.TakeRecovered()
		return increment(tx)
	}); err != nil {
		t.Fatal(err)
	}
	aside := target + ".corrupt-20261121T120000.000000000Z"
	if b, err := os.ReadFile(aside); err != nil || string(b) != "not a database" {
		t.Errorf("the corrupt file was not moved aside where the link points: %v", err)
	}
	if !strings.Contains(recovered, aside) {
		t.Errorf("recovered = %q, want it to name %s", recovered, aside)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("the state path is no longer a link: %v, %v", fi, err)
	}
	if counter(t, target) != 1 || counter(t, link) != 1 {
		t.Error("the fresh state is not where the link points")
	}

	if err := os.WriteFile(target, []byte(oldJSON), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.Update(t.Context(), increment); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("the state path is no longer a link after a migration: %v, %v", fi, err)
	}
	if b, err := os.ReadFile(target + ".json-migrated"); err != nil || string(b) != oldJSON {
		t.Errorf("the JSON state was not kept beside the file the link points to: %v", err)
	}
}

// TestOwnerSettings: a state written under one settings file is refused
// to another that still exists (OwnerError, nothing written), taken over
// when the first is gone, and the same file by another path is no other.
func TestOwnerSettings(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.cfg"), filepath.Join(dir, "b.cfg")
	for _, f := range []string{a, b} {
		if err := os.WriteFile(f, []byte("[general]\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(dir, "checker.state")
	if err := (&state.Store{Path: path, Owner: a}).Update(t.Context(), increment); err != nil {
		t.Fatal(err)
	}
	err := (&state.Store{Path: path, Owner: b}).Update(t.Context(), increment)
	var oe *state.OwnerError
	if !errors.As(err, &oe) || oe.Owner != a || oe.Settings != b || !strings.Contains(err.Error(), "its own [general] statefile") {
		t.Fatalf("Update under %s = %v, want an OwnerError naming %s", b, err, a)
	}
	if counter(t, path) != 1 {
		t.Error("the refused update wrote")
	}
	// a.cfg by another name (a symbolic link) is a.cfg.
	alias := filepath.Join(dir, "alias.cfg")
	if err := os.Symlink(a, alias); err != nil {
		t.Fatal(err)
	}
	if err := (&state.Store{Path: path, Owner: alias}).Update(t.Context(), increment); err != nil {
		t.Errorf("Update under a link to the owner: %v", err)
	}
	// The owner moved away: the state passes to whoever writes next.
	if err := os.Rename(alias, alias+".gone"); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(a, a+".old"); err != nil {
		t.Fatal(err)
	}
	if err := (&state.Store{Path: path, Owner: b}).Update(t.Context(), increment); err != nil {
		t.Errorf("Update after the owner was moved away: %v", err)
	}
	if counter(t, path) != 3 {
		t.Errorf("counter %d, want 3", counter(t, path))
	}
	// A store without an owner (serve, tools) neither checks nor records.
	if err := (&state.Store{Path: path}).Update(t.Context(), increment); err != nil {
		t.Error(err)
	}
}

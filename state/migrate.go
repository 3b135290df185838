package state

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The JSON state file of earlier releases (format version 1): read only to
// migrate it.

type jsonState struct {
	Version int                 `json:"version"`
	Jobs    map[string]*jsonJob `json:"jobs"`
	Outbox  []jsonNotice        `json:"outbox"`
	LastRun struct {
		Tier     string    `json:"tier"`
		Started  time.Time `json:"started"`
		Finished time.Time `json:"finished"`
		Error    string    `json:"error"`
	} `json:"last_run"`
	Mail struct {
		SelfCheckAt    time.Time `json:"selfcheck_at"`
		SelfCheckOK    bool      `json:"selfcheck_ok"`
		SelfCheckError string    `json:"selfcheck_error"`
		SendAt         time.Time `json:"send_at"`
		SendOK         bool      `json:"send_ok"`
		SendError      string    `json:"send_error"`
	} `json:"mail"`
}

type jsonJob struct {
	Failing      bool      `json:"failing"`
	Failures     int       `json:"failures"`
	FirstFailure time.Time `json:"first_failure"`
	LastNotified time.Time `json:"last_notified"`
	Since        time.Time `json:"since"`
	LastSlot     string    `json:"last_slot"`
	LastRun      time.Time `json:"last_run"`
	LastStatus   string    `json:"last_status"`
	LastMessage  string    `json:"last_message"`
	// Running is the claim of the invocation running the job.
	Running *jsonClaim `json:"running"`
}

type jsonClaim struct {
	PID     int       `json:"pid"`
	Started time.Time `json:"started"`
	Expires time.Time `json:"expires"`
}

type jsonNotice struct {
	Job       string     `json:"job"`
	Kind      string     `json:"kind"`
	Subject   string     `json:"subject"`
	Body      string     `json:"body"`
	To        []string   `json:"to"`
	Created   time.Time  `json:"created"`
	Status    string     `json:"status"`
	Thread    string     `json:"thread"`
	First     bool       `json:"first"`
	Queued    time.Time  `json:"queued"`
	Attempts  int        `json:"attempts"`
	LastError string     `json:"last_error"`
	Sending   *jsonClaim `json:"sending"`
}

// maxJSONState bounds the JSON state read into memory for migration.
const maxJSONState = 256 << 20

// decodeJSONState parses a JSON state file of format version 1.
func decodeJSONState(b []byte) (*jsonState, error) {
	var f jsonState
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("not a checker state (JSON): %w", err)
	}
	if f.Version != 1 {
		return nil, fmt.Errorf("JSON with format version %d, not a checker state of an earlier release", f.Version)
	}
	// The earlier release wrote every field; a document with a version
	// and none of them is somebody else's.
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(b, &keys); err != nil {
		return nil, fmt.Errorf("not a checker state (JSON): %w", err)
	}
	if keys["jobs"] == nil && keys["outbox"] == nil && keys["last_run"] == nil && keys["mail"] == nil {
		return nil, fmt.Errorf("JSON with a version but no jobs, outbox, last_run or mail: not a checker state of an earlier release")
	}
	for name, j := range f.Jobs {
		if j == nil || name == "" || len(name) > bolt.MaxKeySize {
			// Nothing, or a name no job can have (and no record key).
			delete(f.Jobs, name)
			continue
		}
		if j.Failures < 0 || j.Failures > math.MaxInt32 {
			return nil, fmt.Errorf("job %q has a failure count of %d", name, j.Failures)
		}
	}
	for _, n := range f.Outbox {
		if n.Attempts < 0 || n.Attempts > math.MaxInt32 {
			return nil, fmt.Errorf("notice %q (%s) has an attempt count of %d", n.Job, n.Kind, n.Attempts)
		}
	}
	return &f, nil
}

// readJSONState reads the JSON state at Path; one that is not a state of an
// earlier release is a CorruptError.
func (s *Store) readJSONState() (*jsonState, error) {
	fh, err := os.Open(s.Path)
	if err != nil {
		return nil, s.classify(err)
	}
	b, err := io.ReadAll(io.LimitReader(fh, maxJSONState+1))
	fh.Close()
	if err != nil {
		return nil, s.classify(err)
	}
	if len(b) > maxJSONState {
		return nil, &CorruptError{Path: s.Path, Err: fmt.Errorf("JSON larger than %d MiB", maxJSONState>>20)}
	}
	old, err := decodeJSONState(b)
	if err != nil {
		return nil, &CorruptError{Path: s.Path, Err: err}
	}
	return old, nil
}

// migrate imports the JSON state at Path into a new database, keeps the JSON
// as PATH.json-migrated (a hard link made before the database takes its
// place, so a crash at any point leaves one of the two in place) and puts
// the database at Path. The caller holds the lock.
func (s *Store) migrate() error {
	old, err := s.readJSONState()
	if err != nil {
		return err
	}
	path := s.realPath() // a symbolic link stays one
	tmp := fmt.Sprintf("%s.migrate-%d", path, os.Getpid())
	os.Remove(tmp)
	db, err := bolt.Open(tmp, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return s.classify(err)
	}
	err = s.update(db, func(tx *Tx) error { return importJSON(tx, old, s.now()) })
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("cannot migrate state file %s: %w", s.Path, err)
	}
	kept := path + ".json-migrated"
	if fi, err := os.Lstat(kept); err == nil {
		// A link left by a migration that stopped before the rename is
		// this very file; anything else there is an earlier migration's,
		// kept, and this one gets a name of its own.
		if cur, cerr := os.Stat(path); cerr == nil && os.SameFile(fi, cur) {
			os.Remove(kept)
		} else {
			kept = fmt.Sprintf("%s.json-migrated-%s", path, s.now().UTC().Format("20060102T150405.000000000Z"))
		}
	}
	if err := os.Link(path, kept); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("cannot keep the JSON state as %s: %w", kept, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("cannot migrate state file %s: %w", s.Path, err)
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// claim returns the claim as the database keeps it, or nil when it holds
// nothing at now: expired, or damaged (no process, longer than MaxClaim).
// A claim whose process is gone but which has not expired is kept: the
// runner counts its jobs as run in their slot and serve reports the crashed
// run until it expires, as the earlier release did.
func (c *jsonClaim) claim(now time.Time) *Claim {
	if c == nil || c.PID <= 0 || c.PID > math.MaxInt32 || !now.Before(c.Expires) || c.Expires.Sub(c.Started) > MaxClaim {
		return nil
	}
	return &Claim{PID: c.PID, Started: c.Started, Expires: c.Expires}
}

// importJSON writes the JSON state into the database. Every field of the
// JSON format has a home in the records; now decides which claims still
// hold.
func importJSON(tx *Tx, old *jsonState, now time.Time) error {
	// A failing job's outage thread is the one of its pending failure
	// notice, so that reminders and the recovery answer the mail sent
	// before the upgrade (the JSON job had no thread of its own).
	threads := map[string]string{}
	for _, on := range old.Outbox {
		if on.Kind == KindFailure && on.Thread != "" {
			threads[on.Job] = on.Thread
		}
	}
	names := make([]string, 0, len(old.Jobs))
	for name := range old.Jobs {
		names = append(names, name)
	}
	slices.Sort(names)
	// The JSON state kept a claim in each job; the database keeps one
	// record per invocation, with the jobs it runs.
	invocations := map[int]*Claims{}
	for _, name := range names {
		oj := old.Jobs[name]
		j := Job{Failing: oj.Failing, Failures: oj.Failures, FirstFailure: oj.FirstFailure, LastNotified: oj.LastNotified,
			Since: oj.Since, LastSlot: oj.LastSlot, LastRun: oj.LastRun, LastStatus: oj.LastStatus, LastMessage: oj.LastMessage}
		if oj.Failing {
			j.NotifiedStatus = oj.LastStatus
			j.Thread = threads[name]
		} else if !oj.LastRun.IsZero() {
			j.LastSuccess = oj.LastRun
		}
		if err := tx.PutJob(name, &j); err != nil {
			return err
		}
		if c := oj.Running.claim(now); c != nil {
			inv := invocations[c.PID]
			if inv == nil {
				inv = &Claims{Claim: *c}
				invocations[c.PID] = inv
			}
			if c.Started.Before(inv.Started) {
				inv.Started = c.Started
			}
			if c.Expires.After(inv.Expires) {
				inv.Expires = c.Expires
			}
			inv.Jobs = append(inv.Jobs, name)
		}
	}
	var running []Claim
	for _, pid := range slices.Sorted(maps.Keys(invocations)) {
		inv := invocations[pid]
		if inv.Expires.Sub(inv.Started) > MaxClaim {
			inv.Started = inv.Expires.Add(-MaxClaim) // jobs claimed far apart
		}
		if err := tx.PutClaims(inv); err != nil {
			return err
		}
		running = append(running, inv.Claim)
	}
	for _, on := range old.Outbox {
		if on.Job == "" || on.Kind == "" || len(on.Job)+1+len(on.Kind) > bolt.MaxKeySize {
			continue
		}
		n := Notice{Job: on.Job, Kind: on.Kind, Subject: on.Subject, Body: on.Body, Created: on.Created,
			Status: on.Status, Thread: on.Thread, First: on.First, Queued: on.Queued, Sending: on.Sending.claim(now)}
		if n.Queued.IsZero() {
			n.Queued = on.Created // written before the JSON format had it
		}
		for _, to := range on.To {
			n.To = append(n.To, Delivery{To: to, Attempts: on.Attempts, LastError: on.LastError})
		}
		if err := tx.PutNotice(&n); err != nil {
			return err
		}
	}
	h := Health{
		LastRun: Run{Tier: old.LastRun.Tier, Started: old.LastRun.Started, Finished: old.LastRun.Finished, Error: old.LastRun.Error},
		Mail: Mail{SelfCheckAt: old.Mail.SelfCheckAt, SelfCheckOK: old.Mail.SelfCheckOK, SelfCheckError: old.Mail.SelfCheckError,
			SendAt: old.Mail.SendAt, SendOK: old.Mail.SendOK, SendError: old.Mail.SendError},
		Running: running,
	}
	if err := tx.PutHealth(&h); err != nil {
		return err
	}
	msg := fmt.Sprintf("imported the JSON state of an earlier release (%d jobs, %d pending notices)", len(old.Jobs), len(old.Outbox))
	if len(running) > 0 {
		msg += fmt.Sprintf(", and the job claims of %d invocations that had not expired", len(running))
	}
	return tx.AddEvent(Event{Time: now, Kind: EventState, Message: msg})
}

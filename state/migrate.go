package state

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
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
}

type jsonNotice struct {
	Job       string    `json:"job"`
	Kind      string    `json:"kind"`
	Subject   string    `json:"subject"`
	Body      string    `json:"body"`
	To        []string  `json:"to"`
	Created   time.Time `json:"created"`
	Attempts  int       `json:"attempts"`
	LastError string    `json:"last_error"`
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
	for name, j := range f.Jobs {
		if j == nil {
			delete(f.Jobs, name)
			continue
		}
		if j.Failures < 0 {
			return nil, fmt.Errorf("job %q has a negative failure count", name)
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
	tmp := fmt.Sprintf("%s.migrate-%d", s.Path, os.Getpid())
	os.Remove(tmp)
	db, err := bolt.Open(tmp, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return s.classify(err)
	}
	err = s.update(db, func(tx *Tx) error { return importJSON(tx, old) })
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("cannot migrate state file %s: %w", s.Path, err)
	}
	kept := s.Path + ".json-migrated"
	os.Remove(kept)
	if err := os.Link(s.Path, kept); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("cannot keep the JSON state as %s: %w", kept, err)
	}
	if err := os.Rename(tmp, s.Path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("cannot migrate state file %s: %w", s.Path, err)
	}
	if d, err := os.Open(filepath.Dir(s.Path)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

func importJSON(tx *Tx, old *jsonState) error {
	for name, oj := range old.Jobs {
		j := Job{Failing: oj.Failing, Failures: oj.Failures, FirstFailure: oj.FirstFailure, LastNotified: oj.LastNotified,
			Since: oj.Since, LastSlot: oj.LastSlot, LastRun: oj.LastRun, LastStatus: oj.LastStatus, LastMessage: oj.LastMessage}
		if oj.Failing {
			j.NotifiedStatus = oj.LastStatus
		} else if !oj.LastRun.IsZero() {
			j.LastSuccess = oj.LastRun
		}
		if err := tx.PutJob(name, &j); err != nil {
			return err
		}
	}
	for _, on := range old.Outbox {
		if on.Job == "" || on.Kind == "" {
			continue
		}
		n := Notice{Job: on.Job, Kind: on.Kind, Subject: on.Subject, Body: on.Body, Created: on.Created, Queued: on.Created}
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
	}
	if err := tx.PutHealth(&h); err != nil {
		return err
	}
	return tx.AddEvent(Event{Time: time.Now(), Kind: EventState,
		Message: fmt.Sprintf("imported the JSON state of an earlier release (%d jobs, %d pending notices)", len(old.Jobs), len(old.Outbox))})
}

package server

import (
	"errors"
	"io/fs"
	"os"
	"syscall"
	"time"

	"checker/peer"
	"checker/state"
)

// FileID identifies one version of a file: a save replaces the file (a new
// inode) or at least changes its size or times. The zero FileID stands for
// a file that does not exist.
type FileID struct {
	Dev, Ino     uint64
	Size         int64
	MTime, CTime int64 // nanoseconds since the epoch
}

// FileIdentity returns the identity of the file at path: a stat, costing
// about a microsecond. A missing file has the zero FileID and no error.
func FileIdentity(path string) (FileID, error) {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return FileID{}, nil
	}
	if err != nil {
		return FileID{}, err
	}
	id := FileID{Size: fi.Size(), MTime: fi.ModTime().UnixNano()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		id.Dev, id.Ino = uint64(st.Dev), st.Ino
		id.CTime = st.Ctim.Sec*1e9 + st.Ctim.Nsec
	}
	return id, nil
}

// healthRecord is what serve keeps of the state between saves: the health
// without the crash check, and the cron runs that were in progress when the
// state was saved. Whether such a process has died since is a question of
// now, asked on every request.
type healthRecord struct {
	health  peer.Health
	running state.Health
}

// StateHealth is the health peers are told, read from the state's small
// health record through a Snapshot: a request costs a stat of the file and
// a signal-0 check of each cron run in progress (normally none or one),
// whatever the number of jobs. Build it with NewStateHealth.
type StateHealth struct {
	snap *Snapshot[FileID, healthRecord]
	now  func() time.Time
}

// NewStateHealth returns the health source for the state file of store.
// onError, if not nil, is told when the state cannot be read, once per
// version of the file. now nil means time.Now.
func NewStateHealth(store *state.Store, now func() time.Time, onError func(error)) *StateHealth {
	if now == nil {
		now = time.Now
	}
	path := store.Path
	// Answering peers, serve waits only a moment for a cron run's write;
	// meanwhile the last health read stands.
	reader := *store
	if reader.ReadWait == 0 {
		reader.ReadWait = 250 * time.Millisecond
	}
	snap := NewSnapshot(
		func() (FileID, error) { return FileIdentity(path) },
		func() (healthRecord, error) { return readHealthRecord(&reader) },
		onError,
	)
	snap.Transient = func(err error) bool { return errors.Is(err, state.ErrBusy) }
	return &StateHealth{now: now, snap: snap}
}

// Load reads the state now; call it once at start.
func (s *StateHealth) Load() error {
	_, err := s.snap.Load()
	return err
}

// Health returns the health as of now. NoMail is left false: it is a
// setting, not state.
func (s *StateHealth) Health() (peer.Health, error) {
	r, err := s.snap.Get()
	if err != nil {
		return peer.Health{}, err
	}
	return r.at(s.now()), nil
}

// ReadHealth reads the health from the state file of store without a
// cache, as of now.
func ReadHealth(store *state.Store, now time.Time) (peer.Health, error) {
	r, err := readHealthRecord(store)
	if err != nil {
		return peer.Health{}, err
	}
	return r.at(now), nil
}

// at is the health of r at now: a cron run whose process died before it
// finished, and whose entry has not expired, is a crashed run.
func (r healthRecord) at(now time.Time) peer.Health {
	h := r.health
	if c := r.running.Crashed(now); c != "" {
		h.LastRunError = c
	}
	return h
}

// readHealthRecord reads the state's health record: one small record,
// whatever the number of jobs.
func readHealthRecord(store *state.Store) (healthRecord, error) {
	var rec state.Health
	err := store.View(func(tx *state.Tx) error {
		var err error
		rec, err = tx.Health()
		return err
	})
	if err != nil {
		return healthRecord{}, err
	}
	m := rec.Mail
	h := peer.Health{
		MailChecked:   m.Checked(),
		MailOK:        m.Healthy(),
		MailError:     m.Problem(),
		MailCheckedAt: later(m.SelfCheckAt, m.SendAt),
		LastRunEnd:    rec.LastRun.Finished,
		LastRunError:  rec.LastRun.Error,
	}
	// The same order as Mail.Problem: the self-check first.
	switch {
	case !m.SelfCheckAt.IsZero() && !m.SelfCheckOK:
		h.MailFailed, h.MailFailedAt = peer.MailSelfCheck, m.SelfCheckAt
	case !m.SendAt.IsZero() && !m.SendOK:
		h.MailFailed, h.MailFailedAt = peer.MailSend, m.SendAt
	}
	return healthRecord{health: h, running: state.Health{Running: rec.Running, LastRun: rec.LastRun}}, nil
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

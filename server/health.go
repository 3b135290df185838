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
// without the crash check, and one job claim per cron process that was
// running jobs when the state was saved. Whether such a process has died
// since is a question of now, asked on every request.
type healthRecord struct {
	health peer.Health
	claims *state.File
}

// StateHealth is the health peers are told, read from the state file
// through a Snapshot: a request costs a stat of the file and a signal-0
// check of each cron process that holds job claims (normally none or one),
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
	return &StateHealth{
		now: now,
		snap: NewSnapshot(
			func() (FileID, error) { return FileIdentity(path) },
			func() (healthRecord, error) { return readHealthRecord(store) },
			onError,
		),
	}
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

// at is the health of r at now: a cron process that died while holding
// claims that have not expired is a crashed run.
func (r healthRecord) at(now time.Time) peer.Health {
	h := r.health
	if c := r.claims.Crashed(now); c != "" {
		h.LastRunError = c
	}
	return h
}

// readHealthRecord reads the whole state and keeps the little the verdict
// needs.
func readHealthRecord(store *state.Store) (healthRecord, error) {
	f, err := store.Read()
	if err != nil {
		return healthRecord{}, err
	}
	m := f.Mail
	h := peer.Health{
		MailChecked:   m.Checked(),
		MailOK:        m.Healthy(),
		MailError:     m.Problem(),
		MailCheckedAt: later(m.SelfCheckAt, m.SendAt),
		LastRunEnd:    f.LastRun.Finished,
		LastRunError:  f.LastRun.Error,
	}
	// The same order as Mail.Problem: the self-check first.
	switch {
	case !m.SelfCheckAt.IsZero() && !m.SelfCheckOK:
		h.MailFailed, h.MailFailedAt = peer.MailSelfCheck, m.SelfCheckAt
	case !m.SendAt.IsZero() && !m.SendOK:
		h.MailFailed, h.MailFailedAt = peer.MailSend, m.SendAt
	}
	return healthRecord{health: h, claims: claimsByProcess(f)}, nil
}

// claimsByProcess keeps, of all job claims, the one of each process that
// expires last: if that process is gone, that claim alone makes the run a
// crash for as long as any of its claims would. A run of 10,000 jobs so
// costs one check per request, not 10,000.
func claimsByProcess(f *state.File) *state.File {
	out := state.New()
	byPID := map[int]string{}
	for name, j := range f.Jobs {
		c := j.Running
		if c == nil || c.PID <= 0 {
			continue
		}
		if prev, ok := byPID[c.PID]; ok && !c.Expires.After(out.Jobs[prev].Running.Expires) {
			continue
		} else if ok {
			delete(out.Jobs, prev)
		}
		byPID[c.PID] = name
		claim := *c
		out.Job(name).Running = &claim
	}
	return out
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

package state

// Snapshot is the whole state read at once: every job, the health record,
// the outbox and the operator's records. Commands read what they need
// through View; a snapshot is for tools and tests that want it all.
type Snapshot struct {
	Jobs       map[string]*Job
	LastRun    Run
	Mail       Mail
	Running    []Claim
	Outbox     []Notice
	Silences   []Silence
	Services   []Service
	Recipients []Recipient
	Claims     []Claims
}

// Snapshot reads the whole state. Records that cannot be decoded are left
// out; the error of the first is returned with the rest.
func (s *Store) Snapshot() (*Snapshot, error) {
	snap := &Snapshot{Jobs: map[string]*Job{}}
	var first error
	keep := func(err error) {
		if err != nil && first == nil {
			first = err
		}
	}
	err := s.View(func(tx *Tx) error {
		keep(tx.ForEachJob(func(name string, j Job, err error) error {
			if err != nil {
				keep(err)
				return nil
			}
			snap.Jobs[name] = &j
			return nil
		}))
		h, err := tx.Health()
		keep(err)
		snap.LastRun, snap.Mail, snap.Running = h.LastRun, h.Mail, h.Running
		snap.Outbox, err = tx.Outbox()
		keep(err)
		snap.Silences, err = tx.Silences()
		keep(err)
		snap.Services, err = tx.Services()
		keep(err)
		snap.Recipients, err = tx.Recipients()
		keep(err)
		snap.Claims, err = tx.AllClaims()
		keep(err)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return snap, first
}

package state

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Tx is one transaction on the state: read-only in View, read-write in
// Update. Reads of a state that does not exist yet find nothing.
type Tx struct {
	store    *Store
	btx      *bolt.Tx // nil: no database yet
	db       *bolt.DB
	writable bool
}

var errReadOnly = errors.New("state: write in a read-only transaction")

func (tx *Tx) bucket(name []byte) *bolt.Bucket {
	if tx.btx == nil {
		return nil
	}
	return tx.btx.Bucket(name)
}

func (tx *Tx) put(name, key, val []byte) error {
	if !tx.writable {
		return errReadOnly
	}
	if err := tx.btx.Bucket(name).Put(key, val); err != nil {
		return fmt.Errorf("state: %s: %w", name, err)
	}
	return nil
}

func (tx *Tx) del(name, key []byte) error {
	if !tx.writable {
		return errReadOnly
	}
	return tx.btx.Bucket(name).Delete(key)
}

// Lazy commits this transaction without waiting for the disk: used for
// writes whose loss in a power cut costs nothing (a run with nothing due
// noting that it ran). Claims and results are always synced.
func (tx *Tx) Lazy() {
	if tx.db != nil {
		tx.db.NoSync = true
	}
}

// TakeRecovered returns, once, why the state was replaced by a fresh one
// (a corrupt file moved aside), or "".
func (tx *Tx) TakeRecovered() string {
	meta := tx.bucket(bMeta)
	if meta == nil {
		return ""
	}
	msg := string(meta.Get(keyRecovered))
	if msg != "" && tx.writable {
		if err := meta.Delete(keyRecovered); err != nil {
			return msg
		}
	}
	return msg
}

// Job returns the job's record; found is false when there is none. A record
// that cannot be decoded is an error naming the job: the caller may start
// the job afresh by putting a new record over it.
func (tx *Tx) Job(name string) (j Job, found bool, err error) {
	b := tx.bucket(bJobs)
	if b == nil {
		return Job{}, false, nil
	}
	v := b.Get([]byte(name))
	if v == nil {
		return Job{}, false, nil
	}
	j, err = DecodeJob(v)
	if err != nil {
		return Job{}, false, fmt.Errorf("state of job %s: %w", name, err)
	}
	return j, true, nil
}

// LastSlots returns the LastSlot of each named job ("" when it has no
// record), reading the records in one pass: names must be sorted. A record
// that cannot be read gives "" and an error naming it, the others still
// come back.
func (tx *Tx) LastSlots(names []string) ([]string, error) {
	out := make([]string, len(names))
	err := tx.walkJobs(names, func(i int, v []byte) error {
		slot, err := peekLastSlot(v)
		out[i] = slot
		return err
	})
	return out, err
}

// Jobs returns the records of the named jobs (zero where there is none),
// reading them in one pass: names must be sorted. A record that cannot be
// read gives a zero Job and an error naming it; the others still come back.
func (tx *Tx) Jobs(names []string) ([]Job, error) {
	out := make([]Job, len(names))
	err := tx.walkJobs(names, func(i int, v []byte) error {
		j, err := DecodeJob(v)
		out[i] = j
		return err
	})
	return out, err
}

// walkJobs calls fn with the record of each of the sorted names that has
// one, walking the bucket once instead of seeking each name from the root.
func (tx *Tx) walkJobs(names []string, fn func(i int, v []byte) error) error {
	b := tx.bucket(bJobs)
	if b == nil || len(names) == 0 {
		return nil
	}
	var bad []error
	c := b.Cursor()
	k, v := c.Seek([]byte(names[0]))
	for i, name := range names {
		// Walk forward to name; a long gap is crossed with a seek.
		for steps := 0; k != nil && string(k) < name; steps++ {
			if steps == 8 {
				k, v = c.Seek([]byte(name))
				break
			}
			k, v = c.Next()
		}
		if k == nil || string(k) != name {
			continue
		}
		if err := fn(i, v); err != nil {
			bad = append(bad, fmt.Errorf("state of job %s: %w", name, err))
		}
	}
	return errors.Join(bad...)
}

// PutJob saves the job's record.
func (tx *Tx) PutJob(name string, j *Job) error {
	return tx.put(bJobs, []byte(name), encodeJob(j))
}

// DeleteJob removes the job's record.
func (tx *Tx) DeleteJob(name string) error { return tx.del(bJobs, []byte(name)) }

// ForEachJob calls fn for every job record in name order. Records that
// cannot be decoded are passed with their error.
func (tx *Tx) ForEachJob(fn func(name string, j Job, err error) error) error {
	b := tx.bucket(bJobs)
	if b == nil {
		return nil
	}
	return b.ForEach(func(k, v []byte) error {
		j, err := DecodeJob(v)
		return fn(string(k), j, err)
	})
}

// Health returns the health record (zero when there is none).
func (tx *Tx) Health() (Health, error) {
	meta := tx.bucket(bMeta)
	if meta == nil {
		return Health{}, nil
	}
	v := meta.Get(keyHealth)
	if v == nil {
		return Health{}, nil
	}
	return DecodeHealth(v)
}

// PutHealth saves the health record.
func (tx *Tx) PutHealth(h *Health) error { return tx.put(bMeta, keyHealth, encodeHealth(h)) }

// Outbox returns the pending notices, oldest first.
func (tx *Tx) Outbox() ([]Notice, error) {
	b := tx.bucket(bOutbox)
	if b == nil {
		return nil, nil
	}
	var out []Notice
	var bad []error
	err := b.ForEach(func(k, v []byte) error {
		n, err := DecodeNotice(v)
		if err != nil {
			bad = append(bad, fmt.Errorf("%q: %w", k, err))
			return nil
		}
		out = append(out, n)
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Created.Before(out[j].Created) })
	if len(bad) > 0 {
		return out, fmt.Errorf("outbox: %d unreadable notice(s): %w", len(bad), errors.Join(bad...))
	}
	return out, nil
}

// OutboxLen counts the pending notices without decoding them.
func (tx *Tx) OutboxLen() int {
	return countKeys(tx.bucket(bOutbox))
}

// countKeys counts a bucket's keys, the transaction's own writes included
// (bucket statistics see only what was committed).
func countKeys(b *bolt.Bucket) int {
	if b == nil {
		return 0
	}
	n := 0
	c := b.Cursor()
	for k, _ := c.First(); k != nil; k, _ = c.Next() {
		n++
	}
	return n
}

// Notice returns the pending notice of job and kind, if any.
func (tx *Tx) Notice(job, kind string) (Notice, bool, error) {
	b := tx.bucket(bOutbox)
	if b == nil {
		return Notice{}, false, nil
	}
	k := Notice{Job: job, Kind: kind}
	v := b.Get([]byte(k.Key()))
	if v == nil {
		return Notice{}, false, nil
	}
	n, err := DecodeNotice(v)
	if err != nil {
		return Notice{}, false, err
	}
	return n, true, nil
}

// PutNotice saves n in the outbox under its job and kind, replacing what
// was there.
func (tx *Tx) PutNotice(n *Notice) error {
	return tx.put(bOutbox, []byte(n.Key()), encodeNotice(n))
}

// DeleteNotice removes the pending notice of job and kind.
func (tx *Tx) DeleteNotice(job, kind string) error {
	k := Notice{Job: job, Kind: kind}
	return tx.del(bOutbox, []byte(k.Key()))
}

// eventKey is the time (big-endian nanoseconds, so keys sort by time) and a
// sequence number that keeps events of the same nanosecond apart.
func eventKey(t time.Time, seq uint64) []byte {
	k := make([]byte, 16)
	ns := int64(0)
	if t.After(time.Unix(0, 0)) {
		ns = t.UnixNano()
	}
	binary.BigEndian.PutUint64(k, uint64(ns))
	binary.BigEndian.PutUint64(k[8:], seq)
	return k
}

// AddEvent appends ev to the history.
func (tx *Tx) AddEvent(ev Event) error {
	if !tx.writable {
		return errReadOnly
	}
	b := tx.btx.Bucket(bEvents)
	seq, err := b.NextSequence()
	if err != nil {
		return err
	}
	b.FillPercent = 0.95 // keys only ever grow: pack the pages
	k := eventKey(ev.Time, seq)
	if err := b.Put(k, encodeEvent(&ev)); err != nil {
		return err
	}
	if ev.Job == "" {
		return nil
	}
	idx := tx.btx.Bucket(bEventIdx)
	return idx.Put(append(append([]byte(ev.Job), 0), k...), nil)
}

// Events calls fn for every event at or after since, oldest first. With
// jobs given, only the events of those jobs (exact names) are passed.
func (tx *Tx) Events(since time.Time, jobs []string, fn func(Event) error) error {
	b := tx.bucket(bEvents)
	if b == nil {
		return nil
	}
	start := eventKey(since, 0)
	if len(jobs) == 0 {
		c := b.Cursor()
		for k, v := c.Seek(start); k != nil; k, v = c.Next() {
			ev, err := DecodeEvent(v)
			if err != nil {
				continue // an unreadable entry of the history is skipped
			}
			if err := fn(ev); err != nil {
				return err
			}
		}
		return nil
	}
	// Gather the keys of each job from the index, then visit them in time
	// order across jobs.
	var keys [][]byte
	idx := tx.btx.Bucket(bEventIdx)
	for _, job := range jobs {
		prefix := append([]byte(job), 0)
		c := idx.Cursor()
		for k, _ := c.Seek(append(prefix, start...)); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			keys = append(keys, k[len(prefix):])
		}
	}
	sort.Slice(keys, func(i, j int) bool { return bytes.Compare(keys[i], keys[j]) < 0 })
	for _, k := range keys {
		v := b.Get(k)
		if v == nil {
			continue
		}
		ev, err := DecodeEvent(v)
		if err != nil {
			continue
		}
		if err := fn(ev); err != nil {
			return err
		}
	}
	return nil
}

// PruneEvents drops the history older than before; it returns how many
// events it dropped.
func (tx *Tx) PruneEvents(before time.Time) (int, error) {
	if !tx.writable {
		return 0, errReadOnly
	}
	b := tx.btx.Bucket(bEvents)
	idx := tx.btx.Bucket(bEventIdx)
	end := eventKey(before, 0)
	c := b.Cursor()
	n := 0
	for k, v := c.First(); k != nil && bytes.Compare(k, end) < 0; k, v = c.First() {
		if ev, err := DecodeEvent(v); err == nil && ev.Job != "" {
			if err := idx.Delete(append(append([]byte(ev.Job), 0), k...)); err != nil {
				return n, err
			}
		}
		if err := c.Delete(); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// Silences returns every silence, expired ones included.
func (tx *Tx) Silences() ([]Silence, error) {
	b := tx.bucket(bSilences)
	if b == nil {
		return nil, nil
	}
	var out []Silence
	err := b.ForEach(func(k, v []byte) error {
		s, err := DecodeSilence(v)
		if err != nil {
			return fmt.Errorf("silence %q: %w", k, err)
		}
		out = append(out, s)
		return nil
	})
	return out, err
}

// PutSilence saves a silence under its pattern, replacing one with the
// same pattern.
func (tx *Tx) PutSilence(s *Silence) error {
	return tx.put(bSilences, []byte(s.Pattern), encodeSilence(s))
}

// DeleteSilence removes the silence of pattern.
func (tx *Tx) DeleteSilence(pattern string) error { return tx.del(bSilences, []byte(pattern)) }

// Services returns the remembered heartbeat services, by name.
func (tx *Tx) Services() ([]Service, error) {
	b := tx.bucket(bServices)
	if b == nil {
		return nil, nil
	}
	out := make([]Service, 0, countKeys(b))
	err := b.ForEach(func(k, v []byte) error {
		s, err := DecodeService(v)
		if err != nil {
			s = Service{Name: string(k)} // keep watching it all the same
		}
		out = append(out, s)
		return nil
	})
	return out, err
}

// PutService remembers a heartbeat service.
func (tx *Tx) PutService(s *Service) error {
	return tx.put(bServices, []byte(s.Name), encodeService(s))
}

// DeleteService forgets a heartbeat service.
func (tx *Tx) DeleteService(name string) error { return tx.del(bServices, []byte(name)) }

// Recipient returns the delivery health of a destination.
func (tx *Tx) Recipient(to string) (Recipient, bool, error) {
	b := tx.bucket(bRecipients)
	if b == nil {
		return Recipient{}, false, nil
	}
	v := b.Get([]byte(to))
	if v == nil {
		return Recipient{}, false, nil
	}
	r, err := DecodeRecipient(v)
	if err != nil {
		return Recipient{}, false, err
	}
	return r, true, nil
}

// Recipients returns the delivery health of every destination known.
func (tx *Tx) Recipients() ([]Recipient, error) {
	b := tx.bucket(bRecipients)
	if b == nil {
		return nil, nil
	}
	var out []Recipient
	err := b.ForEach(func(k, v []byte) error {
		r, err := DecodeRecipient(v)
		if err == nil {
			out = append(out, r)
		}
		return nil
	})
	return out, err
}

// PutRecipient saves a destination's delivery health.
func (tx *Tx) PutRecipient(r *Recipient) error {
	return tx.put(bRecipients, []byte(r.To), encodeRecipient(r))
}

// DeleteRecipient drops a destination's record.
func (tx *Tx) DeleteRecipient(to string) error { return tx.del(bRecipients, []byte(to)) }

// AllClaims returns the claims of every invocation that left them.
func (tx *Tx) AllClaims() ([]Claims, error) {
	b := tx.bucket(bClaims)
	if b == nil {
		return nil, nil
	}
	var out []Claims
	err := b.ForEach(func(k, v []byte) error {
		c, err := DecodeClaims(v)
		if err != nil {
			return fmt.Errorf("claims %q: %w", k, err)
		}
		out = append(out, c)
		return nil
	})
	return out, err
}

// PutClaims saves an invocation's claims, under its pid.
func (tx *Tx) PutClaims(c *Claims) error {
	return tx.put(bClaims, []byte(strconv.Itoa(c.PID)), encodeClaims(c))
}

// DeleteClaims drops the claims of the invocation with pid.
func (tx *Tx) DeleteClaims(pid int) error { return tx.del(bClaims, []byte(strconv.Itoa(pid))) }

// Running reports which jobs an invocation that is still alive at now is
// running.
func (tx *Tx) Running(now time.Time) (map[string]bool, error) {
	all, err := tx.AllClaims()
	out := map[string]bool{}
	for _, c := range all {
		if c.Alive(now) {
			for _, j := range c.Jobs {
				out[j] = true
			}
		}
	}
	return out, err
}

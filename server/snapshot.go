package server

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// ErrNotLoaded is returned by Snapshot.Get when nothing has been read yet
// and the first read did not finish within a moment.
var ErrNotLoaded = errors.New("still reading the state for the first time")

// firstLoadWait is how long Get waits for the very first read. Later reads
// never hold a request up: the last value answers meanwhile.
const firstLoadWait = 500 * time.Millisecond

// Snapshot holds the last value read from a source that changes rarely but
// is costly to read, such as the state file, so that answering from it
// costs the same however large the source is. Each Get asks the cheap
// identity function whether the source changed (for a file: device, inode,
// size, modification time); only then is the source read again, by the
// one Get that noticed first, while every other Get goes on answering from
// the last value instead of queueing behind the read. A read's error is kept
// like a value, so a corrupt source is not decoded again on every request.
//
// K is the identity type and must be comparable; V is what read returns.
// Build it with NewSnapshot.
type Snapshot[K comparable, V any] struct {
	// Transient, if set before use, tells a read error that will pass by
	// itself (the source is busy): the last value is kept for it rather
	// than the error.
	Transient func(error) bool

	identity func() (K, error)
	read     func() (V, error)
	onError  func(error)

	cur        atomic.Pointer[entry[K, V]]
	refreshing atomic.Bool
	loaded     chan struct{} // closed when cur is first set
	loadedOnce sync.Once
}

// entry is one read of the source: its identity before the read, and what
// the read gave.
type entry[K comparable, V any] struct {
	id  K
	v   V
	err error
}

// NewSnapshot returns a Snapshot reading with read and recognising changes
// with identity. onError, if not nil, is told each time a read fails (once
// per identity, not per request).
func NewSnapshot[K comparable, V any](identity func() (K, error), read func() (V, error), onError func(error)) *Snapshot[K, V] {
	return &Snapshot[K, V]{identity: identity, read: read, onError: onError, loaded: make(chan struct{})}
}

// Load reads the source now, in the caller's goroutine, and keeps the
// result. Call it once at start so the first requests do not wait.
func (s *Snapshot[K, V]) Load() (V, error) {
	e := s.readEntry()
	s.store(e)
	return e.v, e.err
}

// Get returns the value for the source as it is now. When the source's
// identity has not changed since the last read, that costs one identity
// call. When it has, the first Get to notice reads the source itself and
// returns the new value, while every Get meanwhile returns the last value
// instead of waiting. Only before anything was ever read does a Get wait
// for the read in progress, and for a moment at most. An error of the
// identity function is returned as it is: a source that cannot even be
// looked at is not to be answered for from memory.
func (s *Snapshot[K, V]) Get() (V, error) {
	var zero V
	id, err := s.identity()
	if err != nil {
		return zero, err
	}
	e := s.cur.Load()
	if e != nil && e.id == id {
		return e.v, e.err
	}
	if s.refreshing.CompareAndSwap(false, true) {
		n := s.readEntry()
		if n.err != nil && e != nil && s.Transient != nil && s.Transient(n.err) {
			// Busy for a moment (a writer holds the source): the last
			// value stands, and the next Get tries again.
			s.refreshing.Store(false)
			return e.v, e.err
		}
		s.store(n)
		s.refreshing.Store(false)
		return n.v, n.err
	}
	if e != nil {
		return e.v, e.err
	}
	t := time.NewTimer(firstLoadWait)
	defer t.Stop()
	select {
	case <-s.loaded:
		e = s.cur.Load()
		return e.v, e.err
	case <-t.C:
		return zero, ErrNotLoaded
	}
}

// readEntry takes the identity, then reads. Should the source change in
// between, the entry carries the older identity and the next Get reads
// again: a change is never missed, at worst read twice.
func (s *Snapshot[K, V]) readEntry() (e *entry[K, V]) {
	e = &entry[K, V]{}
	defer func() {
		// A bug in read must not take the server down with it; it is
		// reported like any unreadable source.
		if p := recover(); p != nil {
			e.err = fmt.Errorf("reading failed: %v", p)
			s.report(e.err)
		}
	}()
	e.id, e.err = s.identity()
	if e.err != nil {
		s.report(e.err)
		return e
	}
	e.v, e.err = s.read()
	if e.err != nil {
		s.report(e.err)
	}
	return e
}

func (s *Snapshot[K, V]) report(err error) {
	if s.onError != nil {
		s.onError(err)
	}
}

func (s *Snapshot[K, V]) store(e *entry[K, V]) {
	s.cur.Store(e)
	s.loadedOnce.Do(func() { close(s.loaded) })
}

package server

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// source is a fake source: an identity and a value the test sets, and a
// read that can be held.
type source struct {
	mu    sync.Mutex
	id    int
	idErr error
	val   string
	err   error

	reads atomic.Int32
	hold  chan struct{} // when not nil, a read waits for it
}

func (s *source) identity() (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.id, s.idErr
}

func (s *source) read() (string, error) {
	s.reads.Add(1)
	s.mu.Lock()
	hold := s.hold
	s.mu.Unlock()
	if hold != nil {
		<-hold
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.val, s.err
}

func (s *source) set(id int, val string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.id, s.val, s.err = id, val, err
}

// eventually polls cond until it holds, failing after a generous limit.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after 10s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestSnapshotReadsOncePerIdentity(t *testing.T) {
	src := &source{id: 1, val: "one"}
	var reported []error
	snap := NewSnapshot(src.identity, src.read, func(err error) { reported = append(reported, err) })
	if v, err := snap.Load(); v != "one" || err != nil {
		t.Fatalf("Load = %q, %v", v, err)
	}
	for range 1000 {
		if v, err := snap.Get(); v != "one" || err != nil {
			t.Fatalf("Get = %q, %v", v, err)
		}
	}
	if n := src.reads.Load(); n != 1 {
		t.Errorf("%d reads for one identity, want 1", n)
	}

	// A new identity: the read happens in the background; the value
	// follows.
	src.set(2, "two", nil)
	eventually(t, "the new value", func() bool { v, _ := snap.Get(); return v == "two" })

	// An error is kept like a value: reported once, not read per request.
	src.set(3, "", errors.New("corrupt"))
	eventually(t, "the error", func() bool { _, err := snap.Get(); return err != nil })
	reads := src.reads.Load()
	for range 100 {
		if _, err := snap.Get(); err == nil || err.Error() != "corrupt" {
			t.Fatalf("Get = %v, want the kept error", err)
		}
	}
	if n := src.reads.Load(); n != reads {
		t.Errorf("%d more reads of an unchanged corrupt source", n-reads)
	}
	if len(reported) != 1 {
		t.Errorf("reported %v, want the error once", reported)
	}
}

// TestSnapshotNeverQueues: the Get that notices a change reads the source
// and returns the new value; while it reads, the others answer from the
// last value instead of waiting, and start no read of their own.
func TestSnapshotNeverQueues(t *testing.T) {
	src := &source{id: 1, val: "old"}
	snap := NewSnapshot(src.identity, src.read, nil)
	snap.Load()
	hold := make(chan struct{})
	src.mu.Lock()
	src.hold = hold
	src.mu.Unlock()
	src.set(2, "new", nil)

	first := make(chan string, 1)
	go func() { v, _ := snap.Get(); first <- v }()
	eventually(t, "the read to start", func() bool { return src.reads.Load() == 2 })

	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if v, err := snap.Get(); v != "old" || err != nil {
				t.Errorf("Get during a read = %q, %v; want the last value", v, err)
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	within(t, "Gets during a held read", done)
	if n := src.reads.Load(); n != 2 {
		t.Errorf("%d reads, want one load and one refresh", n)
	}
	close(hold)
	if v := <-first; v != "new" {
		t.Errorf("the Get that read returned %q, want new", v)
	}
	if v, _ := snap.Get(); v != "new" {
		t.Errorf("after the read Get = %q, want new", v)
	}
}

func TestSnapshotFirstLoad(t *testing.T) {
	// Without Load, the first Get reads.
	src := &source{id: 1, val: "v"}
	if v, err := NewSnapshot(src.identity, src.read, nil).Get(); v != "v" || err != nil {
		t.Errorf("first Get = %q, %v; want the value read", v, err)
	}
	// While a first read hangs, the others get ErrNotLoaded, not a hang.
	hung := &source{id: 1, val: "v", hold: make(chan struct{})}
	snap := NewSnapshot(hung.identity, hung.read, nil)
	reader := make(chan struct{})
	go func() { defer close(reader); snap.Get() }()
	eventually(t, "the first read to start", func() bool { return hung.reads.Load() == 1 })
	if _, err := snap.Get(); !errors.Is(err, ErrNotLoaded) {
		t.Errorf("Get while the first read hangs = %v, want ErrNotLoaded", err)
	}
	close(hung.hold)
	within(t, "the first read", reader)
}

func TestSnapshotIdentityError(t *testing.T) {
	src := &source{id: 1, val: "v"}
	snap := NewSnapshot(src.identity, src.read, nil)
	snap.Load()
	src.mu.Lock()
	src.idErr = errors.New("permission denied")
	src.mu.Unlock()
	if _, err := snap.Get(); err == nil {
		t.Error("Get answered from memory for a source that cannot be looked at")
	}
}

func TestSnapshotReadPanics(t *testing.T) {
	var reported error
	snap := NewSnapshot(func() (int, error) { return 1, nil }, func() (string, error) { panic("bug") },
		func(err error) { reported = err })
	if _, err := snap.Load(); err == nil || reported == nil {
		t.Errorf("Load of a panicking read = %v (reported %v), want an error", err, reported)
	}
}

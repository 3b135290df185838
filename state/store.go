package state

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// ErrLocked is returned by Update when another invocation held the lock
// for longer than the store's LockWait.
var ErrLocked = errors.New("state file is locked by another checker")

// MaxSize bounds the state file read into memory.
const MaxSize = 256 << 20

// Store is the state file at Path. The zero LockWait means 50 seconds: a
// little less than the minute between cron invocations.
type Store struct {
	Path     string
	LockWait time.Duration
	// Now stamps the names of files moved aside; nil means time.Now.
	Now func() time.Time
}

func (s *Store) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// Read returns the state as last saved, without taking the lock: saves are
// atomic, so a reader sees either the old or the new file. A missing file
// is an empty state. A corrupt one is an error (only Update moves it aside).
func (s *Store) Read() (*File, error) { return s.read() }

func (s *Store) read() (*File, error) {
	fh, err := os.Open(s.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return New(), nil
	}
	if err != nil {
		return nil, &CorruptError{Path: s.Path, Err: fmt.Errorf("unreadable: %w", err)}
	}
	defer fh.Close()
	var buf bytes.Buffer
	if fi, err := fh.Stat(); err == nil && fi.Size() > 0 && fi.Size() <= MaxSize {
		buf.Grow(int(fi.Size()) + bytes.MinRead) // one allocation, not a doubling series
	}
	if _, err := buf.ReadFrom(io.LimitReader(fh, MaxSize+1)); err != nil {
		return nil, &CorruptError{Path: s.Path, Err: fmt.Errorf("unreadable: %w", err)}
	}
	if buf.Len() > MaxSize {
		return nil, &CorruptError{Path: s.Path, Err: fmt.Errorf("larger than %d MiB", MaxSize>>20)}
	}
	f, err := Decode(buf.Bytes())
	if err != nil {
		return nil, &CorruptError{Path: s.Path, Err: err}
	}
	return f, nil
}

// CorruptError says the state file could not be decoded.
type CorruptError struct {
	Path string
	Err  error
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("state file %s is corrupt: %v", e.Path, e.Err)
}
func (e *CorruptError) Unwrap() error { return e.Err }

// Decode parses a state file's bytes and checks that they make sense.
func Decode(b []byte) (*File, error) {
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, errors.New("file is empty")
	}
	// Decode into a zero File, not New(): a document without a version
	// (or the bare JSON null) must fail the version check below.
	f := &File{}
	// Unmarshal rejects trailing data after the document by itself.
	if err := json.Unmarshal(b, f); err != nil {
		return nil, fmt.Errorf("not valid state JSON: %w", err)
	}
	if f.Version < 1 || f.Version > Version {
		return nil, fmt.Errorf("unknown format version %d (this checker writes %d)", f.Version, Version)
	}
	if f.Jobs == nil {
		f.Jobs = map[string]*Job{}
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
	return f, nil
}

// Update locks the state file, loads it, calls fn, and saves what fn left
// if fn returns nil. A corrupt file is moved aside to PATH.corrupt-TIME and
// fn gets a fresh state with Recovered saying so. The lock is held for the
// duration of fn.
func (s *Store) Update(ctx context.Context, fn func(*File) error) error {
	unlock, err := s.lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	s.removeStaleTemps()

	f, err := s.read()
	var corrupt *CorruptError
	if errors.As(err, &corrupt) {
		aside := fmt.Sprintf("%s.corrupt-%s", s.Path, s.now().UTC().Format("20060102T150405.000000000Z"))
		if rerr := os.Rename(s.Path, aside); rerr != nil {
			return fmt.Errorf("%v; and it could not be moved aside: %w", err, rerr)
		}
		f = New()
		f.Recovered = fmt.Sprintf("%v; moved aside to %s and started a fresh state", corrupt, aside)
	} else if err != nil {
		return err
	}
	if err := fn(f); err != nil {
		return err
	}
	return s.save(f)
}

// removeStaleTemps deletes temporary files left by a save that was killed
// before its rename. Saves only happen under the lock, which the caller
// holds, so no temporary file in use can match.
func (s *Store) removeStaleTemps() {
	stale, _ := filepath.Glob(s.Path + ".tmp-*")
	for _, p := range stale {
		os.Remove(p)
	}
}

// save writes f atomically: temporary file in the same directory, fsync,
// rename over the old file, fsync of the directory.
func (s *Store) save(f *File) error {
	f.Version = Version
	// Compact JSON: indenting a state of thousands of jobs costs a third
	// of the save (checker status --json is the readable view).
	data, err := json.Marshal(f)
	if err != nil {
		return fmt.Errorf("cannot encode state: %w", err)
	}
	data = append(data, '\n')
	dir := filepath.Dir(s.Path)
	tmp, err := os.CreateTemp(dir, filepath.Base(s.Path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("cannot save state: %w", err)
	}
	tmpName := tmp.Name()
	fail := func(err error) error {
		tmp.Close()
		os.Remove(tmpName)
		return fmt.Errorf("cannot save state to %s (the previous state is kept): %w", s.Path, err)
	}
	if err := tmp.Chmod(0o600); err != nil {
		return fail(err)
	}
	if _, err := tmp.Write(data); err != nil {
		return fail(err)
	}
	if err := tmp.Sync(); err != nil {
		return fail(err)
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmpName)
		return fmt.Errorf("cannot save state to %s (the previous state is kept): %w", s.Path, err)
	}
	if err := os.Rename(tmpName, s.Path); err != nil {
		os.Remove(tmpName)
		return fmt.Errorf("cannot save state to %s (the previous state is kept): %w", s.Path, err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// lock takes an exclusive flock on PATH.lock, waiting up to LockWait.
func (s *Store) lock(ctx context.Context) (func(), error) {
	wait := s.LockWait
	if wait == 0 {
		wait = 50 * time.Second
	}
	if err := os.MkdirAll(filepath.Dir(s.Path), 0o700); err != nil {
		return nil, fmt.Errorf("cannot create state directory: %w", err)
	}
	lf, err := os.OpenFile(s.Path+".lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("cannot open state lock: %w", err)
	}
	deadline := time.Now().Add(wait)
	delay := time.Millisecond
	for {
		err := syscall.Flock(int(lf.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() {
				syscall.Flock(int(lf.Fd()), syscall.LOCK_UN)
				lf.Close()
			}, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			lf.Close()
			return nil, fmt.Errorf("cannot lock %s.lock: %w", s.Path, err)
		}
		if time.Now().After(deadline) {
			lf.Close()
			return nil, fmt.Errorf("%w (%s.lock held for more than %s)", ErrLocked, s.Path, wait)
		}
		select {
		case <-ctx.Done():
			lf.Close()
			return nil, ctx.Err()
		case <-time.After(delay):
		}
		if delay < 50*time.Millisecond {
			delay *= 2
		}
	}
}

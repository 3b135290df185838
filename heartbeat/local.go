package heartbeat

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// localSubdir is the directory, under the one given to OpenLocal, that holds
// the heartbeat files.
const localSubdir = "heartbeat"

// LocalStore is a Store for a single machine with no server: the latest
// heartbeat of each service is the file <dir>/heartbeat/<service>.json,
// replaced atomically on each Put. Watch polls the directory, so several
// processes on the machine can publish and watch at once.
//
// With WithKeyTTL, a file not replaced for that long is treated as gone
// and removed by the next List or count; with WithMaxServices, the number
// of files is capped.
type LocalStore struct {
	dir  string // the heartbeat directory itself
	poll time.Duration
	log  func(error)
	now  func() time.Time
	ttl  time.Duration
	cap  *serviceCap // nil without WithMaxServices
	// owner is whom the files are given to when root writes into another
	// user's directory; nil otherwise.
	owner *fileOwner
}

// fileOwner is a user and group id to give files to.
type fileOwner struct{ uid, gid int }

// OpenLocal returns a store keeping its files in dir/heartbeat, creating
// that directory (mode 0700) if needed. dir is typically the directory of
// the state file.
//
// Run as root against a directory another user owns (a root backup script
// publishing the heartbeat of a service whose checker runs as that user),
// the store writes as that user: directories it creates and every file it
// writes are given to the owner of the heartbeat directory, or, when that
// does not exist yet, of the nearest directory above it, so that the
// user's own checker can still read and replace them.
func OpenLocal(dir string, opts ...StoreOption) (*LocalStore, error) {
	if dir == "" {
		return nil, errors.New("heartbeat: local store directory is empty")
	}
	cfg := newStoreConfig(opts)
	hb := filepath.Join(dir, localSubdir)
	owner, err := makeStoreDir(hb)
	if err != nil {
		return nil, err
	}
	s := &LocalStore{dir: hb, poll: cfg.pollInterval, log: cfg.logf(), now: cfg.now, ttl: cfg.keyTTL, owner: owner}
	if cfg.maxServices > 0 {
		s.cap = newServiceCap(cfg.maxServices, cfg.now)
	}
	return s, nil
}

// makeStoreDir creates the heartbeat directory hb (mode 0700) if needed and
// returns whom root must give what it writes there to: the owner of hb, or
// of the nearest directory above it, when that is not root. Other users
// write as themselves (nil).
func makeStoreDir(hb string) (*fileOwner, error) {
	if os.Geteuid() != 0 {
		if err := os.MkdirAll(hb, 0o700); err != nil {
			return nil, fmt.Errorf("heartbeat: create local store directory: %w", err)
		}
		return nil, nil
	}
	// The nearest existing directory, and what is missing below it.
	top, missing := hb, []string(nil)
	info, err := os.Stat(top)
	for errors.Is(err, fs.ErrNotExist) && filepath.Dir(top) != top {
		missing = append(missing, top)
		top = filepath.Dir(top)
		info, err = os.Stat(top)
	}
	if err != nil {
		return nil, fmt.Errorf("heartbeat: local store directory: %w", err)
	}
	if !info.IsDir() {
		return nil, fmt.Errorf("heartbeat: local store directory: %s is not a directory", top)
	}
	owner := ownerOf(info)
	for i := len(missing) - 1; i >= 0; i-- {
		p := missing[i]
		if err := os.Mkdir(p, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("heartbeat: create local store directory: %w", err)
		} else if err == nil && owner != nil {
			if err := os.Lchown(p, owner.uid, owner.gid); err != nil {
				return nil, fmt.Errorf("heartbeat: give local store directory %s to its owner: %w", p, err)
			}
		}
	}
	if len(missing) > 0 {
		// Another process may have made a directory in between: the files
		// go to whoever owns the heartbeat directory itself.
		if info, err = os.Stat(hb); err != nil {
			return nil, fmt.Errorf("heartbeat: local store directory: %w", err)
		}
		owner = ownerOf(info)
	}
	return owner, nil
}

// ownerOf returns the owner of a file when it is not root, or nil. The ids
// are read by field name so that the package builds where files have no
// numeric owner (there, nothing is given away).
func ownerOf(info fs.FileInfo) *fileOwner {
	v := reflect.Indirect(reflect.ValueOf(info.Sys()))
	if v.Kind() != reflect.Struct {
		return nil
	}
	uid, gid := v.FieldByName("Uid"), v.FieldByName("Gid")
	if !uid.IsValid() || !gid.IsValid() || !uid.CanUint() || !gid.CanUint() || uid.Uint() == 0 {
		return nil
	}
	return &fileOwner{uid: int(uid.Uint()), gid: int(gid.Uint())}
}

// Dir returns the directory holding the heartbeat files.
func (s *LocalStore) Dir() string { return s.dir }

func (s *LocalStore) path(service string) string {
	return filepath.Join(s.dir, service+".json")
}

// Put replaces the service's file with m: it writes a temporary file in the
// same directory, syncs it and renames it over the old one, so readers see
// either the previous heartbeat or the new one, never a mix. With
// WithMaxServices, a new service is refused with ErrTooManyServices when
// the store is full.
func (s *LocalStore) Put(ctx context.Context, m Message) error {
	if err := ValidServiceName(m.ServiceName); err != nil {
		return fmt.Errorf("heartbeat store: put: %w", err)
	}
	b, err := Encode(m)
	if err != nil {
		return fmt.Errorf("heartbeat store: put: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	err = s.cap.admit(ctx, m.ServiceName,
		func(context.Context) (bool, error) {
			info, err := os.Stat(s.path(m.ServiceName))
			return err == nil && !s.expired(info), nil
		},
		func(context.Context) (int, error) { return s.countAndPrune() })
	if err != nil {
		return fmt.Errorf("heartbeat store %s: %w", s.dir, err)
	}
	if err := writeFileAtomic(s.path(m.ServiceName), b, s.owner); err != nil {
		return fmt.Errorf("heartbeat store: %w", err)
	}
	return nil
}

// writeFileAtomic writes b to path through a synced temporary file with mode
// 0600 in the same directory, then syncs the directory so that the rename
// survives a crash. With owner, the file is given to owner before it takes
// its place, so that no reader ever sees it owned by anyone else.
func writeFileAtomic(path string, b []byte, owner *fileOwner) (err error) {
	dir := filepath.Dir(path)
	// '~' cannot appear in a service name, so List never mistakes a
	// temporary file for a heartbeat.
	tmp, err := os.CreateTemp(dir, "~"+filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := tmp.Chmod(0o600); err != nil {
		return fmt.Errorf("write %s: %w", tmp.Name(), err)
	}
	if owner != nil {
		if err := tmp.Chown(owner.uid, owner.gid); err != nil {
			return fmt.Errorf("write %s as the owner of %s (uid %d): %w", path, dir, owner.uid, err)
		}
	}
	if _, err := tmp.Write(b); err != nil {
		return fmt.Errorf("write %s: %w", tmp.Name(), err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("replace %s: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil {
		// Some filesystems cannot sync a directory; the data is written
		// either way, so this is best effort.
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// Delete removes the service's file.
func (s *LocalStore) Delete(ctx context.Context, service string) error {
	if err := ValidServiceName(service); err != nil {
		return fmt.Errorf("heartbeat store: delete: %w", err)
	}
	if err := os.Remove(s.path(service)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("heartbeat store: %w", err)
	}
	return nil
}

// Get reads the service's file; false means there is none. A file that does
// not hold a valid heartbeat of service is an error naming the file.
func (s *LocalStore) Get(ctx context.Context, service string) (Message, bool, error) {
	if err := ValidServiceName(service); err != nil {
		return Message{}, false, fmt.Errorf("heartbeat store: get: %w", err)
	}
	m, err := s.readFile(service)
	if errors.Is(err, fs.ErrNotExist) {
		return Message{}, false, nil
	}
	if err != nil {
		return Message{}, false, fmt.Errorf("heartbeat store: %w", err)
	}
	return m, true, nil
}

// readFile reads and checks the service's file. An expired file reads as
// missing (fs.ErrNotExist).
func (s *LocalStore) readFile(service string) (Message, error) {
	m, info, _, err := s.readFileInto(service, nil)
	if err == nil && s.expired(info) {
		return Message{}, fs.ErrNotExist
	}
	return m, err
}

// readFileInto reads and decodes the service's file with buf as scratch
// space, returning what the file was and the buffer for the next read.
func (s *LocalStore) readFileInto(service string, buf []byte) (Message, fs.FileInfo, []byte, error) {
	path := s.path(service)
	b, info, err := readCapped(path, buf)
	if err != nil {
		return Message{}, nil, buf, err
	}
	if len(b) > MaxMessageSize {
		// Read up to one byte past the limit; the file says how big it is.
		return Message{}, nil, b, fmt.Errorf("%s: heartbeat message is %d bytes, over the %d-byte limit", path, max(info.Size(), int64(len(b))), MaxMessageSize)
	}
	m, err := Decode(b)
	if err != nil {
		return Message{}, nil, b, fmt.Errorf("%s: %w", path, err)
	}
	if m.ServiceName != service {
		return Message{}, nil, b, fmt.Errorf("%s holds a heartbeat of service %q", path, m.ServiceName)
	}
	return m, info, b, nil
}

// readCapped reads path, stopping just past MaxMessageSize so that Decode
// reports an oversized file without it being read whole, and returns what
// the file was.
func readCapped(path string, buf []byte) ([]byte, fs.FileInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", path, err)
	}
	// The file's size, plus one byte that tells a file grown since the
	// stat; never more than the cap plus one.
	want := int(min(max(info.Size(), 0), MaxMessageSize) + 1)
	if cap(buf) < want {
		buf = make([]byte, 0, want)
	}
	b := buf[:want]
	n, err := io.ReadFull(f, b)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, nil, fmt.Errorf("read %s: %w", path, err)
	}
	return b[:n], info, nil
}

// expired reports whether a heartbeat file was last replaced longer ago
// than the TTL.
func (s *LocalStore) expired(info fs.FileInfo) bool {
	return s.ttl > 0 && s.now().Sub(info.ModTime()) > s.ttl
}

// countAndPrune counts the services with a file, removing expired files.
func (s *LocalStore) countAndPrune() (int, error) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return 0, fmt.Errorf("heartbeat store: %w", err)
	}
	n := 0
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || !e.Type().IsRegular() || ValidServiceName(name) != nil {
			continue
		}
		if s.ttl > 0 {
			if info, err := e.Info(); err == nil && s.expired(info) {
				s.prune(name, info)
				continue
			}
		}
		n++
	}
	return n, nil
}

// prune removes the service's file if it is still the expired version info
// describes. A Put may replace the file between the check and the removal:
// the file is first renamed aside and checked again, and a fresh heartbeat
// found there is linked back unless an even newer one took its place.
func (s *LocalStore) prune(service string, info fs.FileInfo) {
	path := s.path(service)
	// '~' keeps the aside file out of services().
	aside := filepath.Join(s.dir, fmt.Sprintf("~%s.%d.%x.expired", service, os.Getpid(), rand.Uint64()))
	if err := os.Rename(path, aside); err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			s.log(fmt.Errorf("heartbeat store: remove expired heartbeat: %w", err))
		}
		return
	}
	if cur, err := os.Stat(aside); err == nil && !sameVersion(info, cur) {
		if err := os.Link(aside, path); err != nil && !errors.Is(err, fs.ErrExist) {
			s.log(fmt.Errorf("heartbeat store: put back %s: %w", path, err))
			return // keep the aside file rather than lose the heartbeat
		}
	}
	if err := os.Remove(aside); err != nil {
		s.log(fmt.Errorf("heartbeat store: remove expired heartbeat: %w", err))
	}
	s.cap.forget(service)
}

// services lists the services with a file in the directory, sorted.
func (s *LocalStore) services() ([]string, error) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("heartbeat store: %w", err)
	}
	var names []string
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || !e.Type().IsRegular() || ValidServiceName(name) != nil {
			continue
		}
		names = append(names, name)
	}
	sort.Strings(names)
	return names, nil
}

// List reads every heartbeat file. Files that cannot be read or decoded are
// named in the returned error; the others are still returned. Expired
// files (WithKeyTTL) are left out and removed.
func (s *LocalStore) List(ctx context.Context) ([]Message, error) {
	names, err := s.services()
	if err != nil {
		return nil, err
	}
	// A few readers at once: with 10,000 services the listing is the
	// system calls of opening and reading each file.
	type read struct {
		m       Message
		err     error
		expired fs.FileInfo
	}
	results := make([]read, len(names))
	workers := min(len(names), 2*runtime.GOMAXPROCS(0))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			buf := make([]byte, 0, 4096)
			for {
				i := int(next.Add(1)) - 1
				if i >= len(names) || ctx.Err() != nil {
					return
				}
				r := &results[i]
				var info fs.FileInfo
				r.m, info, buf, r.err = s.readFileInto(names[i], buf)
				if r.err == nil && s.expired(info) {
					r.expired, r.err = info, fs.ErrNotExist
				}
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var (
		msgs    = make([]Message, 0, len(names))
		bad     []error
		badName []string
	)
	for i, r := range results {
		switch {
		case r.expired != nil:
			s.prune(names[i], r.expired)
		case errors.Is(r.err, fs.ErrNotExist):
			// removed since the listing
		case r.err != nil:
			bad, badName = append(bad, r.err), append(badName, names[i])
		default:
			msgs = append(msgs, r.m)
		}
	}
	if len(bad) > 0 {
		return msgs, &UnreadableError{Services: badName, Err: errors.Join(bad...), where: "heartbeat store"}
	}
	return msgs, nil
}

// sameVersion reports whether two stats show the same version of a
// heartbeat file. Put renames a new file into place, so a new heartbeat is a
// different file even if its size and modification time match the old one.
func sameVersion(old, cur fs.FileInfo) bool {
	return old != nil && os.SameFile(old, cur) &&
		old.ModTime().Equal(cur.ModTime()) && old.Size() == cur.Size()
}

// Watch polls the directory (see WithPollInterval) and calls fn with each
// heartbeat file written after Watch started. Unreadable files are reported
// to the store log (WithStoreLog) and skipped. It returns nil when ctx is done, or an error
// if the directory cannot be read at the start.
func (s *LocalStore) Watch(ctx context.Context, fn func(Message)) error {
	versions := make(map[string]fs.FileInfo)
	// Existing heartbeats are history, not news.
	if _, err := s.scan(versions); err != nil {
		return err
	}
	ticker := time.NewTicker(s.poll)
	defer ticker.Stop()
	reported := false // the directory error was already logged
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
		changed, err := s.scan(versions)
		if err != nil {
			if !reported {
				s.log(err)
				reported = true
			}
			continue
		}
		reported = false
		for _, name := range changed {
			if ctx.Err() != nil {
				return nil
			}
			m, err := s.readFile(name)
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if err != nil {
				s.log(fmt.Errorf("heartbeat watch: skipped %w", err))
				continue
			}
			fn(m)
		}
	}
}

// scan updates versions from the directory and returns the services whose
// file is new or changed.
func (s *LocalStore) scan(versions map[string]fs.FileInfo) ([]string, error) {
	names, err := s.services()
	if err != nil {
		return nil, err
	}
	var changed []string
	for _, name := range names {
		info, err := os.Stat(s.path(name))
		if err != nil {
			continue // removed since the listing
		}
		if sameVersion(versions[name], info) {
			continue
		}
		versions[name] = info
		changed = append(changed, name)
	}
	return changed, nil
}

// Close does nothing; a LocalStore holds no open resources.
func (s *LocalStore) Close() error { return nil }

package state

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// Version is the database schema this build writes. Version 1 was the JSON
// state file of earlier releases, which is migrated on first use.
const Version = 2

// ErrLocked is returned by Update when another invocation held the lock
// for longer than the store's LockWait.
var ErrLocked = errors.New("state file is locked by another checker")

// ErrBusy is returned by View when a writer kept the database for longer
// than the store's ReadWait.
var ErrBusy = errors.New("state file is busy: a cron run is writing it")

// Store is the state database at Path. A writer (Update) holds an exclusive
// lock on PATH.lock for the length of its transaction; readers (View) take
// a shared lock on the database file for theirs. Both are short: a cron run
// opens the database only to claim jobs and to record what they found.
type Store struct {
	Path string
	// LockWait bounds how long Update waits for another writer; zero means
	// 50 seconds, a little less than the minute between cron invocations.
	LockWait time.Duration
	// ReadWait bounds how long View waits for a writer; zero means 5
	// seconds (a run writing 10,000 records with fsync on a slow disk).
	ReadWait time.Duration
	// Now stamps the names of files moved aside and is the clock of a
	// migration (which claims still hold); nil means time.Now.
	Now func() time.Time
	// Replaced, if set, is told when a corrupt or empty state file was
	// moved aside and a fresh state started (the message that the next
	// cron run also sends as a notice), so that a command can say so.
	Replaced func(msg string)
	// Owner, when set, is the settings file this state belongs to (an
	// absolute path). Update records it, and refuses with an OwnerError
	// to write a state that another settings file, still in place, wrote:
	// two sets of settings sharing one state undo each other's notices
	// and prune each other's jobs.
	Owner string
}

// OwnerError says the state file belongs to another settings file.
type OwnerError struct {
	Path, Owner, Settings string
}

func (e *OwnerError) Error() string {
	return fmt.Sprintf("state file %s belongs to the settings %s, not %s: give each settings file its own [general] statefile "+
		"(two checkers sharing one state would undo each other's notices); if %s is a copy that is no longer used, remove it",
		e.Path, e.Owner, e.Settings, e.Owner)
}

// OwnerConflict reads, without writing, whether the state belongs to
// another settings file that still exists: the OwnerError Update would
// return, or nil (also when there is no state yet, or it cannot be read:
// other commands report that).
func (s *Store) OwnerConflict() error {
	if s.Owner == "" {
		return nil
	}
	var conflict error
	_ = s.View(func(tx *Tx) error {
		if tx.btx == nil {
			return nil
		}
		if meta := tx.btx.Bucket(bMeta); meta != nil {
			conflict = s.ownerConflict(string(meta.Get(keyOwner)))
		}
		return nil
	})
	return conflict
}

// ownerConflict is the OwnerError for a state whose recorded owner is
// prev, or nil.
func (s *Store) ownerConflict(prev string) error {
	if prev == "" || prev == s.Owner {
		return nil
	}
	theirs, err1 := os.Stat(prev)
	ours, err2 := os.Stat(s.Owner)
	if err1 == nil && (err2 != nil || !os.SameFile(theirs, ours)) {
		return &OwnerError{Path: s.Path, Owner: prev, Settings: s.Owner}
	}
	return nil
}

// checkOwnerOf records s.Owner in the meta bucket, or returns an
// OwnerError when the state belongs to another settings file that still
// exists. A settings file that was moved or removed hands its state on.
func (s *Store) checkOwnerOf(btx *bolt.Tx) error {
	if s.Owner == "" {
		return nil
	}
	meta := btx.Bucket(bMeta)
	prev := string(meta.Get(keyOwner))
	if prev == s.Owner {
		return nil
	}
	if err := s.ownerConflict(prev); err != nil {
		return err
	}
	return meta.Put(keyOwner, []byte(s.Owner))
}

func (s *Store) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// CorruptError says the state file is not a database this checker can use.
type CorruptError struct {
	Path string
	Err  error
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("state file %s is corrupt: %v", e.Path, e.Err)
}
func (e *CorruptError) Unwrap() error { return e.Err }

// NewerError says the state file was written by a newer checker. It is
// refused, never misread or replaced.
type NewerError struct {
	Path    string
	Version int
}

func (e *NewerError) Error() string {
	return fmt.Sprintf("state file %s was written by a newer checker (format %d; this one reads up to %d): upgrade checker, or point [general] statefile elsewhere", e.Path, e.Version, Version)
}

// PermissionError says the state cannot be used by this user. It is not
// corruption: nothing is moved aside or changed.
type PermissionError struct {
	Path  string
	Owner string // the owner of the file, or of Dir
	// Dir is set when the file itself cannot be looked at: the nearest
	// directory above it that can, whose owner Owner is.
	Dir  string
	User string // who is running
	Err  error
	// Foreign is set when root refused to write a state another user owns.
	Foreign bool
}

func (e *PermissionError) Error() string {
	if e.Foreign && e.Dir != "" {
		return fmt.Sprintf("state directory %s belongs to %s; running as %s would create the state file %s there as %s: run checker as that user (sudo -u %s checker …)",
			e.Dir, e.Owner, e.User, e.Path, e.User, e.Owner)
	}
	if e.Foreign {
		return fmt.Sprintf("state file %s belongs to %s; running as %s would take it over: run checker as that user (sudo -u %s checker …)", e.Path, e.Owner, e.User, e.Owner)
	}
	if e.Dir != "" {
		return fmt.Sprintf("cannot use state file %s (in directory %s, owner %s) as user %s: %v", e.Path, e.Dir, e.Owner, e.User, e.Err)
	}
	return fmt.Sprintf("cannot use state file %s (owner %s) as user %s: %v", e.Path, e.Owner, e.User, e.Err)
}

// permissionError describes err, a lack of permission on path, naming the
// owner of path or, when path cannot be looked at, of the nearest directory
// above it that can.
func permissionError(path string, err error) *PermissionError {
	about := path
	for {
		if _, serr := os.Stat(about); serr == nil || filepath.Dir(about) == about {
			break
		}
		about = filepath.Dir(about)
	}
	pe := &PermissionError{Path: path, Owner: ownerOf(about), User: currentUser(), Err: err}
	if about != path {
		pe.Dir = about
	}
	return pe
}
func (e *PermissionError) Unwrap() error { return e.Err }

// Update locks the state, opens the database and runs fn in one read-write
// transaction, committed when fn returns nil. A file that is not a valid
// database (or a JSON file that is not a state of ours) is moved aside to
// PATH.corrupt-TIME, never deleted, and a fresh database takes its place;
// the first transaction that calls Tx.TakeRecovered learns of it. A JSON
// state of an earlier release is migrated, and kept as PATH.json-migrated.
func (s *Store) Update(ctx context.Context, fn func(*Tx) error) error {
	if err := s.checkOwner(); err != nil {
		return err
	}
	unlock, err := s.lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()

	db, err := s.openWrite()
	if err != nil {
		return err
	}
	var fnErr error
	err = s.update(db, func(tx *Tx) error {
		if fnErr = s.checkOwnerOf(tx.btx); fnErr != nil {
			return fnErr
		}
		fnErr = fn(tx)
		return fnErr
	})
	var pe *panicError
	if err != nil && fnErr == nil && !errors.As(err, &pe) {
		// The commit failed (disk full, file size limit, I/O error): bbolt
		// rolled it back, and the last committed state stands.
		err = fmt.Errorf("cannot save state to %s (the previous state is kept): %w", s.Path, err)
	}
	if cerr := db.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("cannot save state to %s: %w", s.Path, cerr)
	}
	if errors.As(err, &pe) {
		// bbolt panics on damaged pages. If the file fails its check, it
		// is corrupt: move it aside like any other; the caller's work is
		// lost for this run, the next starts fresh.
		if cerr := s.verify(); cerr != nil {
			return cerr
		}
	}
	return err
}

// View opens the database read-only and runs fn in a read transaction. A
// missing file is an empty state. A corrupt file is an error; only Update
// moves it aside. A JSON state of an earlier release is migrated first.
func (s *Store) View(fn func(*Tx) error) error {
	kind, err := s.sniff()
	switch {
	case errors.Is(err, fs.ErrNotExist), err == nil && kind == fileEmpty:
		// An empty file is either being created by a writer (bbolt creates
		// the file, then writes its first pages) or one a writer will move
		// aside under its lock; a reader must not judge which.
		return fn(&Tx{store: s})
	case err != nil:
		return s.classify(err)
	case kind == fileJSON:
		// Migrate a state of an earlier release (serve may start before
		// the first cron run); a JSON file that is not one is reported,
		// and only Update moves it aside.
		if _, err := s.readJSONState(); err != nil {
			return err
		}
		if err := s.Update(context.Background(), func(*Tx) error { return nil }); err != nil {
			return err
		}
	}
	wait := s.ReadWait
	if wait == 0 {
		wait = 5 * time.Second
	}
	var file *os.File // what bbolt opened, for validate
	open := func(name string, flag int, perm os.FileMode) (*os.File, error) {
		f, err := openNotEmpty(name, flag, perm)
		file = f
		return f, err
	}
	db, err := bolt.Open(s.Path, 0o600, &bolt.Options{ReadOnly: true, Timeout: wait, OpenFile: open})
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, errUnborn) {
		// Gone, or replaced by a database a writer has just created and
		// not yet written.
		return fn(&Tx{store: s})
	}
	if errors.Is(err, bolterrors.ErrTimeout) {
		return fmt.Errorf("%w (%s)", ErrBusy, s.Path)
	}
	if err != nil {
		var pathErr *fs.PathError
		if perr := s.permission(err); perr != nil || errors.As(err, &pathErr) {
			return s.classify(err)
		}
		return &CorruptError{Path: s.Path, Err: err} // bbolt refused the contents
	}
	defer db.Close()
	if err := s.validate(db, file); err != nil {
		return err
	}
	return guard(func() error {
		return db.View(func(btx *bolt.Tx) error { return fn(&Tx{store: s, btx: btx}) })
	})
}

// update runs fn in a transaction, making the buckets first.
func (s *Store) update(db *bolt.DB, fn func(*Tx) error) error {
	return guard(func() error {
		return db.Update(func(btx *bolt.Tx) error {
			if err := ensureBuckets(btx); err != nil {
				return err
			}
			tx := &Tx{store: s, btx: btx, db: db, writable: true}
			if err := fn(tx); err != nil {
				return err
			}
			return nil
		})
	})
}

// panicError is a panic recovered from the database code.
type panicError struct {
	val   any
	stack string
}

func (p *panicError) Error() string { return fmt.Sprintf("state database: internal error: %v", p.val) }

// guard runs f, turning a panic (bbolt panics on damaged pages) or a memory
// fault (a page beyond the end of a truncated file) into an error.
func guard(f func() error) (err error) {
	old := debug.SetPanicOnFault(true)
	defer debug.SetPanicOnFault(old)
	defer func() {
		if p := recover(); p != nil {
			err = &panicError{val: p, stack: string(debug.Stack())}
		}
	}()
	return f()
}

var bucketNames = [][]byte{bMeta, bJobs, bOutbox, bEvents, bEventIdx, bSilences, bServices, bRecipients, bClaims}

var (
	bMeta       = []byte("meta")
	bJobs       = []byte("jobs")
	bOutbox     = []byte("outbox")
	bEvents     = []byte("events")
	bEventIdx   = []byte("events-by-job")
	bSilences   = []byte("silences")
	bServices   = []byte("services")
	bRecipients = []byte("recipients")
	bClaims     = []byte("claims")

	keyVersion   = []byte("version")
	keyHealth    = []byte("health")
	keyRecovered = []byte("recovered")
	keyOwner     = []byte("owner")
)

func ensureBuckets(btx *bolt.Tx) error {
	meta := btx.Bucket(bMeta)
	if meta == nil {
		for _, name := range bucketNames {
			if _, err := btx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("state database: %w", err)
			}
		}
		meta = btx.Bucket(bMeta)
		return meta.Put(keyVersion, []byte(strconv.Itoa(Version)))
	}
	return nil
}

type fileKind int

const (
	fileMissing fileKind = iota
	fileEmpty
	fileJSON
	fileOther
)

// sniff tells a JSON state (of an earlier release) from anything else by
// its first non-blank byte.
func (s *Store) sniff() (fileKind, error) {
	f, err := os.Open(s.Path)
	if err != nil {
		return fileMissing, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fileOther, err
	}
	if fi.IsDir() {
		return fileOther, nil
	}
	var buf [64]byte
	n, err := f.Read(buf[:])
	if n == 0 && (err == nil || errors.Is(err, io.EOF)) {
		return fileEmpty, nil
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return fileOther, err
	}
	if t := bytes.TrimLeft(buf[:n], " \t\r\n"); len(t) > 0 && t[0] == '{' {
		return fileJSON, nil
	}
	return fileOther, nil
}

// errUnborn is what openNotEmpty returns for an empty file.
var errUnborn = errors.New("empty file")

// openNotEmpty opens a file for a reader of the database, refusing an empty
// one. bbolt creates a database file, then writes its first pages under its
// own lock; a reader that opens the file in between (the sniff having seen
// the file it replaced) would otherwise take it for a database to start, and
// cannot, read-only. A file that is not empty when opened stays so: bbolt
// never truncates, and a replacement is a new file.
func openNotEmpty(name string, flag int, perm os.FileMode) (*os.File, error) {
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() && fi.Size() == 0 {
		f.Close()
		return nil, errUnborn
	}
	return f, nil
}

// emptyFile reports whether Path is a regular file of 0 bytes.
func (s *Store) emptyFile() bool {
	fi, err := os.Stat(s.Path)
	return err == nil && fi.Mode().IsRegular() && fi.Size() == 0
}

// errEmpty is why an empty state file is corrupt. Under the lock no
// checker of ours is creating the file, so it is not a database being born:
// a full disk, a crash before the first write reached the disk, or a
// truncation left it, and the streaks and notify times it held are gone.
var errEmpty = errors.New("empty file (0 bytes): the state it held is lost")

// openWrite opens the database for writing, migrating a JSON state and
// replacing a corrupt file. The caller holds the lock.
func (s *Store) openWrite() (*bolt.DB, error) {
	kind, err := s.sniff()
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		if perr := s.permission(err); perr != nil {
			return nil, perr
		}
		return s.replaceCorrupt(err)
	}
	if kind == fileEmpty {
		// bbolt would quietly start a fresh database in it.
		return s.replaceCorrupt(errEmpty)
	}
	if kind == fileJSON {
		s.removeStaleTemps() // what saves of the JSON era left behind
		if err := s.migrate(); err != nil {
			var ce *CorruptError
			if errors.As(err, &ce) {
				return s.replaceCorrupt(ce.Err)
			}
			return nil, err
		}
	}
	db, err := s.boltOpen()
	if err != nil {
		if perr := s.permission(err); perr != nil {
			return nil, perr
		}
		if errors.Is(err, bolterrors.ErrTimeout) {
			return nil, fmt.Errorf("%w (a reader held %s too long)", ErrLocked, s.Path)
		}
		var pe *panicError
		if errors.As(err, &pe) {
			// bbolt faulted reading pages that are not there (a truncated
			// file): say what is wrong rather than where bbolt fell.
			if why := s.diagnose(); why != nil {
				err = why
			}
		}
		return s.replaceCorrupt(err)
	}
	if err := s.validate(db, nil); err != nil {
		db.Close()
		var ce *CorruptError
		if errors.As(err, &ce) {
			return s.replaceCorrupt(ce.Err)
		}
		return nil, err
	}
	return db, nil
}

// diagnose opens the file read-only, which reads no more than the meta
// pages, and returns what validate finds wrong with it, if anything.
func (s *Store) diagnose() error {
	var db *bolt.DB
	err := guard(func() error {
		var err error
		db, err = bolt.Open(s.Path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
		return err
	})
	if err != nil {
		return nil
	}
	defer db.Close()
	var ce *CorruptError
	if err := s.validate(db, nil); errors.As(err, &ce) {
		return ce.Err
	}
	return nil
}

func (s *Store) boltOpen() (*bolt.DB, error) {
	wait := s.LockWait
	if wait == 0 || wait > 10*time.Second {
		wait = 10 * time.Second // readers hold the file only for a moment
	}
	var db *bolt.DB
	var file *os.File
	open := func(name string, flag int, perm os.FileMode) (*os.File, error) {
		f, err := os.OpenFile(name, flag, perm)
		file = f
		return f, err
	}
	err := guard(func() error {
		var err error
		db, err = bolt.Open(s.Path, 0o600, &bolt.Options{Timeout: wait, OpenFile: open})
		return err
	})
	var pe *panicError
	if errors.As(err, &pe) && file != nil {
		// bbolt faulted inside Open and did not close the file: its
		// lock would keep every other open of the file waiting, also
		// after Close while bbolt's mapping of the file lives on.
		_ = syscall.Flock(int(file.Fd()), syscall.LOCK_UN)
		file.Close()
	}
	return db, err
}

// validate checks what bbolt does not: the schema version, and that the
// pages the meta page claims lie within the file (a truncated file would
// otherwise fault when they are read). file is the file bbolt opened, when
// known: a reader holds no lock that keeps a writer from moving the path
// aside meanwhile, so the path may no longer name it.
func (s *Store) validate(db *bolt.DB, file *os.File) error {
	var fi os.FileInfo
	var err error
	if file != nil {
		fi, err = file.Stat()
	} else {
		fi, err = os.Stat(s.Path)
	}
	if err != nil {
		return s.classify(err)
	}
	return guard(func() error {
		return db.View(func(btx *bolt.Tx) error {
			if btx.Size() > fi.Size() {
				return &CorruptError{Path: s.Path, Err: fmt.Errorf("truncated: %d bytes where the database needs %d", fi.Size(), btx.Size())}
			}
			meta := btx.Bucket(bMeta)
			if meta == nil {
				if btx.Bucket(bJobs) != nil {
					return &CorruptError{Path: s.Path, Err: errors.New("database without its meta bucket")}
				}
				foreign := false
				_ = btx.ForEach(func([]byte, *bolt.Bucket) error { foreign = true; return nil })
				if foreign {
					return &CorruptError{Path: s.Path, Err: errors.New("a bbolt database that is not a checker state")}
				}
				return nil // a fresh database
			}
			v, err := strconv.Atoi(string(meta.Get(keyVersion)))
			if err != nil || v < 2 {
				return &CorruptError{Path: s.Path, Err: fmt.Errorf("unknown schema version %q", meta.Get(keyVersion))}
			}
			if v > Version {
				return &NewerError{Path: s.Path, Version: v}
			}
			return nil
		})
	})
}

// classify turns an error opening the file into a PermissionError, a
// CorruptError, or itself.
func (s *Store) classify(err error) error {
	if perr := s.permission(err); perr != nil {
		return perr
	}
	var ne *NewerError
	var ce *CorruptError
	if errors.As(err, &ne) || errors.As(err, &ce) {
		return err
	}
	var pe *panicError
	if errors.Is(err, bolterrors.ErrInvalid) || errors.Is(err, bolterrors.ErrChecksum) ||
		errors.Is(err, bolterrors.ErrVersionMismatch) || errors.Is(err, syscall.EISDIR) || errors.As(err, &pe) {
		return &CorruptError{Path: s.Path, Err: err}
	}
	return fmt.Errorf("state file %s: %w", s.Path, err)
}

// permission returns a PermissionError when err is a lack of permission.
func (s *Store) permission(err error) error {
	if !errors.Is(err, fs.ErrPermission) && !errors.Is(err, syscall.EROFS) {
		return nil
	}
	return permissionError(s.Path, err)
}

// CheckOwner is the check Update makes before it writes anything, for a
// command that must not touch anything else (a heartbeat store) when
// Update would refuse.
func (s *Store) CheckOwner() error { return s.checkOwner() }

// checkOwner refuses to let root write a state that another user owns (or
// create one in another user's directory): the next cron run, as that
// user, could no longer open it.
func (s *Store) checkOwner() error {
	if os.Geteuid() != 0 {
		return nil
	}
	path := s.Path
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		path = filepath.Dir(path)
		fi, err = os.Stat(path)
	}
	if err != nil {
		return nil // the open reports it
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Uid != 0 {
		pe := &PermissionError{Path: s.Path, Owner: ownerOf(path), User: currentUser(), Foreign: true}
		if path != s.Path {
			pe.Dir = path
		}
		return pe
	}
	return nil
}

func ownerOf(path string) string {
	fi, err := os.Stat(path)
	if err != nil {
		return "unknown"
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return "unknown"
	}
	if u, err := user.LookupId(strconv.Itoa(int(st.Uid))); err == nil {
		return u.Username
	}
	return "uid " + strconv.Itoa(int(st.Uid))
}

func currentUser() string {
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return "uid " + strconv.Itoa(os.Geteuid())
}

// replaceCorrupt moves the file aside and opens a fresh database that
// remembers why. The caller holds the lock.
func (s *Store) replaceCorrupt(cause error) (*bolt.DB, error) {
	if perr := s.permission(cause); perr != nil {
		return nil, perr
	}
	var ne *NewerError
	if errors.As(cause, &ne) {
		return nil, cause
	}
	var ce *CorruptError
	if !errors.As(cause, &ce) {
		ce = &CorruptError{Path: s.Path, Err: cause}
	}
	file := s.realPath()
	aside := fmt.Sprintf("%s.corrupt-%s", file, s.now().UTC().Format("20060102T150405.000000000Z"))
	if err := os.Rename(file, aside); err != nil && !errors.Is(err, fs.ErrNotExist) {
		if perr := s.permission(err); perr != nil {
			return nil, perr
		}
		return nil, fmt.Errorf("%v; and it could not be moved aside: %w", ce, err)
	}
	db, err := s.boltOpen()
	if err != nil {
		if perr := s.permission(err); perr != nil {
			return nil, perr
		}
		return nil, fmt.Errorf("%v; moved aside to %s, but a fresh state cannot be created: %w", ce, aside, err)
	}
	msg := fmt.Sprintf("%v; moved aside to %s and started a fresh state", ce, aside)
	if err := s.update(db, func(tx *Tx) error { return tx.btx.Bucket(bMeta).Put(keyRecovered, []byte(msg)) }); err != nil {
		db.Close()
		return nil, fmt.Errorf("%s: %w", msg, err)
	}
	if s.Replaced != nil {
		s.Replaced(msg)
	}
	return db, nil
}

// realPath is the file Path names: where Path is a symbolic link, the
// file it points to, which is what gets moved aside or replaced (the link
// stays, and a fresh state is created where it points).
func (s *Store) realPath() string {
	if real, err := filepath.EvalSymlinks(s.Path); err == nil {
		return real
	}
	return s.Path
}

// verify runs bbolt's consistency check under the lock the caller holds;
// a database that fails it is moved aside. It returns the CorruptError
// when it did so.
func (s *Store) verify() error {
	db, err := s.boltOpen()
	if err != nil {
		return s.classify(err)
	}
	var problems []error
	err = guard(func() error {
		return db.View(func(btx *bolt.Tx) error {
			for e := range btx.Check() {
				problems = append(problems, e)
				if len(problems) >= 5 {
					break
				}
			}
			return nil
		})
	})
	if err != nil {
		problems = append(problems, err)
	}
	db.Close()
	if len(problems) == 0 {
		return nil
	}
	ce := &CorruptError{Path: s.Path, Err: fmt.Errorf("consistency check failed: %w", errors.Join(problems...))}
	fresh, err := s.replaceCorrupt(ce)
	if err != nil {
		return err
	}
	fresh.Close()
	return ce
}

// Check runs the database's consistency check under the write lock. A
// database that fails it is moved aside and replaced (and the next
// transaction's TakeRecovered says so); the returned error says what was
// found.
func (s *Store) Check(ctx context.Context) error {
	if err := s.checkOwner(); err != nil {
		return err
	}
	unlock, err := s.lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	s.removeStaleTemps()
	if _, err := os.Stat(s.Path); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if s.emptyFile() {
		ce := &CorruptError{Path: s.Path, Err: errEmpty}
		fresh, err := s.replaceCorrupt(ce)
		if err != nil {
			return err
		}
		fresh.Close()
		return ce
	}
	return s.verify()
}

// removeStaleTemps deletes temporary files left by a save or migration that
// was killed midway. They are only made under the lock, which the caller
// holds, so no file in use can match.
func (s *Store) removeStaleTemps() {
	for _, pattern := range []string{s.Path + ".tmp-*", s.Path + ".migrate-*"} {
		stale, _ := filepath.Glob(pattern)
		for _, p := range stale {
			os.Remove(p)
		}
	}
}

// lock takes an exclusive flock on PATH.lock, waiting up to LockWait.
func (s *Store) lock(ctx context.Context) (func(), error) {
	wait := s.LockWait
	if wait == 0 {
		wait = 50 * time.Second
	}
	if err := os.MkdirAll(filepath.Dir(s.Path), 0o700); err != nil {
		if perr := s.permission(err); perr != nil {
			return nil, perr
		}
		return nil, fmt.Errorf("cannot create state directory: %w", err)
	}
	lf, err := os.OpenFile(s.Path+".lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		if errors.Is(err, fs.ErrPermission) {
			return nil, permissionError(s.Path+".lock", err)
		}
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

package cmd

import (
	"errors"
	"hash/fnv"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// openLog opens path for appending, creating it and, with mode dirMode,
// its directory. A logfile that root creates in a directory owned by
// someone else is given to that owner: an operator's `sudo checker …` must
// not leave a log the service user's cron runs can no longer append to.
func openLog(path string, dirMode os.FileMode) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if !errors.Is(err, fs.ErrNotExist) {
		return f, err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, dirMode); err != nil {
		return nil, err
	}
	f, err = os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if errors.Is(err, fs.ErrExist) {
		// Another process created it in between.
		return os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	}
	if err != nil {
		return nil, err
	}
	if os.Geteuid() == 0 {
		if fi, err := os.Stat(dir); err == nil {
			if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Uid != 0 {
				f.Chown(int(st.Uid), int(st.Gid))
			}
		}
	}
	return f, nil
}

// reportDue says whether a problem remembered by marker should be reported
// now: when it was not reported within period. A report time in the future
// (the clock stepped back) does not count. It records now as the report
// time; if it cannot, it reports every time rather than never.
func reportDue(marker, what string, now time.Time, period time.Duration) bool {
	if fi, err := os.Stat(marker); err == nil {
		if age := now.Sub(fi.ModTime()); age >= 0 && age < period {
			return false
		}
	}
	if err := os.WriteFile(marker, []byte(what+"\n"), 0o600); err == nil {
		os.Chtimes(marker, now, now)
	}
	return true
}

// fnv64 is the FNV-1a hash of s, naming a marker file per logfile.
func fnv64(s string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(s))
	return h.Sum64()
}

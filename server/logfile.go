package server

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
)

// LogFile is an append-only log file that can be reopened at its path, for
// logrotate: after the file was moved away, Reopen (on SIGHUP) starts a new
// one at the old name. Safe for concurrent use.
type LogFile struct {
	path string

	mu sync.Mutex // guards f
	f  *os.File
}

// OpenLogFile opens (creating it and its directory if needed) the log file
// at path for appending.
func OpenLogFile(path string) (*LogFile, error) {
	f, err := openLog(path)
	if err != nil {
		return nil, err
	}
	return &LogFile{path: path, f: f}, nil
}

func openLog(path string) (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("log file %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, fmt.Errorf("log file: %w", err)
	}
	return f, nil
}

// Path returns the file's path.
func (l *LogFile) Path() string { return l.path }

// Write appends p.
func (l *LogFile) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.f.Write(p)
}

// Reopen opens the path again and writes there from now on. If that fails
// the old file stays in use, and the error says why.
func (l *LogFile) Reopen() error {
	f, err := openLog(l.path)
	if err != nil {
		return err
	}
	l.mu.Lock()
	old := l.f
	l.f = f
	l.mu.Unlock()
	return old.Close()
}

// Close closes the file.
func (l *LogFile) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.f.Close()
}

//go:build unix

package server

import "syscall"

// openFileLimit returns the soft limit on open files (RLIMIT_NOFILE). Go
// raises it to the hard limit at start on Linux, so this is what the process
// may really use.
func openFileLimit() (uint64, bool) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, false
	}
	return uint64(rl.Cur), true
}

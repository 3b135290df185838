//go:build unix

package heartbeat

import (
	"syscall"
	"time"
)

// processCPUTime returns the user plus system CPU time used by this process
// so far, or false if the system cannot tell.
func processCPUTime() (time.Duration, bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}

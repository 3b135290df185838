//go:build !unix

package heartbeat

import "time"

// processCPUTime is not implemented on this system; CPU usage reads 0.
func processCPUTime() (time.Duration, bool) { return 0, false }

package heartbeat

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
)

// residentMemoryMB returns the process's resident set size in MiB from
// /proc/self/status where there is one (Linux), and otherwise the memory the
// Go runtime has obtained from the system, which is close to it.
func residentMemoryMB() float64 {
	if f, err := os.Open("/proc/self/status"); err == nil {
		defer f.Close()
		if kb, err := parseVmRSS(f); err == nil {
			return float64(kb) / 1024
		}
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return float64(ms.Sys) / (1 << 20)
}

// parseVmRSS finds the "VmRSS:  1234 kB" line of a /proc/<pid>/status file
// and returns the number of kB.
func parseVmRSS(r io.Reader) (int64, error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:")
		if !ok {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) != 2 || fields[1] != "kB" {
			return 0, fmt.Errorf("unexpected VmRSS line %q", sc.Text())
		}
		return strconv.ParseInt(fields[0], 10, 64)
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("no VmRSS line")
}

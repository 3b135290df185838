package config_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"checker/config"
)

// benchSettings writes a settings file with n job sections of two keys
// each, as a large installation has them, and returns its path.
func benchSettings(b *testing.B, n int) string {
	b.Helper()
	var cfg strings.Builder
	cfg.WriteString("[general]\nstatefile = checker.state\n[email]\nnomail = yes\n")
	for i := range n {
		fmt.Fprintf(&cfg, "[tcp:j%06d]\ntarget = 127.0.0.1:%d\nevery = hour\n", i, 1+i%65535)
	}
	path := filepath.Join(b.TempDir(), "settings.cfg")
	if err := os.WriteFile(path, []byte(cfg.String()), 0o600); err != nil {
		b.Fatal(err)
	}
	return path
}

// benchLoad loads n sections. Besides ns/op it reports cpu-ms/op, the
// process's CPU time (user and system, GC included) per load: on a machine
// shared with other work, wall time varies with the neighbours, CPU time
// much less.
func benchLoad(b *testing.B, n int) {
	path := benchSettings(b, n)
	b.ReportAllocs()
	before := cpuTime(b)
	for b.Loop() {
		s, err := config.Load(path, noEnv)
		if err != nil || len(s.Jobs) != n {
			b.Fatalf("Load: %d jobs, %v", len(s.Jobs), err)
		}
	}
	b.ReportMetric(float64(cpuTime(b)-before)/float64(time.Millisecond)/float64(b.N), "cpu-ms/op")
}

func cpuTime(b *testing.B) time.Duration {
	b.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkLoad10000 is config.Load of 10,000 job sections.
func BenchmarkLoad10000(b *testing.B) { benchLoad(b, 10000) }

// BenchmarkLoad100000 is config.Load of 100,000 job sections: what every
// `cron minute` of the largest installations pays before anything else.
func BenchmarkLoad100000(b *testing.B) { benchLoad(b, 100000) }

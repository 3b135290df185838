package cmd

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// BenchmarkCronNothingDue is the in-process part of `cron minute` with
// nothing due (100 hourly jobs that ran this hour): the commands, settings,
// jobs, and one state transaction. Package initialisation is not in it;
// bench/run.sh times the whole process.
func BenchmarkCronNothingDue(b *testing.B) {
	dir := b.TempDir()
	var cfg strings.Builder
	cfg.WriteString("[email]\nnomail = yes\n")
	for i := 0; i < 100; i++ {
		fmt.Fprintf(&cfg, "[tcp:j%03d]\ntarget = 127.0.0.1:1\nevery = hour\n", i)
	}
	path := filepath.Join(dir, "settings.cfg")
	if err := writeBenchFile(path, cfg.String()); err != nil {
		b.Fatal(err)
	}
	run := func(args ...string) {
		var out, errb bytes.Buffer
		g := &globalOptions{stdout: &out, stderr: &errb, getenv: func(string) string { return "" }}
		if code := execute(g, append([]string{"-f", path}, args...)); code != 0 && !(len(args) > 1 && args[1] == "hour") {
			b.Fatalf("exit %d: %s", code, errb.String())
		}
	}
	run("cron", "hour")
	b.ReportAllocs()
	for b.Loop() {
		run("cron", "minute")
	}
}

func writeBenchFile(path, content string) error {
	return os.WriteFile(path, []byte(content), 0o600)
}

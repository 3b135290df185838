package cmd

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"checker/config"
)

// TestUnopenableLogfileReportedHourly: cron mails whatever a run prints, so
// a logfile that cannot be opened is said at most once an hour; the lines
// go to a fallback log next to the state file meanwhile.
func TestUnopenableLogfileReportedHourly(t *testing.T) {
	dir := t.TempDir()
	// A regular file where the log's directory should be: unopenable even
	// for root, which the tests run as here.
	writeFile(t, dir, "blocker", "", 0o600)
	s := &config.Settings{}
	s.General.LogFile = filepath.Join(dir, "blocker", "checker.log")
	s.General.StateFile = filepath.Join(dir, "state", "checker.state")
	fallback := filepath.Join(dir, "state", "checker-fallback.log")

	start := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	steps := []struct {
		name    string
		at      time.Duration
		verbose bool
		report  bool
	}{
		{"first run reports", 0, false, true},
		{"a minute later: quiet", time.Minute, false, false},
		{"59 minutes later: quiet", 59 * time.Minute, false, false},
		{"-v always says it", 59*time.Minute + 30*time.Second, true, true},
		{"an hour after the report: again", 61 * time.Minute, false, true},
		{"right after: quiet", 62 * time.Minute, false, false},
		{"clock stepped back: reports rather than stays silent", -time.Hour, false, true},
	}
	for i, st := range steps {
		var errb bytes.Buffer
		now := start.Add(st.at)
		g := &globalOptions{stderr: &errb, verbose: st.verbose, now: func() time.Time { return now }}
		log, closeLog := g.logger(s)
		log.Error("a run problem", "step", i)
		closeLog()
		got := errb.String()
		reported := strings.Contains(got, "cannot open logfile")
		if reported != st.report {
			t.Fatalf("%s: reported %v, want %v; stderr:\n%s", st.name, reported, st.report, got)
		}
		if !st.verbose {
			if st.report && (strings.Count(got, "\n") != 1 || !strings.Contains(got, fallback) || !strings.Contains(got, s.General.LogFile)) {
				t.Errorf("%s: want one line naming the logfile and the fallback:\n%s", st.name, got)
			}
			if !st.report && got != "" {
				t.Errorf("%s: stderr must stay empty (cron mails it):\n%s", st.name, got)
			}
			if lines := readString(t, fallback); !strings.Contains(lines, "a run problem") || !strings.Contains(lines, "step="+string(rune('0'+i))) {
				t.Errorf("%s: the log line is not in the fallback log:\n%s", st.name, lines)
			}
		} else if !strings.Contains(got, "a run problem") {
			t.Errorf("%s: with -v the lines go to stderr:\n%s", st.name, got)
		}
	}

	// The last report was at start-1h. Once the logfile works again, a new
	// failure within that hour is news at once.
	if err := os.Remove(filepath.Join(dir, "blocker")); err != nil {
		t.Fatal(err)
	}
	run := func(at time.Duration) string {
		var errb bytes.Buffer
		now := start.Add(at)
		g := &globalOptions{stderr: &errb, now: func() time.Time { return now }}
		log, closeLog := g.logger(s)
		log.Error("logged", "at", at)
		closeLog()
		return errb.String()
	}
	if got := run(-59 * time.Minute); got != "" || !strings.Contains(readString(t, s.General.LogFile), "logged") {
		t.Fatalf("working logfile: stderr %q, log %q", got, readString(t, s.General.LogFile))
	}
	if err := os.RemoveAll(filepath.Join(dir, "blocker")); err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, "blocker", "", 0o600)
	if got := run(-58 * time.Minute); !strings.Contains(got, "cannot open logfile") {
		t.Errorf("a new failure after the log worked again must be reported at once: %q", got)
	}
}

func TestFallbackLogCreatesStateDirPrivate(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "blocker", "", 0o600)
	s := &config.Settings{}
	s.General.LogFile = filepath.Join(dir, "blocker", "checker.log")
	s.General.StateFile = filepath.Join(dir, "state", "checker.state")
	g := &globalOptions{stderr: &bytes.Buffer{}}
	_, closeLog := g.logger(s)
	closeLog()
	fi, err := os.Stat(filepath.Join(dir, "state"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("state directory created with mode %04o, want 0700 (it holds the state)", fi.Mode().Perm())
	}
}

// TestRootCreatedLogBelongsToDirOwner: `sudo checker status` creating the
// log must not leave a root-owned file the service user cannot append to.
func TestRootCreatedLogBelongsToDirOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("only root creates files for others")
	}
	dir := filepath.Join(t.TempDir(), "log")
	if err := os.Mkdir(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	const uid, gid = 54321, 54322 // no such user is needed to own a file
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatal(err)
	}
	f, err := openLog(filepath.Join(dir, "checker.log"), 0o755)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	fi, err := os.Stat(filepath.Join(dir, "checker.log"))
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if st.Uid != uid || st.Gid != gid || fi.Mode().Perm() != 0o600 {
		t.Errorf("log owned by %d:%d mode %04o, want %d:%d 0600", st.Uid, st.Gid, fi.Mode().Perm(), uid, gid)
	}
}

package jobs_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"checker/config"
	"checker/jobs"
)

// TestMain lets the test binary stand in for the checker binary: run as
// "__supervise …" it is the command supervisor, run as "__runjob …" it is a
// checker process running one command job (which the tests SIGKILL).
func TestMain(m *testing.M) {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "__supervise":
			os.Exit(superviseMain(os.Args[2:]))
		case "__runjob":
			os.Exit(runJobMain(os.Args[2:]))
		}
	}
	os.Exit(m.Run())
}

// superviseMain is what checker's hidden supervise command does.
func superviseMain(args []string) int {
	fs := flag.NewFlagSet("__supervise", flag.ContinueOnError)
	parent := fs.Int("parent", 0, "")
	timeout := fs.Duration("timeout", 0, "")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	return jobs.Supervise(*parent, *timeout, fs.Args(), os.NewFile(3, "status"), os.Stderr)
}

// runJobMain runs one shell command job under the supervisor with the
// given timeout and prints its result line.
func runJobMain(args []string) int {
	timeout, err := time.ParseDuration(args[0])
	if err != nil {
		return 2
	}
	c := &jobs.Command{Line: args[1], Shell: true}
	if err := c.Validate(); err != nil {
		return 2
	}
	env := &jobs.Env{Supervisor: supervisorArgv()}
	r := (&jobs.Job{Name: "test", Spec: c, Timeout: timeout}).Run(context.Background(), env)
	fmt.Println(r.Line())
	return 0
}

// supervisorArgv runs the supervisor from this test binary.
func supervisorArgv() []string { return []string{"/proc/self/exe", "__supervise"} }

// commandModes runs each command test directly and under the supervisor.
var commandModes = []struct {
	name string
	env  func() *jobs.Env
}{
	{"direct", func() *jobs.Env { return &jobs.Env{} }},
	{"supervised", func() *jobs.Env { return &jobs.Env{Supervisor: supervisorArgv()} }},
}

// runCommand runs c as a job in env (made fresh) with the timeout.
func runCommand(t *testing.T, c *jobs.Command, env func() *jobs.Env, timeout time.Duration) jobs.Result {
	t.Helper()
	e := env()
	t.Cleanup(func() { e.Close() })
	return runJob(t, validated(t, c), e, timeout)
}

// TestCommandPluginOutput runs testdata/plugin.sh in every output shape and
// exit status and checks how its result is read.
func TestCommandPluginOutput(t *testing.T) {
	plugin, err := filepath.Abs("testdata/plugin.sh")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		shape    string
		status   jobs.Status
		message  string // exact, or with a leading "~" a part of it
		perfdata string
		long     string
		detail   string // a part of Detail, if not empty
	}{
		{"disk-ok", jobs.OK, "free space: / 80399MiB (86% inode=97%);", "/=13487833088B;216442024755;243497277849;0;270552530944", "", ""},
		{"procs-warning", jobs.Warning, "76 processes", "procs=76;1;;0;", "", ""},
		{"critical-bare", jobs.Critical, "disk full", "", "", ""},
		{"unknown-colon", jobs.Unknown, "cannot read /proc/meminfo", "", "", ""},
		{"long-output", jobs.OK, "HTTP/1.1 200 OK - 512 bytes", "", "first detail line\nsecond detail line", ""},
		{"multiline-perfdata", jobs.Warning, "/ is 91% full", "root=91%;80;90 var=40%;80;90 boot=10%;80;90", "/ 91% used\n/var 40% used", ""},
		{"status-disagrees", jobs.Critical, "DISK WARNING - / is 91% full", "", "", ""},
		{"doubled-prefix", jobs.Critical, "free space: / 1MiB (0% inode=97%);", "/=1B;2;3;0;4", "", ""},
		{"three-word-service", jobs.Critical, "Socket timeout after 10 seconds.", "", "", ""},
		{"lowercase-service", jobs.OK, "backup ok - 3 files", "", "", ""},
		{"status-word-only", jobs.OK, "OK", "", "", ""},
		{"crlf", jobs.OK, "fine", "", "long line", ""},
		{"empty-critical", jobs.Critical, "~plugin.sh exited 2", "", "", ""},
		{"empty-ok", jobs.OK, "~plugin.sh exited 0", "", "", ""},
		{"stderr-only", jobs.Warning, "oops: no such device", "", "", "oops: no such device"},
		{"stdout-and-stderr", jobs.OK, "load average: 0.1", "", "", "warning: deprecated option"},
		{"huge", jobs.OK, "a lot to say", "", "~xxxxxxxx", "Output cut at 64 KiB"},
		{"exit4", jobs.Unknown, "something odd (exit status 4)", "", "", ""},
		{"exit127", jobs.Unknown, "sh: check_nothing: not found (exit status 127)", "", "", ""},
		{"exit255", jobs.Unknown, "~plugin.sh exit status 255", "", "", ""},
		// The status word disagrees with the status, so it stays.
		{"signal", jobs.Unknown, "DISK OK - about to die (killed by signal 15 (terminated))", "", "", ""},
		{"invalid-utf8", jobs.OK, "caf\uFFFD", "t=1", "", ""},
		// Terminal escapes from a plugin are escaped, line breaks and
		// tabs of the long output kept.
		{"control-chars", jobs.Critical, `5.7.1 \x1b]0;TITLE\x07 rejected`, "", "\tindented \\x1b[31mred", ""},
	}
	for _, mode := range commandModes {
		t.Run(mode.name, func(t *testing.T) {
			for _, tt := range tests {
				t.Run(tt.shape, func(t *testing.T) {
					r := runCommand(t, &jobs.Command{Argv: []string{plugin, tt.shape}}, mode.env, 10*time.Second)
					wantStatus(t, r, tt.status)
					if want, ok := strings.CutPrefix(tt.message, "~"); ok {
						if !strings.Contains(r.Message, want) {
							t.Errorf("message %q does not contain %q", r.Message, want)
						}
					} else if r.Message != tt.message {
						t.Errorf("message %q, want %q", r.Message, tt.message)
					}
					if r.Perfdata != tt.perfdata {
						t.Errorf("perfdata %q, want %q", r.Perfdata, tt.perfdata)
					}
					if want, ok := strings.CutPrefix(tt.long, "~"); ok {
						if !strings.Contains(r.LongOutput, want) {
							t.Errorf("long output %.80q… does not contain %q", r.LongOutput, want)
						}
					} else if r.LongOutput != tt.long {
						t.Errorf("long output %q, want %q", r.LongOutput, tt.long)
					}
					if !strings.Contains(r.Detail, tt.detail) {
						t.Errorf("detail %q does not contain %q", r.Detail, tt.detail)
					}
					if strings.Contains(r.Message, "|") || strings.Contains(r.Message, "\n") {
						t.Errorf("message %q holds perfdata or more than one line", r.Message)
					}
				})
			}
		})
	}
}

// TestCommandHugeOutputIsCapped: of 300 kB the job keeps 64 KiB, says so,
// and the writer is not blocked by the cap.
func TestCommandHugeOutputIsCapped(t *testing.T) {
	plugin, _ := filepath.Abs("testdata/plugin.sh")
	r := runCommand(t, &jobs.Command{Argv: []string{plugin, "huge"}}, commandModes[0].env, 10*time.Second)
	wantStatus(t, r, jobs.OK)
	if n := len("OK - a lot to say\n") + len(r.LongOutput); n > 64<<10 {
		t.Errorf("kept %d bytes of output, want at most %d", n, 64<<10)
	}
	if strings.Contains(r.LongOutput, "END") {
		t.Error("output beyond the cap was kept")
	}
}

func TestCommandShell(t *testing.T) {
	c := validated(t, &jobs.Command{Line: `v=$(echo shell); echo "via $v" | tr a-z A-Z; exit 1`, Shell: true})
	r := runJob(t, c, nil, 5*time.Second)
	wantStatus(t, r, jobs.Warning)
	if r.Message != "VIA SHELL" {
		t.Errorf("message %q", r.Message)
	}

	// Without shell = yes the same characters are plain arguments.
	c = validated(t, &jobs.Command{Line: `echo $HOME ; x`})
	r = runJob(t, c, nil, 5*time.Second)
	wantStatus(t, r, jobs.OK)
	if r.Message != "$HOME ; x" {
		t.Errorf("message %q, want the arguments echoed verbatim", r.Message)
	}
}

func TestCommandArgv(t *testing.T) {
	c := validated(t, &jobs.Command{Argv: []string{"echo", "a b"}})
	r := runJob(t, c, nil, 5*time.Second)
	wantStatus(t, r, jobs.OK)
	if r.Message != "a b" {
		t.Errorf("message %q", r.Message)
	}
}

func TestCommandNotFound(t *testing.T) {
	for _, mode := range commandModes {
		t.Run(mode.name, func(t *testing.T) {
			r := runCommand(t, &jobs.Command{Line: "/nonexistent/check_nothing -w 1"}, mode.env, 5*time.Second)
			wantStatus(t, r, jobs.Unknown)
			if !strings.Contains(r.Message, "cannot run") || !strings.Contains(r.Message, "/nonexistent/check_nothing") {
				t.Errorf("message %q", r.Message)
			}
		})
	}
}

func TestCommandValidate(t *testing.T) {
	for _, c := range []*jobs.Command{{Line: ""}, {Line: "  "}, {Line: "  ", Shell: true}, {Line: "echo 'unclosed"}} {
		err := c.Validate()
		if ke, ok := err.(*jobs.KeyError); !ok || ke.Key != "command" {
			t.Errorf("Validate(%q) = %v, want a KeyError for command", c.Line, err)
		}
	}
}

// TestCommandEnvironment: a job sees checker's environment without any
// CHECKER_* variable and without a variable holding the mail password.
func TestCommandEnvironment(t *testing.T) {
	t.Setenv("CHECKER_EMAIL_PASS", "s3cret-from-env")
	t.Setenv("CHECKER_CONFIG", "/etc/checker/settings.cfg")
	t.Setenv("checker_lower", "x")
	t.Setenv("SMTP_PASSWORD", "s3cret-in-file")
	t.Setenv("KEEP_ME", "kept")
	settings := &config.Settings{}
	settings.Email.Pass = "s3cret-in-file"
	for _, mode := range commandModes {
		t.Run(mode.name, func(t *testing.T) {
			env := func() *jobs.Env {
				e := mode.env()
				e.Settings = settings
				return e
			}
			r := runCommand(t, &jobs.Command{Line: "env"}, env, 5*time.Second)
			wantStatus(t, r, jobs.OK)
			all := r.Message + "\n" + r.LongOutput
			for _, banned := range []string{"CHECKER_", "checker_lower", "s3cret"} {
				if strings.Contains(all, banned) {
					t.Errorf("the job's environment holds %q:\n%s", banned, all)
				}
			}
			if !strings.Contains(all, "KEEP_ME=kept") || !strings.Contains(all, "PATH=") {
				t.Errorf("the job's environment lost ordinary variables:\n%s", all)
			}
		})
	}
}

// TestCommandTimeoutKillsGroup runs a shell that starts a background child
// and waits on a foreground one; at the timeout all of them must die.
func TestCommandTimeoutKillsGroup(t *testing.T) {
	for _, mode := range commandModes {
		t.Run(mode.name, func(t *testing.T) {
			pidFile := filepath.Join(t.TempDir(), "pid")
			c := &jobs.Command{Line: recordPgid + pidFile + "; sleep 30 & sleep 30", Shell: true}
			r := runCommand(t, c, mode.env, 300*time.Millisecond)
			wantStatus(t, r, jobs.Critical)
			// The check's own message, or Run's if the check overran its grace.
			if !strings.Contains(r.Message, "killed at the timeout") && !strings.Contains(r.Message, "timed out") {
				t.Errorf("message %q does not mention the timeout", r.Message)
			}
			waitGroupGone(t, readPgid(t, pidFile, time.Second), hangGuard)
		})
	}
}

// TestCommandLeftoversKilled: what a command leaves running in its group
// when it exits is killed then, so the next run cannot find a second copy.
func TestCommandLeftoversKilled(t *testing.T) {
	for _, mode := range commandModes {
		t.Run(mode.name, func(t *testing.T) {
			pidFile := filepath.Join(t.TempDir(), "pid")
			c := &jobs.Command{Line: recordPgid + pidFile + "; echo started; sleep 30 &", Shell: true}
			r := runCommand(t, c, mode.env, 10*time.Second)
			wantStatus(t, r, jobs.OK)
			if r.Message != "started" {
				t.Errorf("message %q", r.Message)
			}
			waitGroupGone(t, readPgid(t, pidFile, time.Second), hangGuard)
		})
	}
}

// TestCommandSIGKILLOfChecker: a process running a command job under the
// supervisor is killed with SIGKILL; the job's whole process group (a shell,
// a background and a foreground child) must be gone soon after, long
// before the job's timeout.
func TestCommandSIGKILLOfChecker(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	runner := exec.CommandContext(ctx, "/proc/self/exe", "__runjob", "60s", "sleep 100 & sleep 100 & "+recordPgid+pidFile+"; wait")
	runner.Stderr = os.Stderr
	if err := runner.Start(); err != nil {
		t.Fatal(err)
	}
	pgid := readPgid(t, pidFile, hangGuard)
	if len(liveInGroup(t, pgid)) < 4 {
		t.Fatalf("want the supervisor, the shell and two sleeps in group %d, have %q", pgid, liveInGroup(t, pgid))
	}
	if err := runner.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = runner.Wait()
	waitGroupGone(t, pgid, hangGuard)
}

// TestSupervisorWatchesParent: a supervisor whose parent is not the pid it
// was given (its checker died before it could arm the death signal) kills
// the job at once.
func TestSupervisorWatchesParent(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// 1 is never the test's pid: the supervisor must take its parent as gone.
	sup := exec.CommandContext(ctx, "/proc/self/exe", "__supervise", "--parent", "1", "--", "/bin/sh", "-c", recordPgid+pidFile+"; sleep 100")
	sup.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := sup.Start(); err != nil {
		t.Fatal(err)
	}
	err := sup.Wait()
	if ctx.Err() != nil {
		t.Fatal("the supervisor ran its job although its parent was not the one given")
	}
	if ee, ok := err.(*exec.ExitError); !ok || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Errorf("supervisor ended with %v, want killed with its group", err)
	}
	waitGroupGone(t, sup.Process.Pid, hangGuard)
}

// TestSupervisorRefusesForeignGroup: run by hand in someone else's process
// group, the supervisor refuses rather than kill that group.
func TestSupervisorRefusesForeignGroup(t *testing.T) {
	out, err := exec.Command("/proc/self/exe", "__supervise", "--parent", strconv.Itoa(os.Getpid()), "--", "/bin/true").CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || !strings.Contains(string(out), "lead its own process group") {
		t.Errorf("got %v, %q; want exit 2 saying the supervisor must lead its group", err, out)
	}
}

// recordPgid, followed by a path, is a shell command that writes the
// shell's process group to the path.
const recordPgid = "cut -d' ' -f5 /proc/$$/stat > "

// readPgid waits (bounded) for a job's shell to write its process group to
// path (recordPgid) and returns it.
func readPgid(t *testing.T, path string, wait time.Duration) int {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		b, err := os.ReadFile(path)
		if pgid, perr := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && perr == nil {
			return pgid
		}
		if time.Now().After(deadline) {
			t.Fatalf("the job did not record its process group in %s", path)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitGroupGone waits, at most wait, until no live process is left in
// group pgid. SIGKILL is delivered at once, but a dying process may linger
// briefly before it is a zombie.
func waitGroupGone(t *testing.T, pgid int, wait time.Duration) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		alive := liveInGroup(t, pgid)
		if len(alive) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("processes of group %d survived: %s", pgid, strings.Join(alive, "; "))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// liveInGroup lists the processes of group pgid that are not zombies, as
// "pid cmdline".
func liveInGroup(t *testing.T, pgid int) []string {
	t.Helper()
	dirs, err := filepath.Glob("/proc/[0-9]*")
	if err != nil {
		t.Fatal(err)
	}
	var alive []string
	for _, d := range dirs {
		stat, err := os.ReadFile(filepath.Join(d, "stat"))
		if err != nil {
			continue // exited meanwhile
		}
		// pid (comm) state ppid pgrp ...; comm may hold spaces and parens.
		s := string(stat)
		fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(fields) < 3 || fields[0] == "Z" || fields[2] != strconv.Itoa(pgid) {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join(d, "cmdline"))
		alive = append(alive, filepath.Base(d)+" "+strings.ReplaceAll(string(cmdline), "\x00", " "))
	}
	return alive
}

func TestSplitArgs(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"   ", nil},
		{"check_disk -w 10% -c 5%", []string{"check_disk", "-w", "10%", "-c", "5%"}},
		{"  a \t b\nc  ", []string{"a", "b", "c"}},
		{`echo 'a b'  "c d"`, []string{"echo", "a b", "c d"}},
		{`a'b c'd`, []string{"ab cd"}},
		{`'' ""`, []string{"", ""}},
		{`'it''s'`, []string{"its"}},
		{`"it's"`, []string{"it's"}},
		{`'say "hi"'`, []string{`say "hi"`}},
		{`"say \"hi\""`, []string{`say "hi"`}},
		{`a\ b`, []string{"a b"}},
		{`\'x\'`, []string{"'x'"}},
		{`'a\b'`, []string{`a\b`}},
		{`"a\\b"`, []string{`a\b`}},
		{`"a\$b"`, []string{`a$b`}},
		// Inside double quotes a backslash escapes only $ ` " \ and newline
		// (POSIX); elsewhere it stays, as in a regular expression.
		{`check_http -r "foo\.bar"`, []string{"check_http", "-r", `foo\.bar`}},
		{`$HOME ~ * ; | &&`, []string{"$HOME", "~", "*", ";", "|", "&&"}},
	}
	for _, tt := range tests {
		got, err := jobs.SplitArgs(tt.in)
		if err != nil {
			t.Errorf("SplitArgs(%q): %v", tt.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("SplitArgs(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}

	for _, tt := range []struct{ in, msg string }{
		{`echo 'a b`, "unclosed ' quote"},
		{`echo "a b`, `unclosed " quote`},
		{`echo "a\"`, `unclosed " quote`},
		{`echo a\`, "trailing backslash"},
	} {
		_, err := jobs.SplitArgs(tt.in)
		if err == nil || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("SplitArgs(%q) error = %v, want one containing %q", tt.in, err, tt.msg)
		}
	}
}

// BenchmarkCommand runs /bin/true as a command job, directly and under the
// supervisor (here the test binary, whose package start-up is close to
// checker's): the difference is what the supervisor costs each job.
func BenchmarkCommand(b *testing.B) {
	for _, mode := range commandModes {
		b.Run(mode.name, func(b *testing.B) {
			env := mode.env()
			defer env.Close()
			c := &jobs.Command{Argv: []string{"/bin/true"}}
			if err := c.Validate(); err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				if r := c.Check(context.Background(), env); r.Status != jobs.OK {
					b.Fatal(r.Line())
				}
			}
		})
	}
}

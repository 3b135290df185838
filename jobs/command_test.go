package jobs_test

import (
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"checker/jobs"
)

func TestCommandExitStatus(t *testing.T) {
	tests := []struct {
		code int
		want jobs.Status
	}{
		{0, jobs.OK},
		{1, jobs.Warning},
		{2, jobs.Critical},
		{3, jobs.Unknown},
		{7, jobs.Critical},
	}
	for _, tt := range tests {
		t.Run(strconv.Itoa(tt.code), func(t *testing.T) {
			line := "sh -c 'echo \"DISK status " + strconv.Itoa(tt.code) + "\"; echo second line; exit " + strconv.Itoa(tt.code) + "'"
			r := runJob(t, validated(t, &jobs.Command{Line: line}), nil, 5*time.Second)
			wantStatus(t, r, tt.want)
			if want := "DISK status " + strconv.Itoa(tt.code); r.Message != want {
				t.Errorf("message %q, want %q", r.Message, want)
			}
			if !strings.Contains(r.Detail, "second line") {
				t.Errorf("detail %q does not hold the whole output", r.Detail)
			}
		})
	}
}

func TestCommandSilent(t *testing.T) {
	r := runJob(t, validated(t, &jobs.Command{Line: "sh -c 'exit 2'"}), nil, 5*time.Second)
	wantStatus(t, r, jobs.Critical)
	if !strings.Contains(r.Message, "exited 2") {
		t.Errorf("message %q does not give the exit status", r.Message)
	}
}

func TestCommandStderr(t *testing.T) {
	r := runJob(t, validated(t, &jobs.Command{Line: `sh -c "echo oops >&2; exit 1"`}), nil, 5*time.Second)
	wantStatus(t, r, jobs.Warning)
	if r.Message != "oops" {
		t.Errorf("message %q, want the stderr line", r.Message)
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
	c = validated(t, &jobs.Command{Line: `echo $HOME | x`})
	r = runJob(t, c, nil, 5*time.Second)
	wantStatus(t, r, jobs.OK)
	if r.Message != "$HOME | x" {
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
	c := validated(t, &jobs.Command{Line: "/nonexistent/check_nothing -w 1"})
	r := runJob(t, c, nil, 5*time.Second)
	wantStatus(t, r, jobs.Unknown)
	if !strings.Contains(r.Message, "cannot run") {
		t.Errorf("message %q", r.Message)
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

// TestCommandOutputCap checks that a command's output is kept only up to
// 64 KiB and that a command writing more is not blocked by the cap.
func TestCommandOutputCap(t *testing.T) {
	c := validated(t, &jobs.Command{Line: `head -c 300000 /dev/zero | tr '\0' x; echo; echo END`, Shell: true})
	r := runJob(t, c, nil, 5*time.Second)
	wantStatus(t, r, jobs.OK)
	if len(r.Detail) != 64<<10 {
		t.Errorf("kept %d bytes of output, want %d", len(r.Detail), 64<<10)
	}
	if strings.Contains(r.Detail, "END") {
		t.Error("output beyond the cap was kept")
	}
}

// TestCommandTimeoutKillsGroup runs a shell that starts a background child
// and waits on a foreground one; at the timeout both must die.
func TestCommandTimeoutKillsGroup(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("needs /proc")
	}
	pidFile := filepath.Join(t.TempDir(), "pid")
	c := validated(t, &jobs.Command{Line: "echo $$ > " + pidFile + "; sleep 30 & sleep 30", Shell: true})
	r := runJob(t, c, nil, 300*time.Millisecond)
	wantStatus(t, r, jobs.Critical)
	// The check's own message, or Run's if the check overran its grace.
	if !strings.Contains(r.Message, "killed at the timeout") && !strings.Contains(r.Message, "timed out") {
		t.Errorf("message %q does not mention the timeout", r.Message)
	}

	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatalf("the shell did not record its pid: %v", err)
	}
	pgid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	// SIGKILL is delivered at once, but a dying process may linger briefly
	// before it is a zombie; wait (bounded) until the group is empty.
	deadline := time.Now().Add(hangGuard)
	for {
		alive := liveInGroup(t, pgid)
		if len(alive) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("processes of group %d survived the timeout: %s", pgid, strings.Join(alive, "; "))
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

// TestCommandBackgroundChild checks that a command that exits 0 but leaves
// a child holding its output is still OK, not "cannot run".
func TestCommandBackgroundChild(t *testing.T) {
	c := validated(t, &jobs.Command{Line: "echo started; sleep 3 &", Shell: true})
	r := runJob(t, c, nil, 10*time.Second)
	wantStatus(t, r, jobs.OK)
	if r.Message != "started" {
		t.Errorf("message %q", r.Message)
	}
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

package e2e_test

// Command jobs through the real binary: what environment they get, and
// that none of their processes outlives a checker killed with SIGKILL.

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestCommandJobEnvironment: a command job that prints its environment
// shows no CHECKER_* variable and no variable holding the mail password,
// neither in `run`'s output nor in the state `run --record` saves.
func TestCommandJobEnvironment(t *testing.T) {
	const filePass = "hunter2-in-the-file"
	in := newInstance(t, `[general]
alertcontact = ops@example.test
[email]
nomail = yes
pass = `+filePass+`
[command:env]
command = env | sort | tr '\n' ' '
shell = yes
`)
	in.env = append(in.env,
		"CHECKER_EMAIL_PASS=hunter2-from-the-environment",
		"DATABASE_PASSWORD="+filePass, // the same secret under another name
		"VISIBLE_TO_JOBS=yes")
	for _, args := range [][]string{{"run", "command:env"}, {"run", "--json", "command:env"}, {"run", "--record", "command:env"}} {
		r := in.run(args...)
		if r.code != 0 || !strings.Contains(r.stdout, "VISIBLE_TO_JOBS=yes") || !strings.Contains(r.stdout, "PATH=") {
			t.Fatalf("checker %v: exit %d, want the job's environment in the output:\n%s%s", args, r.code, r.stdout, r.stderr)
		}
		for _, secret := range []string{"CHECKER_", "hunter2"} {
			if strings.Contains(r.stdout, secret) {
				t.Errorf("checker %v: the job saw %q:\n%s", args, secret, r.stdout)
			}
		}
	}
	st := in.state()
	j := st.Jobs["command:env"]
	if j == nil || !strings.Contains(j.LastMessage, "VISIBLE_TO_JOBS=yes") {
		t.Fatalf("state after run --record: %+v", j)
	}
	if strings.Contains(j.LastMessage, "hunter2") || strings.Contains(j.LastMessage, "CHECKER_") {
		t.Errorf("the state holds a secret: %q", j.LastMessage)
	}
}

// TestCommandJobKilledWithChecker kills checker with SIGKILL while a command
// job (a shell with a background and a foreground child) runs, in each
// command that runs command jobs. The job's process group must be gone
// long before the job's timeout: nothing is left for the next minute to
// start a second copy beside.
func TestCommandJobKilledWithChecker(t *testing.T) {
	for _, via := range []string{"cron", "run", "check"} {
		t.Run(via, func(t *testing.T) {
			t.Parallel()
			pgidFile := filepath.Join(t.TempDir(), "pgid")
			line := "sleep 100 & sleep 100 & cut -d' ' -f5 /proc/$$/stat > " + pgidFile + "; wait"
			in := newInstance(t, fmt.Sprintf(`[email]
nomail = yes
[command:sleepy]
command = %s
shell = yes
timeout = 60s
`, line))
			var cmd = in.cmdFor("cron", "minute")
			switch via {
			case "run":
				cmd = in.cmdFor("run", "command:sleepy")
			case "check":
				cmd = in.cmdFor("check", "command", "-t", "60", "--", "/bin/sh", "-c", line)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan struct{})
			go func() {
				_ = cmd.Wait()
				close(done)
			}()
			defer func() {
				_ = cmd.Process.Kill()
				<-done
			}()
			pgid := waitPgid(t, pgidFile, 20*time.Second)
			if alive := groupMembers(t, pgid); len(alive) < 3 {
				t.Fatalf("want the shell and two sleeps in group %d, have %q", pgid, alive)
			}
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			<-done
			// Far below the job's 60 s timeout: the group dies with checker.
			deadline := time.Now().Add(5 * time.Second)
			for alive := groupMembers(t, pgid); len(alive) > 0; alive = groupMembers(t, pgid) {
				if time.Now().After(deadline) {
					for _, a := range alive {
						if pid, err := strconv.Atoi(strings.Fields(a)[0]); err == nil {
							_ = syscall.Kill(pid, syscall.SIGKILL) // leave nothing behind
						}
					}
					t.Fatalf("5 s after checker was killed, processes of its job are still running: %q", alive)
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
}

// waitPgid waits (bounded) for a job to write its process group to path.
func waitPgid(t *testing.T, path string, wait time.Duration) int {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		b, err := os.ReadFile(path)
		if pgid, perr := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && perr == nil {
			return pgid
		}
		if time.Now().After(deadline) {
			t.Fatalf("the job did not record its process group in %s within %s", path, wait)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// groupMembers lists the live (not zombie) processes of group pgid as
// "pid cmdline".
func groupMembers(t *testing.T, pgid int) []string {
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

package e2e_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"checker/internal/mailtest"
	"checker/state"
)

// TestMigratedStateThroughBinary: the first run of this release on the JSON
// state of an earlier one keeps what that state held. A job that an
// invocation of the earlier release is still running is not started a
// second time; a notice queued long before goes out saying when it was
// first queued, as the thread's first mail; and the job's recovery answers
// that mail.
func TestMigratedStateThroughBinary(t *testing.T) {
	mail := mailtest.Start(t, mailtest.Options{})
	db := newTCPPort(t)
	db.down()
	web := newTCPPort(t)
	in := newInstance(t, fmt.Sprintf("[general]\nalertcontact = ops@example.test\nservername = migrated\n%s[tcp:db]\ntarget = %s\n[tcp:web]\ntarget = %s\n",
		mailSettings(mail), db.addr, web.addr))

	// An invocation of the earlier release, still running tcp:web.
	earlier := exec.CommandContext(t.Context(), "sleep", "600")
	if err := earlier.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		earlier.Process.Kill()
		earlier.Wait()
	})
	now := time.Now().UTC().Truncate(time.Second)
	at := func(d time.Duration) string { return now.Add(d).Format(time.RFC3339) }
	queued := now.Add(-3 * time.Hour)
	doc := fmt.Sprintf(`{"version":1,"jobs":{
"tcp:db":{"failing":true,"failures":4,"first_failure":%[1]q,"last_notified":%[2]q,"since":%[1]q,"last_slot":"old","last_run":%[2]q,"last_status":"CRITICAL","last_message":"refused"},
"tcp:web":{"since":%[1]q,"last_slot":"old","last_run":%[1]q,"last_status":"OK","last_message":"was up","running":{"pid":%[3]d,"started":%[4]q,"expires":%[5]q}}},
"outbox":[{"job":"tcp:db","kind":"failure","subject":"tcp:db is failing","body":"connection refused","to":["ops@example.test"],
"created":%[2]q,"status":"CRITICAL","thread":"t-db","first":true,"queued":%[6]q,"attempts":2,"last_error":"451 try later"}]}`,
		at(-4*time.Hour), at(-10*time.Minute), earlier.Process.Pid, at(-time.Minute), at(10*time.Minute), queued.Format(time.RFC3339))
	if err := os.WriteFile(in.statePath(), []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}

	in.cron("minute")
	if _, err := os.Stat(in.statePath() + ".json-migrated"); err != nil {
		t.Errorf("the JSON state was not kept aside: %v", err)
	}
	st := in.state()
	if j := st.Jobs["tcp:web"]; j == nil || j.LastMessage != "was up" || j.LastSlot != "old" {
		t.Errorf("tcp:web, claimed by a run still going, was started again: %+v", j)
	}
	if j := st.Jobs["tcp:db"]; j == nil || j.LastStatus != "CRITICAL" || j.Failures != 5 || j.Thread != "t-db" {
		t.Errorf("tcp:db after the first run: %+v", j)
	}
	msgs := mail.WaitReceived(t, 1, 10*time.Second)
	if len(msgs) != 1 || msgs[0].Subject == "" || !strings.Contains(msgs[0].Subject, "tcp:db is failing") {
		t.Fatalf("want the queued failure notice, got %v", mailsTo(msgs))
	}
	failure := msgs[0]
	wantQueued := "first queued at " + queued.Local().Format("2006-01-02 15:04:05 MST")
	if !strings.Contains(failure.Body, wantQueued) || !strings.Contains(failure.Body, "2 failed attempts") {
		t.Errorf("the failure mail does not say %q (and its earlier attempts):\n%s", wantQueued, failure.Body)
	}
	root := failure.Header.Get("Message-Id")
	if !strings.Contains(root, "checker.t.") {
		t.Errorf("the failure mail, first of its thread, has Message-ID %q", root)
	}

	// The earlier release's run ends; the job is run again, and tcp:db
	// recovers: its recovery answers the mail of before.
	earlier.Process.Kill()
	earlier.Wait()
	db.up()
	in.nextMinute()
	in.cron("minute")
	st = in.state()
	if j := st.Jobs["tcp:web"]; j == nil || j.LastStatus != "OK" || j.LastSlot == "old" {
		t.Errorf("tcp:web was not run once its claim was gone: %+v", j)
	}
	msgs = mail.WaitReceived(t, 2, 10*time.Second)
	if len(msgs) != 2 {
		t.Fatalf("want the recovery mail, got %v", mailsTo(msgs))
	}
	recovery := msgs[1]
	if !strings.Contains(recovery.Subject, "tcp:db") || recovery.Header.Get("In-Reply-To") != root || !strings.Contains(recovery.Header.Get("References"), root) {
		t.Errorf("the recovery (subject %q) does not answer %s: In-Reply-To %q, References %q",
			recovery.Subject, root, recovery.Header.Get("In-Reply-To"), recovery.Header.Get("References"))
	}
}

// TestEmptyStateFileThroughBinary: a 0-byte state file lost every streak:
// a reader leaves it alone, and the next cron run moves it aside, reports it
// by mail and goes on with a fresh state.
func TestEmptyStateFileThroughBinary(t *testing.T) {
	mail := mailtest.Start(t, mailtest.Options{})
	db := newTCPPort(t)
	in := newInstance(t, fmt.Sprintf("[general]\nalertcontact = ops@example.test\nservername = empty-state\n%s[tcp:db]\ntarget = %s\n", mailSettings(mail), db.addr))
	in.cron("minute")
	in.nextMinute()
	if err := os.Truncate(in.statePath(), 0); err != nil {
		t.Fatal(err)
	}

	r := in.run("status")
	if fi, err := os.Stat(in.statePath()); err != nil || fi.Size() != 0 {
		t.Errorf("status changed the empty state file (%v)", err)
	}
	if aside, _ := filepath.Glob(in.statePath() + ".corrupt-*"); len(aside) != 0 || r.code == 77 || strings.Contains(r.stderr, "panic") {
		t.Errorf("status on an empty state file: exit %d, moved aside %v\n%s", r.code, aside, r.stderr)
	}

	t0 := time.Now()
	in.cron("minute")
	aside, _ := filepath.Glob(in.statePath() + ".corrupt-*")
	if len(aside) != 1 {
		t.Fatalf("files moved aside: %v, want one", aside)
	}
	if fi, err := os.Stat(aside[0]); err != nil || fi.Size() != 0 {
		t.Errorf("the file moved aside is not the empty file (%v)", err)
	}
	if j := in.state().Jobs["tcp:db"]; j == nil || j.LastStatus != "OK" || j.LastRun.Before(t0) {
		t.Errorf("the run did not go on: tcp:db = %+v", j)
	}
	msgs := mail.WaitReceived(t, 1, 10*time.Second)
	if len(msgs) != 1 || !strings.Contains(msgs[0].Subject, "state file was corrupt") ||
		!strings.Contains(msgs[0].Body, "empty") || !strings.Contains(msgs[0].Body, filepath.Base(aside[0])) {
		t.Fatalf("want one mail reporting the empty state file and where it went, got %v", mailsTo(msgs))
	}
}

// TestHeartbeatPublishAsRootKeepsOwner: a root backup script ends with
// `checker heartbeat publish --once` against the local store of a checker
// that runs as another user. The store stays that user's: the directory and
// file root makes belong to the user, whose next cron run reads the
// heartbeat instead of failing heartbeat:store on "permission denied".
func TestHeartbeatPublishAsRootKeepsOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	const nobody = 65534
	base := t.TempDir()
	for _, d := range []string{base, filepath.Dir(base)} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// A copy of the binary the other user may run.
	bin := filepath.Join(base, "checker")
	copyFile(t, checkerBin, bin, 0o755)
	home := filepath.Join(base, "svc")
	if err := os.Mkdir(home, 0o700); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(home, "settings.cfg")
	settings := fmt.Sprintf("[general]\nstatefile = %s\n[email]\nnomail = yes\n[heartbeat]\nservices = svc1\n", filepath.Join(home, "checker.state"))
	if err := os.WriteFile(cfg, []byte(settings), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{home, cfg} {
		if err := os.Chown(p, nobody, nobody); err != nil {
			t.Fatal(err)
		}
	}
	run := func(asNobody bool, args ...string) (string, int) {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, append([]string{"-f", cfg}, args...)...)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + home}
		cmd.Dir = home
		if asNobody {
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
		}
		out, err := cmd.CombinedOutput()
		if ee, ok := err.(*exec.ExitError); ok {
			return string(out), ee.ExitCode()
		} else if err != nil {
			t.Fatalf("checker %v: %v", args, err)
		}
		return string(out), 0
	}

	// The first publish makes the store directory; a second replaces the file.
	for i := range 2 {
		if out, code := run(false, "heartbeat", "publish", "--service", "svc1", "--once"); code != 0 {
			t.Fatalf("publish %d as root: exit %d\n%s", i+1, code, out)
		}
		for _, p := range []string{filepath.Join(home, "heartbeat"), filepath.Join(home, "heartbeat", "svc1.json")} {
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if st := fi.Sys().(*syscall.Stat_t); st.Uid != nobody || st.Gid != nobody {
				t.Errorf("publish %d: %s is owned by %d:%d, want the store's owner %d:%d", i+1, p, st.Uid, st.Gid, nobody, nobody)
			}
		}
	}

	out, code := run(true, "cron", "minute")
	if code != 0 || out != "" {
		t.Fatalf("cron as the store's owner: exit %d\n%s", code, out)
	}
	snap, err := (&state.Store{Path: filepath.Join(home, "checker.state")}).Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if j := snap.Jobs["heartbeat:svc1"]; j == nil || j.LastStatus != "OK" {
		t.Errorf("heartbeat:svc1 as the store's owner: %+v", j)
	}
	if j := snap.Jobs["heartbeat:store"]; j != nil && j.LastStatus != "OK" {
		t.Errorf("heartbeat:store as the store's owner: %+v", j)
	}
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
}

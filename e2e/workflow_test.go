package e2e_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"checker/internal/mailtest"
)

// TestOperatorWorkflow: silence, unsilence, acknowledge and a maintenance
// window through the real binary, with the mails a server received.
func TestOperatorWorkflow(t *testing.T) {
	mail := mailtest.Start(t, mailtest.Options{})
	db := newTCPPort(t)
	db.down()
	settings := func(window string) string {
		return fmt.Sprintf("[general]\nalertcontact = ops@example.test\nservername = ops\n%s[tcp:db]\ntarget = %s\nnotify = every\nrecovery = yes\n%s",
			mailSettings(mail), db.addr, window)
	}
	in := newInstance(t, settings(""))
	seen := 0
	runs := func(n int) []string {
		t.Helper()
		for i := 0; i < n; i++ {
			in.nextMinute()
			in.cron("minute")
		}
		return newMails(t, mail, &seen)
	}

	// Silenced: the job runs and records, nothing is sent.
	r := in.run("silence", "tcp:db", "--for", "1h", "--reason", "database upgrade")
	if r.code != 0 || !strings.Contains(r.stdout, "silenced tcp:db (1 job) until") {
		t.Fatalf("silence: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if got := runs(3); len(got) != 0 {
		t.Fatalf("while silenced: mails %q", got)
	}
	r = in.run("status", "tcp:db")
	if r.code != 1 || !strings.Contains(r.stdout, "silenced until") || !strings.Contains(r.stdout, "database upgrade") || !strings.Contains(r.stdout, "notice held since") {
		t.Errorf("status while silenced: exit %d\n%s", r.code, r.stdout)
	}
	if j := in.state().Jobs["tcp:db"]; j == nil || !j.Failing || j.Failures != 3 {
		t.Errorf("silenced job did not record its runs: %+v", j)
	}

	// Lifted while still failing: one notice, not a backlog of three.
	if r := in.run("unsilence", "tcp:db"); r.code != 0 {
		t.Fatalf("unsilence: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if got := runs(1); len(got) != 1 || !strings.Contains(got[0], "tcp:db is failing") {
		t.Fatalf("after unsilence: mails %q; want the one held notice", got)
	}

	// Acknowledged: the reminders (notify = every) stop; the recovery
	// still goes out; the next outage notifies again.
	if r := in.run("ack", "tcp:db", "--reason", "on it"); r.code != 0 || !strings.Contains(r.stdout, "acknowledged tcp:db") {
		t.Fatalf("ack: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if got := runs(3); len(got) != 0 {
		t.Fatalf("acknowledged: mails %q; want no reminders", got)
	}
	if r := in.run("status"); !strings.Contains(r.stdout, "acknowledged at") || !strings.Contains(r.stdout, "(on it)") {
		t.Errorf("status does not show the acknowledgement:\n%s", r.stdout)
	}
	db.up()
	if got := runs(1); len(got) != 1 || !strings.Contains(got[0], "tcp:db recovered") {
		t.Fatalf("recovery of an acknowledged outage: mails %q", got)
	}
	db.down()
	if got := runs(1); len(got) != 1 || !strings.Contains(got[0], "tcp:db is failing") {
		t.Fatalf("the next outage: mails %q; want it notified again", got)
	}
	db.up()
	if got := runs(1); len(got) != 1 {
		t.Fatalf("recovered: mails %q", got)
	}

	// A maintenance window open now: an outage inside it sends nothing.
	open := fmt.Sprintf("[maintenance:upgrade]\njobs = tcp:*\nstart = %s\nduration = 1h\ntimezone = UTC\n", time.Now().UTC().Add(-time.Minute).Format("2006-01-02 15:04"))
	if err := os.WriteFile(in.cfg, []byte(settings(open)), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := in.run("config", "validate"); r.code != 0 {
		t.Fatalf("config validate with the window: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	db.down()
	if got := runs(2); len(got) != 0 {
		t.Fatalf("inside the window: mails %q", got)
	}
	if r := in.run("status"); !strings.Contains(r.stdout, "in maintenance window upgrade") {
		t.Errorf("status does not show the window:\n%s", r.stdout)
	}
	// The window ends (here: it is moved into the past) while the job
	// still fails: one notice, then the usual rhythm (every run).
	closed := strings.Replace(open, "duration = 1h", "duration = 30s", 1)
	if err := os.WriteFile(in.cfg, []byte(settings(closed)), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := runs(1); len(got) != 1 || !strings.Contains(got[0], "tcp:db is failing") {
		t.Fatalf("after the window: mails %q; want one notice", got)
	}

	// All of it is in the history.
	r = in.run("history", "tcp:db", "--since", "1h")
	for _, kind := range []string{"silenced", "held", "unsilenced", "acked", "recovered", "failing", "delivered"} {
		if !strings.Contains(r.stdout, kind) {
			t.Errorf("history lacks %q:\n%s", kind, r.stdout)
		}
	}
}

// TestHistoryOfNoMail: with nomail the notices are printed, and the
// history says so instead of calling them delivered.
func TestHistoryOfNoMail(t *testing.T) {
	db := newTCPPort(t)
	db.down()
	in := newInstance(t, fmt.Sprintf("[general]\nalertcontact = ops@example.test\n[email]\nnomail = yes\n[tcp:db]\ntarget = %s\n", db.addr))
	in.nextMinute()
	r := in.run("cron", "minute")
	if r.code != 0 || !strings.Contains(r.stdout, "mail not sent (nomail)") {
		t.Fatalf("cron with nomail: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = in.run("history", "--json")
	if r.code != 0 || !strings.Contains(r.stdout, `"kind": "printed"`) || strings.Contains(r.stdout, `"kind": "delivered"`) {
		t.Errorf("history of a nomail run: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// TestRunRecordRemembersDiscovered: a service first seen by `run --record`
// is remembered like one cron saw, so its vanishing alerts.
func TestRunRecordRemembersDiscovered(t *testing.T) {
	in := newInstance(t, "[general]\nalertcontact = ops@example.test\n[email]\nnomail = yes\n[heartbeat]\ndiscover = yes\n")
	if r := in.run("heartbeat", "publish", "--service", "backup", "--once"); r.code != 0 {
		t.Fatalf("publish: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := in.run("run", "--record", "heartbeat:*"); r.code != 0 || !strings.Contains(r.stdout, "heartbeat:backup") {
		t.Fatalf("run --record: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if err := os.Remove(filepath.Join(in.dir, "heartbeat", "backup.json")); err != nil {
		t.Fatal(err)
	}
	in.nextMinute()
	r := in.run("cron", "minute")
	if r.code != 0 || !strings.Contains(r.stdout, "heartbeat:backup is failing") || !strings.Contains(r.stdout, "vanished") {
		t.Errorf("after the heartbeat vanished: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

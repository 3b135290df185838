package e2e_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"checker/internal/mailtest"
	"checker/state"
)

// TestPermanentRejection: one recipient of alertcontact does not exist
// (550 User unknown). The good recipient gets the hourly reminder hourly,
// not every minute, plus one notice that the other address is refused;
// the bad address is tried at most hourly; mail counts as healthy because
// mail does go out; status names the refused address. Once the settings
// drop the address, nothing is owed to it any more.
func TestPermanentRejection(t *testing.T) {
	mail := mailtest.Start(t, mailtest.Options{})
	mail.SetUnknownUsers("nobody@example.test")
	db := newTCPPort(t)
	db.down()
	settings := func(contacts string) string {
		return fmt.Sprintf("[general]\nalertcontact = %s\nservername = rejects\n%s[tcp:db]\ntarget = %s\nnotify = hour\n",
			contacts, mailSettings(mail), db.addr)
	}
	in := newInstance(t, settings("ops@example.test, nobody@example.test"))

	for run := 1; run <= 5; run++ {
		r := in.run("cron", "minute")
		if r.code != 0 || r.stdout != "" {
			t.Fatalf("run %d: exit %d\nstdout: %s\nstderr: %s", run, r.code, r.stdout, r.stderr)
		}
		if r.stderr != "" {
			t.Errorf("run %d: stderr %q; a refused recipient is not a broken mail path", run, r.stderr)
		}
		in.nextMinute()
	}
	time.Sleep(200 * time.Millisecond)
	got := mailsTo(mail.Received())
	want := []string{"tcp:db is failing", "mail to nobody@example.test is refused"}
	if len(got["ops@example.test"]) != 2 {
		t.Fatalf("ops got %q; want exactly the failure and the refusal notice", got["ops@example.test"])
	}
	for i, w := range want {
		if !strings.Contains(got["ops@example.test"][i], w) {
			t.Errorf("mail %d to ops: %q, want %q", i+1, got["ops@example.test"][i], w)
		}
	}
	if n := mail.RcptAttempts("nobody@example.test"); n != 1 {
		t.Errorf("the refused address was tried %d times in 5 runs, want once (then at most hourly)", n)
	}
	st := in.state()
	if !st.Mail.SendOK {
		t.Errorf("mail health %+v: a refused recipient must not make peers see MailProblem while mail goes out", st.Mail)
	}
	var refused []string
	for _, rc := range st.Recipients {
		if rc.Failing {
			refused = append(refused, rc.To)
			if !rc.Permanent || !strings.Contains(rc.LastError, "User unknown") {
				t.Errorf("recipient %+v; want refused permanently", rc)
			}
		}
	}
	if fmt.Sprint(refused) != "[nobody@example.test]" {
		t.Errorf("failing recipients %v; want nobody@ alone", refused)
	}
	r := in.run("status")
	if !strings.Contains(r.stdout, "Recipient nobody@example.test: refused permanently") {
		t.Errorf("status does not name the refused recipient:\n%s", r.stdout)
	}

	// The typo is fixed: the settings no longer name the address, so the
	// notice still owed to it is dropped, and it is never tried again.
	if err := os.WriteFile(in.cfg, []byte(settings("ops@example.test")), 0o600); err != nil {
		t.Fatal(err)
	}
	in.cron("hour")
	if n := mail.RcptAttempts("nobody@example.test"); n != 1 {
		t.Errorf("the removed address was tried again (%d attempts)", n)
	}
	if st := in.state(); len(st.Outbox) != 0 || len(st.Recipients) != 1 || st.Recipients[0].To != "ops@example.test" {
		t.Errorf("after the fix: outbox %+v, recipients %+v; want no notice, and ops alone known", st.Outbox, st.Recipients)
	}
}

// TestSIGTERMDuringCron: a cron run stopped with SIGTERM (shutdown, a
// supervisor) ends at once; the jobs it cut short are not results — no
// notice, their state untouched, their slot free for the next run — and
// what finished is saved.
func TestSIGTERMDuringCron(t *testing.T) {
	mail := mailtest.Start(t, mailtest.Options{})
	db := newTCPPort(t)
	db.down()
	dir := t.TempDir()
	stop := dir + "/stop"
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "[general]\nalertcontact = ops@example.test\nservername = sigterm\nlogfile = %s/checker.log\n%s[tcp:fast]\ntarget = %s\nnotify = every\n", dir, mailSettings(mail), db.addr)
	const slow = 20
	for i := 0; i < slow; i++ {
		fmt.Fprintf(&cfg, "[command:slow%02d]\nshell = yes\ncommand = test -e %s || sleep 30\ntimeout = 25s\nnotify = every\n", i, stop)
	}
	in := newInstance(t, cfg.String())

	cmd := in.cmdFor("cron", "minute")
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond) // the fast job is done; the slow ones sleep
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	took := time.Since(start)
	if err != nil || out.Len() != 0 {
		t.Errorf("cron after SIGTERM: %v, output %q; want a quiet exit 0", err, out.String())
	}
	if took > 5*time.Second {
		t.Errorf("cron took %s to stop after SIGTERM", took)
	}
	if logged, _ := os.ReadFile(dir + "/checker.log"); !strings.Contains(string(logged), "cron run stopped before its jobs finished") ||
		!strings.Contains(string(logged), fmt.Sprintf("cut_short=%d finished=1", slow)) {
		t.Errorf("the logfile does not say the run was cut short:\n%s", logged)
	}
	time.Sleep(300 * time.Millisecond)
	if n := len(mail.Received()); n != 0 {
		t.Errorf("%d mails sent by the stopped run: %v", n, mailsTo(mail.Received()))
	}
	st := in.state()
	for i := 0; i < slow; i++ {
		name := fmt.Sprintf("command:slow%02d", i)
		if j := st.Jobs[name]; j != nil && (j.LastSlot != "" || !j.LastRun.IsZero() || j.Failing) {
			t.Errorf("%s after SIGTERM: %+v; want no result, no claim, its slot free", name, j)
		}
	}
	if j := st.Jobs["tcp:fast"]; j == nil || j.LastStatus != "CRITICAL" || !j.Failing {
		t.Errorf("tcp:fast, which finished before the signal: %+v; want recorded", j)
	}
	if len(st.Outbox) != 1 || st.Outbox[0].Job != "tcp:fast" {
		t.Errorf("outbox %+v; want only tcp:fast's notice, for the next run", st.Outbox)
	}
	if !st.LastRun.Finished.IsZero() || len(st.Running) != 0 || len(st.Claims) != 0 {
		t.Errorf("last run %+v, running %+v: a stopped run is neither completed nor crashed", st.LastRun, st.Running)
	}
	if leftover := processesIn(t, stop); len(leftover) != 0 {
		t.Errorf("job processes left running after SIGTERM: %v", leftover)
	}

	// The next run runs the slow jobs (their slots are free) and delivers
	// the fast job's notice: one mail, nothing about the slow ones.
	if err := os.WriteFile(stop, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	in.cron("minute")
	msgs := mail.WaitReceived(t, 1, 10*time.Second)
	time.Sleep(300 * time.Millisecond)
	if n := len(mail.Received()); n != 1 || !strings.Contains(msgs[0].Subject, "tcp:fast is failing") {
		t.Errorf("after the next run: %v; want one mail, tcp:fast's", mailsTo(mail.Received()))
	}
	for name, j := range in.state().Jobs {
		if strings.HasPrefix(name, "command:") && j.LastStatus != "OK" {
			t.Errorf("%s in the next run: %+v", name, j)
		}
	}
}

// processesIn lists the pids of processes whose command line mentions s.
func processesIn(t *testing.T, s string) []string {
	t.Helper()
	entries, _ := os.ReadDir("/proc")
	var out []string
	for _, e := range entries {
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err == nil && strings.Contains(string(b), s) {
			out = append(out, e.Name())
		}
	}
	return out
}

// TestReminderNotHeldForRecipientsThatGotTheLast: with one address
// refused, the outbox keeps the outage's notice for it; the next reminder
// replaces that notice. To the address that got every mail on time the
// reminder is fresh: no "held back" note.
func TestReminderNotHeldForRecipientsThatGotTheLast(t *testing.T) {
	mail := mailtest.Start(t, mailtest.Options{})
	mail.SetUnknownUsers("nobody@example.test")
	db := newTCPPort(t)
	db.down()
	in := newInstance(t, fmt.Sprintf("[general]\nalertcontact = ops@example.test, nobody@example.test\nservername = rem\n%s[tcp:db]\ntarget = %s\nnotify = every\n",
		mailSettings(mail), db.addr))
	in.cron("minute")
	// Time passes: the notice still owed to the refused address was
	// queued two minutes ago.
	err := (&state.Store{Path: in.statePath()}).Update(context.Background(), func(tx *state.Tx) error {
		n, ok, err := tx.Notice("tcp:db", state.KindFailure)
		if err != nil || !ok {
			return fmt.Errorf("the notice owed to the refused address is not in the outbox (%v)", err)
		}
		n.Queued, n.Created = n.Queued.Add(-2*time.Minute), n.Created.Add(-2*time.Minute)
		return tx.PutNotice(&n)
	})
	if err != nil {
		t.Fatal(err)
	}
	in.nextMinute()
	in.cron("minute")
	time.Sleep(200 * time.Millisecond)
	reminders := 0
	for _, m := range mail.Received() {
		if !slices.Contains(m.To, "ops@example.test") {
			continue
		}
		if strings.Contains(m.Subject, "tcp:db is failing") {
			reminders++
		}
		if strings.Contains(m.Body, "Held back") {
			t.Errorf("a mail to the address that got every notice says it was held back:\n%s", m.Body)
		}
	}
	if reminders != 2 {
		t.Errorf("ops got %d failure notices, want 2 (notify = every)", reminders)
	}
}

package e2e_test

// Fault tests: the real binary killed while it saves, run twenty times at
// once, facing a mail server that refuses, stalls or drops the message, a
// state file that is garbage, and a full disk. What must hold: the state
// file is never lost or torn, no update is lost, every alert arrives
// exactly once, and each failure is reported. The SMTP "hang" mode needs
// a minute per run (the sender's timeout) and lives in
// faults_slow_test.go behind the "faults" build tag (make faults).

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"checker/internal/mailtest"
	"checker/state"
)

// killJobs is the size of the state the kill test saves: big enough that
// the save (encode, write, fsync, rename) is a window a random kill hits.
const killJobs = 3000

// seedState writes a state with n jobs that no section configures (cron
// keeps them), so that every save of the instance writes a big file.
func (in *instance) seedState(n int) {
	in.t.Helper()
	now := time.Now().Add(-time.Hour)
	err := (&state.Store{Path: in.statePath()}).Update(context.Background(), func(tx *state.Tx) error {
		for i := 0; i < n; i++ {
			j := state.Job{Since: now, LastRun: now, FirstRun: now, LastSlot: now.Format("2006-01-02T15:04"), LastStatus: "OK",
				LastMessage: fmt.Sprintf("GET https://host%05d.example.test/health: 200 OK in 1.23ms", i)}
			if err := tx.PutJob(fmt.Sprintf("http:site%05d[https://host%05d.example.test/health]", i, i), &j); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		in.t.Fatal(err)
	}
}

// cmdFor returns `checker -f CFG args…` set up like run's.
func (in *instance) cmdFor(args ...string) *exec.Cmd {
	cmd := exec.Command(checkerBin, append([]string{"-f", in.cfg}, args...)...)
	cmd.Env = in.env
	cmd.Dir = in.dir
	return cmd
}

// TestKillDuringWrites kills `cron minute` with SIGKILL hundreds of times.
// Two rounds in three are aimed: inotify reports when the run first writes
// the database, and the kill follows after a random part of the time a run
// spends writing. The third round kills at a random moment of the whole
// run. After every kill the database must pass its consistency check and
// hold every job: never torn, never reset.
func TestKillDuringWrites(t *testing.T) {
	const (
		rounds = 300
		budget = 45 * time.Second
	)
	in := newInstance(t, "[email]\nnomail = yes\n[command:noop]\ncommand = true\n")
	in.seedState(killJobs)
	in.cron("minute")
	w := watchDir(t, in.dir)

	// Calibrate: how long does an undisturbed run take, and how long from
	// its first write of the database to its last?
	var took, writing []time.Duration
	for i := 0; i < 5; i++ {
		in.nextMinute()
		w.drain()
		took = append(took, in.run("cron", "minute").took)
		if d, ok := w.writeTime(); ok {
			writing = append(writing, d)
		}
	}
	if len(writing) == 0 {
		t.Fatal("inotify saw no write during the calibration runs")
	}
	slices.Sort(took)
	slices.Sort(writing)
	runTime, writeWindow := took[len(took)/2], max(writing[len(writing)/2], time.Millisecond)
	t.Logf("an undisturbed run takes %s, writing the database %s (medians of 5)", runTime, writeWindow)

	var killedWriting, killedOther, finished, aimed int
	start := time.Now()
	round := 0
	store := &state.Store{Path: in.statePath()}
	for ; round < rounds && time.Since(start) < budget; round++ {
		in.nextMinute()
		w.drain()
		cmd := in.cmdFor("cron", "minute")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		hit := false
		if round%3 != 0 && w.waitWrite(5*time.Second) {
			aimed++
			hit = true
			time.Sleep(rand.N(writeWindow))
		} else {
			time.Sleep(rand.N(runTime * 11 / 10))
		}
		cmd.Process.Kill()
		if cmd.Wait() == nil {
			finished++
		} else if hit || w.wrote() {
			killedWriting++
		} else {
			killedOther++
		}
		if err := store.Check(context.Background()); err != nil {
			t.Fatalf("round %d: the database fails its check after a kill: %v", round, err)
		}
		st, err := store.Snapshot()
		if err != nil {
			t.Fatalf("round %d: the state cannot be read after a kill: %v", round, err)
		}
		if len(st.Jobs) != killJobs+1 {
			t.Fatalf("round %d: the state holds %d jobs after a kill, want %d", round, len(st.Jobs), killJobs+1)
		}
	}
	t.Logf("%d kills (%d aimed at the writes) in %s: %d while the run was writing, %d before it wrote, %d runs finished first",
		round, aimed, time.Since(start).Round(time.Millisecond), killedWriting, killedOther, finished)
	if round < 100 {
		t.Errorf("only %d kills within %s; want hundreds", round, budget)
	}
	if killedWriting < round/5 {
		t.Errorf("only %d of %d kills landed while the run wrote; the test did not exercise the writes", killedWriting, round)
	}

	// Whatever the kills left, the next run goes on from the last committed
	// state, and a reader sees it whole.
	in.nextMinute()
	in.cron("minute")
	st := in.state()
	if len(st.Jobs) != killJobs+1 || st.Jobs["command:noop"].LastStatus != "OK" {
		t.Errorf("after the kills: %d jobs, noop %+v", len(st.Jobs), st.Jobs["command:noop"])
	}
	if aside, _ := filepath.Glob(in.statePath() + ".corrupt-*"); len(aside) != 0 {
		t.Errorf("a state file was moved aside as corrupt: %v", aside)
	}
}

// dirWatch reports, through inotify, when a save creates its temporary
// file and when it renames it over the state file.
type dirWatch struct {
	t      *testing.T
	events chan dirEvent
}

type dirEvent struct {
	at time.Time
}

func watchDir(t *testing.T, dir string) *dirWatch {
	t.Helper()
	fd, err := syscall.InotifyInit1(syscall.IN_CLOEXEC | syscall.IN_NONBLOCK)
	if err != nil {
		t.Skipf("no inotify here: %v", err)
	}
	if _, err := syscall.InotifyAddWatch(fd, dir, syscall.IN_MODIFY); err != nil {
		syscall.Close(fd)
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), "inotify") // non-blocking: Close ends a pending Read
	w := &dirWatch{t: t, events: make(chan dirEvent, 4096)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 64<<10)
		for {
			n, err := f.Read(buf)
			if err != nil {
				return
			}
			now := time.Now()
			for off := 0; off+syscall.SizeofInotifyEvent <= n; {
				ev := (*syscall.InotifyEvent)(unsafe.Pointer(&buf[off]))
				name := string(bytes.TrimRight(buf[off+syscall.SizeofInotifyEvent:off+syscall.SizeofInotifyEvent+int(ev.Len)], "\x00"))
				off += syscall.SizeofInotifyEvent + int(ev.Len)
				if ev.Mask&syscall.IN_MODIFY != 0 && name == "checker.state" {
					w.send(dirEvent{at: now})
				}
			}
		}
	}()
	t.Cleanup(func() {
		f.Close()
		<-done
	})
	return w
}

func (w *dirWatch) send(e dirEvent) {
	select {
	case w.events <- e:
	default: // nobody drained; drop
	}
}

// drain forgets the events so far.
func (w *dirWatch) drain() {
	for {
		select {
		case <-w.events:
		default:
			return
		}
	}
}

// waitWrite waits until the state file is written.
func (w *dirWatch) waitWrite(timeout time.Duration) bool {
	select {
	case <-w.events:
		return true
	case <-time.After(timeout):
		return false
	}
}

// wrote reports whether the state file was written since the last drain.
func (w *dirWatch) wrote() bool {
	select {
	case <-w.events:
		return true
	default:
		return false
	}
}

// writeTime is the time from the first write of the events so far to the
// last.
func (w *dirWatch) writeTime() (time.Duration, bool) {
	var first, last time.Time
	for {
		select {
		case e := <-w.events:
			if first.IsZero() {
				first = e.at
			}
			last = e.at
		default:
			return last.Sub(first), !first.IsZero()
		}
	}
}

// TestTwentyConcurrentInvocations starts twenty `cron` invocations of all
// tiers at the same moment: every job runs exactly once in its slot, and
// every result reaches the state (no invocation overwrites another's).
func TestTwentyConcurrentInvocations(t *testing.T) { concurrentInvocations(t, 20) }

// TestHundredConcurrentInvocations: the same with 100 at once.
func TestHundredConcurrentInvocations(t *testing.T) { concurrentInvocations(t, 100) }

// concurrentInvocations starts n `cron` invocations of all tiers together:
// every job runs exactly once in its slot, and no update is lost.
func concurrentInvocations(t *testing.T, n int) {
	// Keep all invocations inside one calendar minute.
	if s := time.Now().Second(); s > 50 {
		time.Sleep(time.Duration(61-s) * time.Second)
	}
	dir := t.TempDir()
	var cfg strings.Builder
	cfg.WriteString("[email]\nnomail = yes\n")
	var names []string
	for _, every := range []string{"minute", "hour", "day", "day_noon"} {
		n := 4
		if every == "minute" {
			n = 10
		}
		for i := 0; i < n; i++ {
			name := fmt.Sprintf("%s%02d", every, i)
			names = append(names, name)
			fmt.Fprintf(&cfg, "[command:%s]\nevery = %s\ncommand = sh -c 'echo ran >> %s/%s.log; sleep 0.1'\n", name, every, dir, name)
		}
	}
	in := newInstance(t, cfg.String())

	tiers := []string{"minute", "hour", "day", "day_noon"}
	results := make([]result, n)
	var ready, wg sync.WaitGroup
	gate := make(chan struct{})
	ready.Add(n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ready.Done()
			<-gate
			results[i] = in.run("cron", tiers[i%len(tiers)])
		}()
	}
	ready.Wait()
	close(gate)
	wg.Wait()
	for i, r := range results {
		if r.code != 0 || r.stderr != "" || r.stdout != "" {
			t.Fatalf("invocation %d (%s): exit %d\nstdout: %s\nstderr: %s", i, tiers[i%len(tiers)], r.code, r.stdout, r.stderr)
		}
	}
	// Each tier once more, after the others finished: every slot is taken.
	for _, tier := range tiers {
		in.cron(tier)
	}
	st := in.state()
	for _, name := range names {
		b, err := os.ReadFile(filepath.Join(dir, name+".log"))
		if err != nil || string(b) != "ran\n" {
			t.Errorf("job %s ran %q, want exactly once (%v)", name, b, err)
		}
		j := st.Jobs["command:"+name]
		if j == nil || j.LastStatus != "OK" || j.LastRun.IsZero() || len(st.Claims) != 0 {
			t.Errorf("job %s state %+v: update lost or claim left behind", name, j)
		}
	}
	if st.LastRun.Finished.IsZero() {
		t.Errorf("last run not recorded: %+v", st.LastRun)
	}
}

// TestSMTPFailureModes: the mail server refuses the recipient (permanent
// and temporary) or drops the connection inside DATA for two runs. The
// alerts wait in the outbox, nothing is marked notified, mail is unhealthy;
// when the server recovers, each recipient gets exactly one mail.
func TestSMTPFailureModes(t *testing.T) {
	// A permanent refusal (550) has its own rules: TestPermanentRejection.
	for _, mode := range []string{mailtest.FailTempRcpt, mailtest.FailDropData} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			smtpFailureThenRecovery(t, mode, []string{"ops@example.test", "dba@example.test"})
		})
	}
}

// smtpFailureThenRecovery runs one job per recipient, all failing, through
// two runs with the SMTP server in mode and one after it recovered.
func smtpFailureThenRecovery(t *testing.T, mode string, rcpts []string) {
	mail := mailtest.Start(t, mailtest.Options{})
	db := newTCPPort(t)
	db.down()
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "[general]\nalertcontact = %s\nservername = smtp-%s\n%s", rcpts[0], mode, mailSettings(mail))
	for i, to := range rcpts {
		fmt.Fprintf(&cfg, "[tcp:db%d]\ntarget = %s\nnotify = every\nnotify_to = %s\n", i, db.addr, to)
	}
	in := newInstance(t, cfg.String())

	mail.SetSMTPFailure(mode)
	for run := 1; run <= 2; run++ {
		r := in.run("cron", "minute")
		// Only the first failing run says so on stderr (cron mails it).
		warnedOnce := (run == 1) == strings.HasPrefix(r.stderr, mailWarning)
		if r.code != 0 || r.stdout != "" || (r.stderr != "" && run > 1) || !warnedOnce {
			t.Fatalf("run %d: exit %d\nstdout: %s\nstderr: %s", run, r.code, r.stdout, r.stderr)
		}
		t.Logf("run %d with the server in %s mode took %s", run, mode, r.took.Round(time.Millisecond))
		st := in.state()
		if len(st.Outbox) != len(rcpts) || st.Mail.SendOK || st.Mail.SendError == "" {
			t.Fatalf("run %d: outbox %+v, mail %+v; want %d pending notices and mail unhealthy", run, st.Outbox, st.Mail, len(rcpts))
		}
		for _, n := range st.Outbox {
			if d := n.To[0]; d.Attempts != run || d.LastError == "" {
				t.Errorf("run %d: notice %s tried %d times (%q), want %d", run, n.Job, d.Attempts, d.LastError, run)
			}
		}
		for i := range rcpts {
			if !st.Jobs[fmt.Sprintf("tcp:db%d", i)].LastNotified.IsZero() {
				t.Fatalf("run %d: last-notified advanced although nothing was delivered", run)
			}
		}
		in.nextMinute()
	}
	if got := mail.Received(); len(got) != 0 {
		t.Fatalf("%d mails accepted while the server was failing: %v", len(got), mailsTo(got))
	}

	mail.SetSMTPFailure(mailtest.FailNone)
	in.cron("minute")
	mail.WaitReceived(t, len(rcpts), 10*time.Second)
	time.Sleep(300 * time.Millisecond) // a duplicate would arrive now
	got := mail.Received()
	byRcpt := mailsTo(got)
	if len(got) != len(rcpts) {
		t.Fatalf("%d mails after recovery, want exactly %d (one per alert): %v", len(got), len(rcpts), byRcpt)
	}
	for i, to := range rcpts {
		subj := byRcpt[to]
		if len(subj) != 1 || !strings.Contains(subj[0], fmt.Sprintf("tcp:db%d is failing", i)) {
			t.Errorf("mail to %s: %q, want one alert for tcp:db%d", to, subj, i)
		}
	}
	for _, m := range got {
		if !strings.Contains(m.Body, "3 consecutive failed runs") {
			t.Errorf("mail to %v does not count the three failed runs:\n%s", m.To, m.Body)
		}
	}
	st := in.state()
	if len(st.Outbox) != 0 || !st.Mail.SendOK {
		t.Errorf("after recovery: outbox %+v, mail %+v", st.Outbox, st.Mail)
	}
	for i := range rcpts {
		if st.Jobs[fmt.Sprintf("tcp:db%d", i)].LastNotified.IsZero() {
			t.Errorf("tcp:db%d: not marked notified after delivery", i)
		}
	}

	// The next run alerts again (notify = every), once, and nothing old
	// comes back with it.
	in.nextMinute()
	in.cron("minute")
	mail.WaitReceived(t, 2*len(rcpts), 10*time.Second)
	time.Sleep(300 * time.Millisecond)
	if n := len(mail.Received()); n != 2*len(rcpts) {
		t.Errorf("%d mails after the fourth run, want %d", n, 2*len(rcpts))
	}
}

// TestBadStateFileThroughBinary: a state file that is corrupt, truncated,
// binary, or JSON that is no state of an earlier release, is moved aside with its bytes
// intact, reported by mail, and the run goes on with a fresh state.
func TestBadStateFileThroughBinary(t *testing.T) {
	cases := map[string]func(good []byte) []byte{
		"corrupt":        func([]byte) []byte { return []byte(`{"version": 1, "jobs": {"tcp:db": {"failing": tru}}}`) },
		"truncated":      func(good []byte) []byte { return good[:len(good)/2] },
		"binary":         func([]byte) []byte { return []byte("\x00\x01\xfe\xffSQLite format 3\x00\x10\x00\x02\x02") },
		"future-version": func([]byte) []byte { return []byte(`{"version": 99, "jobs": {}}`) },
		"negative-count": func([]byte) []byte {
			return []byte(`{"version": 1, "jobs": {"tcp:db": {"failing": true, "failures": -3}}}`)
		},
	}
	for name, bad := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			mail := mailtest.Start(t, mailtest.Options{})
			db := newTCPPort(t)
			in := newInstance(t, fmt.Sprintf("[general]\nalertcontact = ops@example.test\nservername = bad-state\n%s[tcp:db]\ntarget = %s\n", mailSettings(mail), db.addr))
			in.cron("minute")
			in.nextMinute()
			good, err := os.ReadFile(in.statePath())
			if err != nil {
				t.Fatal(err)
			}
			data := bad(good)
			if err := os.WriteFile(in.statePath(), data, 0o600); err != nil {
				t.Fatal(err)
			}
			t0 := time.Now()
			in.cron("minute")

			aside, _ := filepath.Glob(in.statePath() + ".corrupt-*")
			if len(aside) != 1 {
				t.Fatalf("files moved aside: %v, want one", aside)
			}
			if kept, err := os.ReadFile(aside[0]); err != nil || !bytes.Equal(kept, data) {
				t.Errorf("the file moved aside does not hold the original bytes (%v)", err)
			}
			st := in.state()
			if j := st.Jobs["tcp:db"]; j == nil || j.LastStatus != "OK" || j.LastRun.Before(t0) {
				t.Errorf("the run did not go on: tcp:db = %+v", j)
			}
			msgs := mail.WaitReceived(t, 1, 10*time.Second)
			if len(msgs) != 1 || !strings.Contains(msgs[0].Subject, "state file was corrupt") || !strings.Contains(msgs[0].Body, filepath.Base(aside[0])) {
				t.Fatalf("want one mail reporting the corrupt state file and where it went, got %v", mailsTo(msgs))
			}
			if len(st.Outbox) != 0 {
				t.Errorf("outbox after the report: %+v", st.Outbox)
			}
			// The next run is an ordinary one: nothing more is reported.
			in.nextMinute()
			in.cron("minute")
			time.Sleep(200 * time.Millisecond)
			if n := len(mail.Received()); n != 1 {
				t.Errorf("%d mails after the next run, want still 1", n)
			}
		})
	}
}

// TestDiskFullWhileSaving: the state file lives on a full filesystem (a
// small tmpfs when this test may mount one; in any case a file size limit
// the save exceeds), either before the run or after its jobs ran. The save fails, the previous state survives byte for
// byte, no temporary file is left, and the failure is on stderr with a
// non-zero exit, which cron mails. Once there is room again, runs go on.
func TestDiskFullWhileSaving(t *testing.T) {
	t.Run("tmpfs", func(t *testing.T) {
		// The database writes into its free pages in place; a run that
		// needs it to grow (many more jobs than before) cannot.
		in := diskFullInstance(t, true)
		filler := filepath.Join(in.dir, "filler")
		db := newTCPPort(t)
		var cfg strings.Builder
		cfg.WriteString("[email]\nnomail = yes\n")
		for i := 0; i < 1000; i++ {
			fmt.Fprintf(&cfg, "[tcp:j%04d]\ntarget = %s\n", i, db.addr)
		}
		if err := os.WriteFile(in.cfg, []byte(cfg.String()), 0o600); err != nil {
			t.Fatal(err)
		}
		fillDisk(t, filler)
		before := in.state()
		r := in.run("cron", "minute")
		checkSaveFailed(t, in, r, before, "no space left on device")

		os.Remove(filler)
		in.cron("minute")
		if st := in.state(); len(st.Jobs) != 1020 || st.Jobs["tcp:j0999"].LastStatus != "OK" || st.LastRun.Error != "" {
			t.Errorf("after freeing space: %d jobs, %+v, last run %+v", len(st.Jobs), st.Jobs["tcp:j0999"], st.LastRun)
		}
	})
	t.Run("tmpfs-after-the-jobs-ran", func(t *testing.T) {
		// The claims are written; then a job fills the disk while it
		// runs, so the results cannot be recorded.
		const jobs = 200
		in := newInstance(t, "")
		mountSmall(t, in.dir)
		db := newTCPPort(t)
		filler := filepath.Join(in.dir, "filler")
		var cfg strings.Builder
		cfg.WriteString("[email]\nnomail = yes\n")
		stop := filepath.Join(in.dir, "stop")
		fmt.Fprintf(&cfg, "[command:fill]\nshell = yes\ncommand = test -e %s || dd if=/dev/zero of=%s bs=4096\n", stop, filler)
		for i := 0; i < jobs; i++ {
			fmt.Fprintf(&cfg, "[tcp:j%03d]\ntarget = %s\n", i, db.addr)
		}
		if err := os.WriteFile(in.cfg, []byte(cfg.String()), 0o600); err != nil {
			t.Fatal(err)
		}

		r := in.run("cron", "minute")
		if r.code == 0 || !strings.Contains(r.stderr, "cannot save state") || !strings.Contains(r.stderr, "no space left on device") {
			t.Fatalf("exit %d, stderr %q: want the failed save reported", r.code, r.stderr)
		}
		st := in.state() // whole: the claims survived
		if len(st.Claims) != 1 || len(st.Claims[0].Jobs) != jobs+1 || len(st.Jobs) != 0 {
			t.Fatalf("claims %d (of %d jobs), %d job records; want the claim the first save wrote and no result", len(st.Claims), len(st.Claims[0].Jobs), len(st.Jobs))
		}
		t.Logf("the run's results were lost with the failed save (reported on stderr): %d jobs claimed, none recorded", len(st.Claims[0].Jobs))

		os.WriteFile(stop, nil, 0o600)
		os.Remove(filler)
		in.nextMinute()
		in.cron("minute")
		for name, j := range in.state().Jobs {
			if j.LastStatus != "OK" || len(in.state().Claims) != 0 {
				t.Errorf("after freeing space, job %s: %+v", name, j)
			}
		}
	})
	t.Run("file-size-limit", func(t *testing.T) {
		in := diskFullInstance(t, false)
		before := in.state()
		// RLIMIT_FSIZE of one block: writing the state fails with EFBIG
		// (Go ignores SIGXFSZ, so the write returns the error).
		cmd := exec.Command("sh", "-c", `ulimit -f 1 && exec "$@"`, "sh", checkerBin, "-f", in.cfg, "cron", "minute")
		cmd.Env, cmd.Dir = in.env, in.dir
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		r := result{stdout: stdout.String(), stderr: stderr.String()}
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			r.code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		checkSaveFailed(t, in, r, before, "file too large")
		in.cron("minute")
	})
}

// diskFullInstance is an instance with 20 jobs after one successful run,
// with its jobs due again. With onTmpfs its directory is a 1 MiB tmpfs
// (the test is skipped where it may not mount one).
func diskFullInstance(t *testing.T, onTmpfs bool) *instance {
	t.Helper()
	db := newTCPPort(t)
	var cfg strings.Builder
	cfg.WriteString("[email]\nnomail = yes\n")
	for i := 0; i < 20; i++ {
		fmt.Fprintf(&cfg, "[tcp:j%02d]\ntarget = %s\n", i, db.addr)
	}
	in := newInstance(t, cfg.String())
	if onTmpfs {
		mountSmall(t, in.dir)
		if err := os.WriteFile(in.cfg, []byte(cfg.String()), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	in.cron("minute")
	in.nextMinute()
	return in
}

// mountSmall mounts a 1 MiB tmpfs on dir for the test, or skips the test
// where it may not mount one.
func mountSmall(t *testing.T, dir string) {
	t.Helper()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV, "size=1m,mode=0700"); err != nil {
		t.Skipf("cannot mount a tmpfs here (%v); the file-size-limit case covers the failing write", err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
}

// fillDisk writes zeros to path until the filesystem is full.
func fillDisk(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4096)
	for i := 0; i < 1<<20; i++ {
		if _, err := f.Write(buf); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				return
			}
			t.Fatal(err)
		}
	}
	t.Fatal("the filesystem never filled up")
}

// checkSaveFailed checks a run whose save could not be written: it says so
// and exits non-zero (cron mails it), and the previous state is intact.
func checkSaveFailed(t *testing.T, in *instance, r result, before *state.Snapshot, reason string) {
	t.Helper()
	if r.code == 0 {
		t.Fatalf("the run exited 0 although the state could not be saved\nstderr: %s", r.stderr)
	}
	for _, want := range []string{"cannot save state", "previous state is kept", reason} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr does not say %q:\n%s", want, r.stderr)
		}
	}
	after := in.state()
	if len(after.Jobs) != len(before.Jobs) || !after.LastRun.Finished.Equal(before.LastRun.Finished) {
		t.Fatalf("the previous state did not survive: %d jobs (was %d), last run %v (was %v)",
			len(after.Jobs), len(before.Jobs), after.LastRun.Finished, before.LastRun.Finished)
	}
	for name, j := range before.Jobs {
		if a := after.Jobs[name]; a == nil || !a.LastRun.Equal(j.LastRun) || a.LastStatus != j.LastStatus {
			t.Errorf("job %s changed by a failed save: %+v → %+v", name, j, a)
		}
	}
	if aside, _ := filepath.Glob(in.statePath() + ".corrupt-*"); len(aside) != 0 {
		t.Errorf("a failed save made the state look corrupt: %v", aside)
	}
}

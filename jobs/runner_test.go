package jobs_test

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"checker/jobs"
	"checker/notify"
	"checker/state"
)

// gate is a check that does not return until its channel is closed.
type gate chan struct{}

func (g gate) Validate() error { return nil }
func (g gate) Target() string  { return "gate" }
func (g gate) Check(ctx context.Context, _ *jobs.Env) jobs.Result {
	select {
	case <-g:
		return jobs.Resultf(jobs.OK, "opened")
	case <-ctx.Done():
		return jobs.Resultf(jobs.Critical, "gate never opened")
	}
}

// TestCronRecordsFinishedJobsWhileOthersRun: a slow job must not hold the
// claims of jobs that already finished, or the next minute's run would skip
// them as "still running".
func TestCronRecordsFinishedJobsWhileOthersRun(t *testing.T) {
	every, _ := jobs.ParseNotify("every")
	policy := jobs.Policy{Notify: every, Failures: 1, Recovery: jobs.RecoveryAuto, WarnIsFailure: true}
	slow := gate(make(chan struct{}))
	all := []*jobs.Job{
		{Name: "gate:slow", Type: "gate", Every: jobs.Minute, Policy: policy, Timeout: time.Minute, Spec: slow},
		{Name: "tcp:fast", Type: "tcp", Every: jobs.Minute, Policy: policy, Timeout: 5 * time.Second, Spec: &jobs.TCP{Addr: "127.0.0.1:1"}},
	}
	store := &state.Store{Path: filepath.Join(t.TempDir(), "checker.state")}
	var printed bytes.Buffer
	r := &jobs.Runner{Store: store, Sender: &notify.Printer{W: &printed}, Composer: notify.Composer{ServerName: "t"}, Env: jobs.NewEnv(nil)}

	ran := make(chan error, 1)
	go func() {
		_, err := r.Cron(context.Background(), jobs.Minute, all)
		ran <- err
	}()

	// Wait (with a generous guard) until the fast job's result is on disk.
	deadline := time.Now().Add(20 * time.Second)
	for {
		fast, slowState := readJob(t, store, "tcp:fast"), readJob(t, store, "gate:slow")
		if !fast.LastRun.IsZero() {
			running := readRunning(t, store)
			if running["tcp:fast"] || fast.LastStatus != "CRITICAL" {
				t.Errorf("finished job still claimed or wrongly recorded: %+v", fast)
			}
			if !running["gate:slow"] || !slowState.LastRun.IsZero() {
				t.Errorf("the slow job should still be claimed: %+v", slowState)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the fast job's result was not recorded while the slow job ran")
		}
		time.Sleep(50 * time.Millisecond)
	}
	select {
	case err := <-ran:
		t.Fatalf("Cron returned before the slow job finished: %v", err)
	default:
	}
	close(slow)
	if err := <-ran; err != nil {
		t.Fatal(err)
	}
	h := readHealth(t, store)
	if j := readJob(t, store, "gate:slow"); readRunning(t, store)["gate:slow"] || j.LastStatus != "OK" || h.LastRun.Finished.IsZero() {
		t.Errorf("after the run: slow job %+v, last run %+v", j, h.LastRun)
	}
}

// readJob reads one job's record (zero when there is none).
func readJob(t *testing.T, store *state.Store, name string) state.Job {
	t.Helper()
	var j state.Job
	err := store.View(func(tx *state.Tx) error {
		var err error
		j, _, err = tx.Job(name)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return j
}

// readRunning reads which jobs live invocations are running.
func readRunning(t *testing.T, store *state.Store) map[string]bool {
	t.Helper()
	var running map[string]bool
	err := store.View(func(tx *state.Tx) error {
		var err error
		running, err = tx.Running(time.Now())
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return running
}

// readHealth reads the health record.
func readHealth(t *testing.T, store *state.Store) state.Health {
	t.Helper()
	var h state.Health
	err := store.View(func(tx *state.Tx) error {
		var err error
		h, err = tx.Health()
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// failing is a check that fails at once.
type failing struct{}

func (failing) Validate() error { return nil }
func (failing) Target() string  { return "nothing" }
func (failing) Check(context.Context, *jobs.Env) jobs.Result {
	return jobs.Resultf(jobs.Critical, "down")
}

// TestFloodIsRecordedWhole: 25,000 jobs that all start failing in one run
// are recorded and delivered in several transactions (more than one batch
// of each), and nothing is lost: one digest, every job notified, an empty
// outbox, and a history that says it went out.
func TestFloodIsRecordedWhole(t *testing.T) {
	const n = 25000
	every, _ := jobs.ParseNotify("state_change")
	policy := jobs.Policy{Notify: every, Failures: 1, Recovery: jobs.RecoveryAuto, WarnIsFailure: true}
	all := make([]*jobs.Job, n)
	for i := range all {
		all[i] = &jobs.Job{Name: fmt.Sprintf("fail:j%05d", i), Type: "fail", Every: jobs.Minute, Policy: policy, Timeout: time.Second, Spec: failing{}}
	}
	store := &state.Store{Path: filepath.Join(t.TempDir(), "checker.state")}
	var printed bytes.Buffer
	r := &jobs.Runner{Store: store, Sender: &notify.Printer{W: &printed}, Composer: notify.Composer{ServerName: "t"},
		AlertContact: []string{"ops@example.test"}, Env: jobs.NewEnv(nil), Printing: true}
	out, err := r.Cron(context.Background(), jobs.Minute, all)
	if err != nil || len(out) != n {
		t.Fatalf("%d ran: %v", len(out), err)
	}
	if got := strings.Count(printed.String(), "--- mail not sent (nomail) ---"); got != 1 || !strings.Contains(printed.String(), "25000 notices from checker on t.") {
		t.Errorf("%d mails printed; want one digest of 25000 notices", got)
	}
	printedEvents := 0
	err = store.View(func(tx *state.Tx) error {
		if k := tx.OutboxLen(); k != 0 {
			t.Errorf("outbox holds %d notices after delivery", k)
		}
		for _, j := range all {
			rec, _, err := tx.Job(j.Name)
			if err != nil {
				return err
			}
			if !rec.Failing || rec.LastNotified.IsZero() {
				t.Fatalf("%s: %+v; want failing and notified", j.Name, rec)
			}
		}
		return tx.Events(time.Time{}, nil, func(ev state.Event) error {
			if ev.Kind == state.EventPrinted {
				printedEvents++
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	if printedEvents != n {
		t.Errorf("%d printed events, want %d", printedEvents, n)
	}
}

// settable is a check whose status the test sets.
type settable struct{ status *jobs.Status }

func (settable) Validate() error { return nil }
func (settable) Target() string  { return "settable" }
func (s settable) Check(context.Context, *jobs.Env) jobs.Result {
	return jobs.Resultf(*s.status, "status set by the test")
}

// TestEscalationNotices: under state_change a change of the non-OK status
// notifies, worded by its direction.
func TestEscalationNotices(t *testing.T) {
	every, _ := jobs.ParseNotify("state_change")
	status := jobs.Warning
	job := &jobs.Job{Name: "cmd:disk", Type: "settable", Every: jobs.Minute, Timeout: time.Second, Spec: settable{&status},
		Policy: jobs.Policy{Notify: every, Failures: 1, Recovery: jobs.RecoveryAuto, WarnIsFailure: true}}
	store := &state.Store{Path: filepath.Join(t.TempDir(), "checker.state")}
	var printed bytes.Buffer
	r := &jobs.Runner{Store: store, Sender: &notify.Printer{W: &printed}, Composer: notify.Composer{ServerName: "t"},
		AlertContact: []string{"ops@example.test"}, Env: jobs.NewEnv(nil)}
	for _, tc := range []struct {
		status jobs.Status
		want   string
	}{
		{jobs.Warning, "Subject: [t] cmd:disk is failing: WARNING"},
		{jobs.Critical, "Subject: [t] cmd:disk escalated to CRITICAL: "},
		{jobs.Warning, "Subject: [t] cmd:disk is now WARNING (was CRITICAL): "},
		{jobs.Warning, ""},
	} {
		status = tc.status
		printed.Reset()
		if _, err := r.RunNow(context.Background(), []*jobs.Job{job}, true); err != nil {
			t.Fatal(err)
		}
		if tc.want == "" && printed.Len() != 0 || !strings.Contains(printed.String(), tc.want) {
			t.Errorf("%s: printed %q, want %q", tc.status, printed.String(), tc.want)
		}
	}
}

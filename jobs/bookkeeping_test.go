package jobs

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"checker/notify"
	"checker/state"
)

// BenchmarkBookkeeping10000 is what the state costs a cron run of 10,000
// jobs: the transaction that claims them and the one that records their
// results under the rules (and the run, and the outbox), each synced to
// disk. The checks themselves are left out: their results are given.
func BenchmarkBookkeeping10000(b *testing.B) {
	const n = 10000
	path := filepath.Join(b.TempDir(), "checker.state")
	every, _ := ParseNotify("state_change")
	all := make([]*Job, n)
	for i := range all {
		all[i] = &Job{Name: fmt.Sprintf("tcp:j%05d", i), Type: "tcp", Every: Minute, Timeout: 10 * time.Second,
			Policy: Policy{Notify: every, Failures: 1, Recovery: RecoveryAuto, WarnIsFailure: true}}
	}
	r := &Runner{Store: &state.Store{Path: path}, Sender: &notify.Printer{W: io.Discard}, Composer: notify.Composer{ServerName: "bench"}}
	ctx := context.Background()
	pid := os.Getpid()
	start := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	run := func(i int) {
		started := start.Add(time.Duration(i) * time.Minute) // a new slot each time
		r.Now = func() time.Time { return started }
		due, _, err := r.claimDue(ctx, Minute, all, started, pid)
		if err != nil || len(due) != n {
			b.Fatalf("claimed %d of %d: %v", len(due), n, err)
		}
		finished := make([]finishedJob, n)
		for k := range finished {
			finished[k] = finishedJob{i: k, res: Result{Status: OK, Message: "connected to 127.0.0.1:5432 in 1.2ms", Duration: time.Millisecond}}
		}
		outcomes := make([]Outcome, n)
		if _, err := r.recordFinished(ctx, due, finished, outcomes, pid, Minute, state.Run{Tier: "minute", Started: started}, true); err != nil {
			b.Fatal(err)
		}
	}
	run(0) // the records exist, as in every run but the first
	i := 1
	b.ReportAllocs()
	for b.Loop() {
		run(i)
		i++
	}
}

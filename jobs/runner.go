package jobs

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"checker/notify"
	"checker/state"
)

// Runner runs jobs and records what they found.
type Runner struct {
	Store    *state.Store
	Sender   notify.Sender
	Composer notify.Composer
	// AlertContact receives notices of jobs without notify_to, and the
	// runner's own (a corrupt state file).
	AlertContact []string
	Concurrency  int
	Env          *Env
	Now          func() time.Time
	Log          *slog.Logger
	// Warn, if set, gets one line when mail stops going out (not on every
	// failed run): cron mails a command's stderr, the last channel left.
	Warn io.Writer
}

func (r *Runner) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

func (r *Runner) log() *slog.Logger {
	if r.Log != nil {
		return r.Log
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// Outcome is one job's result from a run.
type Outcome struct {
	Job      *Job
	Result   Result
	Decision Decision
}

// Cron is one cron invocation of tier: it claims the due jobs (those of the
// tier not yet run in their slot and not running elsewhere), runs them in
// parallel, applies the rules, delivers the outbox and records the run.
// Only a state file that cannot be locked, read or written is an error;
// what the jobs find is recorded, not returned.
func (r *Runner) Cron(ctx context.Context, tier Tier, all []*Job) ([]Outcome, error) {
	started := r.now()
	pid := os.Getpid()
	var due []*Job
	var batch []state.Notice
	err := r.Store.Update(ctx, func(f *state.File) error {
		r.noteRecovered(f, started)
		for _, j := range all {
			if !tier.Runs(j.Every) {
				continue
			}
			st := f.Job(j.Name)
			slot := Slot(j.Every, started)
			if st.LastSlot == slot {
				continue
			}
			if c := st.Running; c != nil && c.PID != pid && c.Alive(started) {
				r.log().Info("job still running from an earlier invocation; not starting it again", "job", j.Name, "pid", c.PID, "since", c.Started)
				continue
			}
			st.LastSlot = slot
			st.Running = &state.Claim{PID: pid, Started: started, Expires: started.Add(j.Timeout + time.Minute)}
			due = append(due, j)
		}
		if len(due) == 0 {
			f.LastRun = state.Run{Tier: string(tier), Started: started, Finished: r.now()}
			batch = claimOutbox(f, pid, r.now())
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(due) == 0 {
		return nil, r.deliver(ctx, batch, pid)
	}
	return r.runAndRecord(ctx, due, pid, state.Run{Tier: string(tier), Started: started})
}

// flushEvery is how often the results of finished jobs are recorded while
// slower jobs still run. Recording releases a job's claim, so one slow job
// (the hourly self-check waiting for IMAP, say) does not keep the next
// minute's run from starting the jobs that finished long ago.
const flushEvery = 2 * time.Second

// runAndRecord runs the claimed jobs, records their results as they finish
// (in batches, at most every flushEvery), and at the end records the run
// and delivers the outbox.
func (r *Runner) runAndRecord(ctx context.Context, due []*Job, pid int, run state.Run) ([]Outcome, error) {
	type finished struct {
		i   int
		res Result
	}
	done := make(chan finished, len(due)) // never blocks a job
	go func() {
		r.runEach(ctx, due, func(i int, res Result) { done <- finished{i, res} })
		close(done)
	}()
	outcomes := make([]Outcome, len(due))
	var pending []finished
	// flush records pending results; the final one also records the run and
	// claims the outbox. Results whose update failed stay pending.
	flush := func(final bool) ([]state.Notice, error) {
		var batch []state.Notice
		err := r.Store.Update(context.WithoutCancel(ctx), func(f *state.File) error {
			r.noteRecovered(f, r.now())
			for _, d := range pending {
				outcomes[d.i] = r.record(f, due[d.i], d.res, pid)
			}
			if final {
				run.Finished = r.now()
				f.LastRun = run
				batch = claimOutbox(f, pid, r.now())
			}
			return nil
		})
		if err == nil {
			pending = nil
		}
		return batch, err
	}
	tick := time.NewTicker(flushEvery)
	defer tick.Stop()
	for {
		select {
		case d, ok := <-done:
			if !ok {
				batch, err := flush(true)
				if err != nil {
					return outcomes, err
				}
				return outcomes, r.deliver(ctx, batch, pid)
			}
			pending = append(pending, d)
		case <-tick.C:
			if len(pending) > 0 {
				if _, err := flush(false); err != nil {
					r.log().Error("cannot record finished jobs yet; will retry", "error", err)
				}
			}
		}
	}
}

// RunNow runs the jobs at once, ignoring their schedule. With record it
// applies the rules, delivers notices and saves the state as cron would;
// without, it touches nothing.
func (r *Runner) RunNow(ctx context.Context, jobs []*Job, record bool) ([]Outcome, error) {
	results := r.runAll(ctx, jobs)
	outcomes := make([]Outcome, len(jobs))
	for i, j := range jobs {
		outcomes[i] = Outcome{Job: j, Result: results[i]}
	}
	if !record {
		return outcomes, nil
	}
	pid := os.Getpid()
	var batch []state.Notice
	err := r.Store.Update(context.WithoutCancel(ctx), func(f *state.File) error {
		r.noteRecovered(f, r.now())
		for i, j := range jobs {
			outcomes[i] = r.record(f, j, results[i], pid)
		}
		batch = claimOutbox(f, pid, r.now())
		return nil
	})
	if err != nil {
		return outcomes, err
	}
	return outcomes, r.deliver(ctx, batch, pid)
}

// runAll runs jobs in parallel, at most Concurrency at a time.
func (r *Runner) runAll(ctx context.Context, jobs []*Job) []Result {
	results := make([]Result, len(jobs))
	r.runEach(ctx, jobs, func(i int, res Result) { results[i] = res })
	return results
}

// runEach runs jobs in parallel, at most Concurrency at a time, calling
// done (from the job's goroutine) as each finishes. It returns when all
// have finished.
func (r *Runner) runEach(ctx context.Context, jobs []*Job, done func(i int, res Result)) {
	n := r.Concurrency
	if n <= 0 {
		n = 64
	}
	sem := make(chan struct{}, n)
	var wg sync.WaitGroup
	for i, j := range jobs {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			res := j.Run(ctx, r.Env)
			r.log().Debug("job ran", "job", j.Name, "status", res.Status.String(), "message", res.Message, "duration", res.Duration)
			done(i, res)
		}()
	}
	wg.Wait()
}

// record applies the rules to one result and queues any notice.
func (r *Runner) record(f *state.File, j *Job, res Result, pid int) Outcome {
	now := r.now()
	st := f.Job(j.Name)
	prev := *st
	next, d := Apply(j.Policy, prev, j.Policy.Failed(res), now)
	next.LastRun = now
	next.LastStatus = res.Status.String()
	next.LastMessage = res.Message
	next.Running = prev.Running
	if next.Running != nil && next.Running.PID == pid {
		next.Running = nil
	}
	*st = next
	if j.OnResult != nil {
		j.OnResult(f, res, now)
	}
	to := j.Policy.NotifyTo
	if len(to) == 0 {
		to = r.recipients()
	}
	host := r.Composer.ServerName
	switch d {
	case Alert:
		f.Outbox = notify.Enqueue(f.Outbox, failureNotice(j, next, res, host, to, now))
	case Recover:
		f.Outbox = notify.Enqueue(f.Outbox, recoveryNotice(j, prev, res, host, to, now))
	}
	return Outcome{Job: j, Result: res, Decision: d}
}

// recipients are the alert contacts, or a placeholder that nomail prints.
func (r *Runner) recipients() []string {
	if len(r.AlertContact) > 0 {
		return r.AlertContact
	}
	return []string{"(alertcontact not set)"}
}

// noteRecovered queues a notice when Update had to replace a corrupt state.
func (r *Runner) noteRecovered(f *state.File, now time.Time) {
	if f.Recovered == "" {
		return
	}
	r.log().Error("state file replaced", "reason", f.Recovered)
	f.Outbox = notify.Enqueue(f.Outbox, state.Notice{
		Job: "state", Kind: state.KindSystem, To: r.recipients(), Created: now,
		Subject: "state file was corrupt and has been replaced",
		Body: fmt.Sprintf("checker on %s could not read its state file.\n\n%s\n\nJobs start over from a clean state: streaks and notification times were reset.\n",
			r.Composer.ServerName, f.Recovered),
	})
	f.Recovered = ""
}

// deliveryTimeout bounds one invocation's delivery of the outbox. Sends run
// in parallel, each under the SMTP timeout; this ends the invocation before
// the next cron minute even when the mail server hangs.
const deliveryTimeout = 45 * time.Second

// claimOutbox marks the notices this invocation will deliver: all those not
// being delivered by another live invocation. It returns copies to send
// once the state lock is released. Called under the lock.
func claimOutbox(f *state.File, pid int, now time.Time) []state.Notice {
	var batch []state.Notice
	for i := range f.Outbox {
		n := &f.Outbox[i]
		if c := n.Sending; c != nil && c.PID != pid && c.Alive(now) {
			continue
		}
		n.Sending = &state.Claim{PID: pid, Started: now, Expires: now.Add(deliveryTimeout + time.Minute)}
		c := *n
		c.Sending = nil
		batch = append(batch, c)
	}
	return batch
}

// deliver sends batch with the state lock released, so that a slow or
// hung mail server never holds up another invocation, then records in a
// short update what went out: delivered notices leave the outbox (and a
// failure's job gets its last-notified time); the rest stay, with the
// error, for the next run. It also records the health of the mail path.
func (r *Runner) deliver(ctx context.Context, batch []state.Notice, pid int) error {
	if len(batch) == 0 {
		return nil
	}
	sendCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), deliveryTimeout)
	remaining, rep := notify.Deliver(sendCtx, r.Sender, r.Composer, batch)
	cancel()
	if rep.Err != nil {
		r.log().Error("notices not delivered; kept in the outbox for the next run", "error", rep.Err, "pending", len(remaining))
	}
	key := func(n state.Notice) string { return fmt.Sprintf("%s\x00%s\x00%d", n.Job, n.Kind, n.Created.UnixNano()) }
	left := map[string]state.Notice{}
	for _, n := range remaining {
		left[key(n)] = n
	}
	return r.Store.Update(context.WithoutCancel(ctx), func(f *state.File) error {
		now := r.now()
		var outbox []state.Notice
		for _, n := range f.Outbox {
			if n.Sending == nil || n.Sending.PID != pid {
				outbox = append(outbox, n) // someone else's, or new since the claim
				continue
			}
			if l, ok := left[key(n)]; ok {
				l.Sending = nil
				outbox = append(outbox, l)
			}
			// otherwise delivered to everyone: it leaves the outbox
		}
		f.Outbox = outbox
		for _, n := range rep.Delivered {
			if st := f.Jobs[n.Job]; n.Kind == state.KindFailure && st != nil && st.Failing {
				st.LastNotified = now
			}
		}
		if rep.Attempted {
			wasOK := f.Mail.SendAt.IsZero() || f.Mail.SendOK
			if rep.Err != nil && wasOK && r.Warn != nil {
				fmt.Fprintf(r.Warn, "checker: cannot send mail; %d notice(s) kept in the outbox and retried every run: %s\n",
					len(remaining), strings.ReplaceAll(rep.Err.Error(), "\n", "; "))
			}
			f.Mail.SendAt = now
			f.Mail.SendOK = rep.Err == nil
			f.Mail.SendError = ""
			if rep.Err != nil {
				f.Mail.SendError = rep.Err.Error()
			}
		}
		return nil
	})
}

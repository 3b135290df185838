package jobs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"checker/notify"
	"checker/state"
)

// Runner runs jobs and records what they found.
type Runner struct {
	Store *state.Store
	// Sender sends mail; Channels post to the [channels] by lower-cased
	// name. A recipient that names a channel gets a channel message, any
	// other a mail.
	Sender   notify.Sender
	Channels map[string]notify.Poster
	Composer notify.Composer
	// AlertContact receives notices of jobs without notify_to, and the
	// runner's own (a corrupt state file); addresses and channel names.
	// A destination that keeps failing is reported to the alert contacts
	// and channels that work.
	AlertContact []string
	Concurrency  int
	Env          *Env
	Now          func() time.Time
	Log          *slog.Logger
	// Warn, if set, gets one line when mail stops going out (not on every
	// failed run): cron mails a command's stderr, the last channel left.
	Warn io.Writer
	// Windows tells whether a maintenance window covers a job at a time,
	// and which; nil means none.
	Windows func(job string, now time.Time) (string, bool)
	// Configured are the names of every job of the settings; with
	// ForgetAfter set, records of other jobs that have not run for that
	// long are dropped (hour and day runs only). History is how long
	// events are kept (zero: forever).
	Configured  map[string]bool
	ForgetAfter time.Duration
	History     time.Duration
	// SettingsID identifies the settings as loaded: a recipient that
	// refused mail permanently is retried at once when it changes.
	SettingsID string
	// Discovered are heartbeat services seen for the first time, which the
	// state remembers from now on.
	Discovered []state.Service
	// KeepServices keeps the records of remembered heartbeat services
	// ([heartbeat] discover = yes) however long ago they ran.
	KeepServices bool
	// Destinations are every recipient the settings name (lower-cased);
	// notices still owed to others (an address since removed, a typo since
	// fixed) are dropped for them. nil keeps all.
	Destinations map[string]bool
	// Printing is nomail mode: the Sender and Channels print notices
	// instead of sending them, and the history says so.
	Printing bool
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
	// Cancelled is set when the invocation was stopped (SIGTERM) before the
	// job finished: it is not a result, and nothing was recorded for it.
	Cancelled bool
}

// claimMargin is added to a job's timeout for its claim, so that a claim
// outlives a run that is merely slow.
const claimMargin = time.Minute

// Cron is one cron invocation of tier: it claims the due jobs (those of the
// tier not yet run in their slot and not running elsewhere), runs them in
// parallel, applies the rules, delivers the outbox and records the run.
// Only a state that cannot be locked, read or written is an error; what
// the jobs find is recorded, not returned. When ctx is cancelled (SIGTERM),
// the jobs cut short are not results: their slots are released and nothing
// is recorded or sent for them; what finished is saved.
func (r *Runner) Cron(ctx context.Context, tier Tier, all []*Job) ([]Outcome, error) {
	started := r.now()
	pid := os.Getpid()
	due, batch, err := r.claimDue(ctx, tier, all, started, pid)
	if err != nil {
		return nil, err
	}
	if len(due) == 0 {
		return nil, r.deliver(ctx, batch, pid)
	}
	return r.runAndRecord(ctx, due, pid, tier, state.Run{Tier: string(tier), Started: started})
}

// claimDue claims, in one transaction, the jobs of tier that are due at
// started: not run in their slot yet, not running in another invocation,
// not in the slot of a run that died. With none due it records the run as
// complete and claims the outbox for delivery instead.
func (r *Runner) claimDue(ctx context.Context, tier Tier, all []*Job, started time.Time, pid int) ([]*Job, []state.Notice, error) {
	var due []*Job
	var batch []state.Notice
	maxTimeout := time.Duration(0)
	var tierJobs []*Job
	for _, j := range all {
		if tier.Runs(j.Every) {
			maxTimeout = max(maxTimeout, j.Timeout)
			tierJobs = append(tierJobs, j)
		}
	}
	// In name order: the records are read in the order they are stored.
	sort.Slice(tierJobs, func(a, b int) bool { return tierJobs[a].Name < tierJobs[b].Name })
	expires := started.Add(maxTimeout + deliveryTimeout + claimMargin)
	err := r.Store.Update(ctx, func(tx *state.Tx) error {
		due = due[:0]
		r.noteRecovered(tx, started)
		if err := r.rememberDiscovered(tx); err != nil {
			return err
		}
		busy, crashed, err := r.otherClaims(tx, pid, started)
		if err != nil {
			return err
		}
		names := make([]string, len(tierJobs))
		for i, j := range tierJobs {
			names[i] = j.Name
		}
		lastSlots, err := tx.LastSlots(names)
		if err != nil {
			r.log().Error("job records unreadable; those jobs start afresh", "error", err)
		}
		slots := map[Tier]string{}
		for i, j := range tierJobs {
			slot, ok := slots[j.Every]
			if !ok {
				slot = Slot(j.Every, started)
				slots[j.Every] = slot
			}
			if busy[j.Name] {
				r.log().Info("job still running from an earlier invocation; not starting it again", "job", j.Name)
				continue
			}
			if at, ok := crashed[j.Name]; ok && Slot(j.Every, at) == slot {
				continue // a run that died had it in this slot
			}
			if lastSlots[i] == slot {
				continue
			}
			due = append(due, j)
		}
		h, err := tx.Health()
		if err != nil {
			h = state.Health{}
		}
		if len(due) == 0 {
			h.LastRun = state.Run{Tier: string(tier), Started: started, Finished: r.now()}
			h.Running = liveInvocations(h.Running, pid, started)
			if err := r.housekeeping(tx, tier, started); err != nil {
				return err
			}
			batch, err = r.claimOutbox(tx, pid, r.now())
			if err != nil {
				return err
			}
			if len(batch) == 0 {
				tx.Lazy() // only "it ran" changed: no need to wait for the disk
			}
		} else {
			c := state.Claims{Claim: state.Claim{PID: pid, Started: started, Expires: expires}, Jobs: make([]string, len(due))}
			for i, j := range due {
				c.Jobs[i] = j.Name
			}
			if err := tx.PutClaims(&c); err != nil {
				return err
			}
			h.Running = append(liveInvocations(h.Running, pid, started), c.Claim)
		}
		return tx.PutHealth(&h)
	})
	return due, batch, err
}

// otherClaims reads the claims of other invocations: the jobs one that is
// alive is running (not to be started again), and, of one that died before
// it finished, when it started its jobs (they count as run in that slot).
// Claims that expired are dropped.
func (r *Runner) otherClaims(tx *state.Tx, pid int, now time.Time) (busy map[string]bool, crashed map[string]time.Time, err error) {
	all, err := tx.AllClaims()
	if err != nil {
		r.log().Error("claims of other runs unreadable; ignoring them", "error", err)
	}
	busy, crashed = map[string]bool{}, map[string]time.Time{}
	for _, c := range all {
		switch {
		case c.PID == pid:
		case c.Alive(now):
			for _, j := range c.Jobs {
				busy[j] = true
			}
		case c.Dead(now):
			for _, j := range c.Jobs {
				crashed[j] = c.Started
			}
		default: // expired
			if err := tx.DeleteClaims(c.PID); err != nil {
				return nil, nil, err
			}
		}
	}
	return busy, crashed, nil
}

// liveInvocations keeps the entries of other invocations that may still be
// running or that died recently (serve reports those), dropping expired
// ones and this process's own.
func liveInvocations(running []state.Claim, pid int, now time.Time) []state.Claim {
	out := running[:0:0]
	for _, c := range running {
		if c.PID == pid || !now.Before(c.Expires) || c.Expires.Sub(c.Started) > state.MaxClaim {
			continue
		}
		out = append(out, c)
	}
	return out
}

// finishedJob is the result of the i-th due job.
type finishedJob struct {
	i   int
	res Result
}

// flushEvery is how often the results of finished jobs are recorded while
// slower jobs still run. Recording releases a job's claim, so one slow job
// (the hourly self-check waiting for IMAP, say) does not keep the next
// minute's run from starting the jobs that finished long ago.
const flushEvery = 2 * time.Second

// maxRecordBatch bounds the results one transaction records: a flood of
// new failures (each a job record, a notice and events) is written in
// several commits rather than one that holds all of it in memory.
const maxRecordBatch = 10000

// runAndRecord runs the claimed jobs, records their results as they finish
// (in batches, at most every flushEvery), and at the end records the run
// and delivers the outbox.
func (r *Runner) runAndRecord(ctx context.Context, due []*Job, pid int, tier Tier, run state.Run) ([]Outcome, error) {
	done := make(chan finishedJob, len(due)) // never blocks a job
	go func() {
		r.runEach(ctx, due, func(i int, res Result) { done <- finishedJob{i, res} })
		close(done)
	}()
	outcomes := make([]Outcome, len(due))
	var pending []finishedJob
	// flush records pending results; the final one also records the run and
	// claims the outbox. Results whose update failed stay pending.
	flush := func(final bool) ([]state.Notice, error) {
		for len(pending) > maxRecordBatch {
			if _, err := r.recordFinished(ctx, due, pending[:maxRecordBatch], outcomes, pid, tier, run, false); err != nil {
				return nil, err
			}
			pending = pending[maxRecordBatch:]
		}
		batch, err := r.recordFinished(ctx, due, pending, outcomes, pid, tier, run, final)
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

// recordFinished records, in one transaction, the results of the finished
// jobs (setting their outcomes) and drops them from this invocation's
// claims; the final call also records the run, does the housekeeping and
// claims the outbox for delivery.
func (r *Runner) recordFinished(ctx context.Context, due []*Job, finished []finishedJob, outcomes []Outcome, pid int, tier Tier, run state.Run, final bool) ([]state.Notice, error) {
	var batch []state.Notice
	stopped := ctx.Err() != nil
	// In name order: the records are read and written in the order they
	// are stored.
	sort.Slice(finished, func(a, b int) bool { return due[finished[a].i].Name < due[finished[b].i].Name })
	err := r.Store.Update(context.WithoutCancel(ctx), func(tx *state.Tx) error {
		now := r.now()
		r.noteRecovered(tx, now)
		names := make([]string, len(finished))
		for k, d := range finished {
			names[k] = due[d.i].Name
		}
		prevs, err := tx.Jobs(names)
		if err != nil {
			r.log().Error("job records unreadable; those jobs start afresh", "error", err)
		}
		silences, err := tx.Silences()
		if err != nil {
			return err
		}
		slots := map[Tier]string{}
		for k, d := range finished {
			if d.res.cancelled {
				// Not a result: nothing is recorded, and with its claim
				// gone the slot is free again.
				outcomes[d.i] = Outcome{Job: due[d.i], Result: d.res, Cancelled: true}
				continue
			}
			j := due[d.i]
			slot, ok := slots[j.Every]
			if !ok {
				slot = Slot(j.Every, run.Started)
				slots[j.Every] = slot
			}
			oc, err := r.recordOn(tx, j, prevs[k], d.res, slot, silences)
			if err != nil {
				return err
			}
			outcomes[d.i] = oc
		}
		if err := r.releaseClaims(tx, pid, finished, due, final); err != nil {
			return err
		}
		if !final {
			return nil
		}
		h, err := tx.Health()
		if err != nil {
			h = state.Health{}
		}
		h.Running = liveInvocations(h.Running, pid, now)
		if !stopped {
			// A run stopped by a signal did not complete: it is not the
			// last completed run peers judge freshness by.
			run.Finished = now
			h.LastRun = run
			if err := r.housekeeping(tx, tier, now); err != nil {
				return err
			}
			if batch, err = r.claimOutbox(tx, pid, now); err != nil {
				return err
			}
		}
		return tx.PutHealth(&h)
	})
	return batch, err
}

// releaseClaims drops from this invocation's claims the jobs just recorded
// (or cut short); the final flush drops the claims record.
func (r *Runner) releaseClaims(tx *state.Tx, pid int, finished []finishedJob, due []*Job, final bool) error {
	if final {
		return tx.DeleteClaims(pid)
	}
	all, err := tx.AllClaims()
	if err != nil {
		return err
	}
	for _, c := range all {
		if c.PID != pid {
			continue
		}
		done := make(map[string]bool, len(finished))
		for _, d := range finished {
			done[due[d.i].Name] = true
		}
		kept := c.Jobs[:0]
		for _, j := range c.Jobs {
			if !done[j] {
				kept = append(kept, j)
			}
		}
		c.Jobs = kept
		return tx.PutClaims(&c)
	}
	return nil
}

// RunNow runs the jobs at once, ignoring their schedule. With record it
// applies the rules, delivers notices and saves the state as cron would;
// without, it touches nothing.
func (r *Runner) RunNow(ctx context.Context, jobs []*Job, record bool) ([]Outcome, error) {
	results := r.runAll(ctx, jobs)
	outcomes := make([]Outcome, len(jobs))
	for i, j := range jobs {
		outcomes[i] = Outcome{Job: j, Result: results[i], Cancelled: results[i].cancelled}
	}
	if !record {
		return outcomes, nil
	}
	pid := os.Getpid()
	var batch []state.Notice
	err := r.Store.Update(context.WithoutCancel(ctx), func(tx *state.Tx) error {
		now := r.now()
		r.noteRecovered(tx, now)
		if err := r.rememberDiscovered(tx); err != nil {
			return err
		}
		for i, j := range jobs {
			if results[i].cancelled {
				continue
			}
			oc, err := r.record(tx, j, results[i], "")
			if err != nil {
				return err
			}
			outcomes[i] = oc
		}
		var err error
		if ctx.Err() == nil {
			batch, err = r.claimOutbox(tx, pid, now)
		}
		return err
	})
	if err != nil {
		return outcomes, err
	}
	return outcomes, r.deliver(ctx, batch, pid)
}

// notChecked starts the message of a run that did not check (the
// heartbeat store was unreachable): no result, so no change of status.
const notChecked = "not checked: "

// rememberDiscovered keeps the heartbeat services seen for the first
// time, so that a service whose heartbeat later vanishes is dead, not
// forgotten, whichever command saw it first.
func (r *Runner) rememberDiscovered(tx *state.Tx) error {
	for i := range r.Discovered {
		if err := tx.PutService(&r.Discovered[i]); err != nil {
			return err
		}
	}
	return nil
}

// runAll runs jobs in parallel, at most Concurrency at a time.
func (r *Runner) runAll(ctx context.Context, jobs []*Job) []Result {
	results := make([]Result, len(jobs))
	r.runEach(ctx, jobs, func(i int, res Result) { results[i] = res })
	return results
}

// runEach runs jobs in parallel, at most Concurrency at a time, calling
// done (from the job's goroutine) as each finishes. It returns when all
// have finished. Jobs not started, or cut short, when ctx is cancelled are
// passed as cancelled results.
func (r *Runner) runEach(ctx context.Context, jobs []*Job, done func(i int, res Result)) {
	n := r.Concurrency
	if n <= 0 {
		n = 64
	}
	sem := make(chan struct{}, n)
	r.Env.wantHeartbeats(jobs)
	var wg sync.WaitGroup
	for i, j := range jobs {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			done(i, Result{Status: Unknown, Message: "not run: checker was stopped", cancelled: true})
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			res := j.Run(ctx, r.Env)
			if ctx.Err() != nil {
				res.cancelled = true
			}
			r.log().Debug("job ran", "job", j.Name, "status", res.Status.String(), "message", res.Message, "duration", res.Duration, "cancelled", res.cancelled)
			done(i, res)
		}()
	}
	wg.Wait()
}

// record applies the rules to one result, saves the job's record (with the
// slot it ran in, for cron; "" keeps the record's), and queues any notice
// and the history's events.
func (r *Runner) record(tx *state.Tx, j *Job, res Result, slot string) (Outcome, error) {
	prev, _, err := tx.Job(j.Name)
	if err != nil {
		r.resetDamaged(tx, j.Name, err, r.now())
	}
	silences, err := tx.Silences()
	if err != nil {
		return Outcome{}, err
	}
	return r.recordOn(tx, j, prev, res, slot, silences)
}

// recordOn is record with the job's record and the silences read already
// (once for all the results a transaction records).
func (r *Runner) recordOn(tx *state.Tx, j *Job, prev state.Job, res Result, slot string, silences []state.Silence) (Outcome, error) {
	now := r.now()
	var err error
	if res.Skipped {
		// Not checked (the heartbeat store is down): the job keeps its
		// state (streak, last success, what it was told); the run's
		// status word is UNKNOWN with the reason, so nothing reads as a
		// fresh OK or a fresh failure.
		next := prev
		next.LastRun = now
		next.LastStatus = res.Status.String()
		next.LastMessage = res.Message
		next.LastPerfdata, next.LastLongOutput = "", ""
		if slot != "" {
			next.LastSlot = slot
		}
		return Outcome{Job: j, Result: res}, tx.PutJob(j.Name, &next)
	}
	suppressed, why := r.suppressed(silences, j.Name, now)
	status := res.Status.String()
	next, d := Apply(j.Policy, prev, Inputs{Failed: j.Policy.Failed(res), Status: status, Suppressed: suppressed}, now)
	next.LastRun = now
	if next.FirstRun.IsZero() {
		next.FirstRun = now
	}
	next.LastDuration = res.Duration
	next.LastStatus = status
	next.LastMessage = res.Message
	next.LastPerfdata = res.Perfdata
	next.LastLongOutput = res.LongOutput
	if !j.Policy.Failed(res) {
		next.LastSuccess = now
	}
	if slot != "" {
		next.LastSlot = slot
	}
	first := next.Failing && prev.NotifiedStatus == "" && (d == Alert || d == Escalate)
	if next.Failing && next.Thread == "" && (d == Alert || d == Escalate) {
		next.Thread = threadID(j.Name, next.FirstFailure)
	}
	if err := tx.PutJob(j.Name, &next); err != nil {
		return Outcome{}, err
	}
	if j.OnResult != nil {
		if err := j.OnResult(tx, res, now); err != nil {
			return Outcome{}, err
		}
	}
	// The history: state changes.
	switch {
	case next.Failing && !prev.Failing:
		err = tx.AddEvent(state.Event{Time: now, Job: j.Name, Kind: state.EventFailing, Status: status, Message: res.Message})
	case next.Failing && prev.Failing && prev.LastStatus != status && prev.LastStatus != "" && !strings.HasPrefix(prev.LastMessage, notChecked):
		err = tx.AddEvent(state.Event{Time: now, Job: j.Name, Kind: state.EventEscalated, Status: status,
			Message: fmt.Sprintf("%s → %s: %s", prev.LastStatus, status, res.Message)})
	case !next.Failing && prev.Failing:
		err = tx.AddEvent(state.Event{Time: now, Job: j.Name, Kind: state.EventRecovered, Status: status, Message: res.Message})
	}
	if err != nil {
		return Outcome{}, err
	}
	to := j.Policy.NotifyTo
	if len(to) == 0 {
		to = r.recipients()
	}
	host := r.Composer.ServerName
	var n *state.Notice
	switch d {
	case Alert, Escalate:
		fn := failureNotice(j, next, res, host, to, now)
		fn.First = first
		if d == Escalate {
			was := prev.NotifiedStatus
			if ackedStatusChanged(prev, Inputs{Status: status}) {
				was = prev.LastStatus // what the operator acknowledged
			}
			if notify.Severity(status) > notify.Severity(was) {
				fn.Subject = fmt.Sprintf("%s escalated to %s: %s", j.Name, status, subjectMessage(res))
			} else {
				fn.Subject = fmt.Sprintf("%s is now %s (was %s): %s", j.Name, status, was, subjectMessage(res))
			}
		}
		n = &fn
	case Recover:
		rn := recoveryNotice(j, prev, res, host, to, now)
		n = &rn
	case Hold:
		if prev.Held.IsZero() {
			err = tx.AddEvent(state.Event{Time: now, Job: j.Name, Kind: state.EventHeld, Status: status,
				Message: "notice held: " + why})
		}
	}
	if err != nil {
		return Outcome{}, err
	}
	if n != nil {
		if err := r.enqueue(tx, n); err != nil {
			return Outcome{}, err
		}
	}
	return Outcome{Job: j, Result: res, Decision: d}, nil
}

// suppressed reports whether a silence or a maintenance window covers the
// job now, and which.
func (r *Runner) suppressed(silences []state.Silence, job string, now time.Time) (bool, string) {
	if r.Windows != nil {
		if name, ok := r.Windows(job, now); ok {
			return true, "maintenance window " + name
		}
	}
	for _, s := range silences {
		if now.Before(s.Until) && MatchName(s.Pattern, job) {
			why := "silenced until " + s.Until.Format(timeLayout)
			if s.By != "" {
				why += " by " + s.By
			}
			if s.Reason != "" {
				why += ": " + s.Reason
			}
			return true, why
		}
	}
	return false, ""
}

// enqueue puts n in the outbox, replacing a pending notice of the same job
// and kind: the newer one says the same with fresher numbers, and a mail
// server that was down for three runs must not cause three alerts. The
// replaced notice's first-queued time is kept, so the mail can say how
// long it was held back.
func (r *Runner) enqueue(tx *state.Tx, n *state.Notice) error {
	n.Queued = n.Created
	if old, ok, err := tx.Notice(n.Job, n.Kind); err == nil && ok {
		n.Queued = old.Queued
		if n.Queued.IsZero() {
			n.Queued = old.Created
		}
		// The outage's first notice has not reached everyone: this one
		// still starts the thread for them.
		n.First = n.First || old.First && !allDone(old)
		// Keep what delivery to each recipient has gone through, for the
		// mail ("held back since…") and status.
		tries := map[string]state.Delivery{}
		for _, d := range old.To {
			if !d.Done {
				tries[strings.ToLower(d.To)] = d
			}
		}
		for i := range n.To {
			if d, ok := tries[strings.ToLower(n.To[i].To)]; ok {
				n.To[i].Attempts, n.To[i].LastTry, n.To[i].LastError = d.Attempts, d.LastTry, d.LastError
			}
		}
	}
	if err := tx.PutNotice(n); err != nil {
		return err
	}
	return tx.AddEvent(state.Event{Time: n.Created, Job: n.Job, Kind: state.EventQueued, Status: n.Status, Message: n.Subject, To: n.Recipients()})
}

func allDone(n state.Notice) bool {
	for _, d := range n.To {
		if !d.Done {
			return false
		}
	}
	return true
}

// NoAlertContact is the recipient of notices when [general] alertcontact
// is not set: a placeholder that nomail prints, no destination of its own.
const NoAlertContact = "(alertcontact not set)"

// recipients are the alert contacts, or a placeholder that nomail prints.
func (r *Runner) recipients() []string {
	if len(r.AlertContact) > 0 {
		return r.AlertContact
	}
	return []string{NoAlertContact}
}

// noteRecovered queues a notice when the store had to replace a corrupt
// state file.
func (r *Runner) noteRecovered(tx *state.Tx, now time.Time) {
	msg := tx.TakeRecovered()
	if msg == "" {
		return
	}
	r.log().Error("state file replaced", "reason", msg)
	r.systemNotice(tx, "state", "state file was corrupt and has been replaced",
		fmt.Sprintf("checker on %s could not read its state file.\n\n%s\n\nJobs start over from a clean state: streaks and notification times were reset.\n",
			r.Composer.ServerName, msg), r.recipients(), now)
	_ = tx.AddEvent(state.Event{Time: now, Kind: state.EventState, Message: msg})
}

// resetDamaged notes that one job's record could not be read; the job
// starts afresh (its record is overwritten).
func (r *Runner) resetDamaged(tx *state.Tx, job string, err error, now time.Time) {
	r.log().Error("job record unreadable; starting the job afresh", "job", job, "error", err)
	_ = tx.AddEvent(state.Event{Time: now, Job: job, Kind: state.EventState, Message: "record unreadable, reset: " + err.Error()})
}

// systemNotice queues a notice of checker itself.
func (r *Runner) systemNotice(tx *state.Tx, job, subject, body string, to []string, now time.Time) {
	r.systemNoticeStatus(tx, job, "CRITICAL", subject, body, to, now)
}

// systemNoticeStatus queues a notice of checker itself reporting status,
// and returns its outbox key ("" when nothing was queued).
func (r *Runner) systemNoticeStatus(tx *state.Tx, job, status, subject, body string, to []string, now time.Time) string {
	if len(to) == 0 {
		return "" // nobody else to tell
	}
	n := state.Notice{Job: job, Kind: state.KindSystem, Subject: subject, Body: body, Created: now, Status: status}
	for _, t := range to {
		n.To = append(n.To, state.Delivery{To: t})
	}
	if err := r.enqueue(tx, &n); err != nil {
		r.log().Error("cannot queue notice", "subject", subject, "error", err)
		return ""
	}
	return n.Key()
}

// housekeeping drops what the state no longer needs, in hour and day runs
// only (a minute run stays cheap): records of jobs no longer configured
// that have not run for ForgetAfter, and history older than History.
func (r *Runner) housekeeping(tx *state.Tx, tier Tier, now time.Time) error {
	if tier == Minute {
		return nil
	}
	if r.History > 0 {
		if _, err := tx.PruneEvents(now.Add(-r.History)); err != nil {
			return err
		}
	}
	if r.Destinations != nil {
		recs, err := tx.Recipients()
		if err != nil {
			return err
		}
		for _, rc := range recs {
			if !r.Destinations[strings.ToLower(rc.To)] {
				if err := tx.DeleteRecipient(rc.To); err != nil {
					return err
				}
			}
		}
	}
	if r.ForgetAfter <= 0 || r.Configured == nil {
		return nil
	}
	remembered := map[string]bool{}
	if r.KeepServices {
		services, err := tx.Services()
		if err != nil {
			return err
		}
		for _, s := range services {
			remembered[strings.ToLower(s.Name)] = true
		}
	}
	var drop []string
	err := tx.ForEachJob(func(name string, j state.Job, derr error) error {
		if r.Configured[name] || isHeartbeatOf(name, remembered) {
			return nil
		}
		if derr != nil || now.Sub(j.LastRun) > r.ForgetAfter {
			drop = append(drop, name)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, name := range drop {
		if err := tx.DeleteJob(name); err != nil {
			return err
		}
		if err := tx.AddEvent(state.Event{Time: now, Job: name, Kind: state.EventForgotten,
			Message: fmt.Sprintf("no longer configured and not run for %s", r.ForgetAfter)}); err != nil {
			return err
		}
	}
	return nil
}

// isHeartbeatOf reports whether a job name is the discovered heartbeat job
// of a remembered service ("heartbeat:NAME" or "heartbeat:NAME#2").
func isHeartbeatOf(job string, remembered map[string]bool) bool {
	svc, ok := strings.CutPrefix(job, "heartbeat:")
	if !ok {
		return false
	}
	if i := strings.LastIndexByte(svc, '#'); i > 0 {
		svc = svc[:i]
	}
	return remembered[strings.ToLower(svc)]
}

// deliveryTimeout bounds one invocation's delivery of the outbox. Sends run
// in parallel, each under the SMTP timeout; this ends the invocation before
// the next cron minute even when the mail server hangs.
const deliveryTimeout = 45 * time.Second

// permanentRetry is how often a recipient that refused mail permanently
// (SMTP 5xx) is tried again while the settings stay the same.
const permanentRetry = time.Hour

// claimOutbox marks the notices this invocation will deliver: all those
// not being delivered by another live invocation, each with only the
// recipients that are due (a recipient that refused permanently waits an
// hour). It returns copies to send once the lock is released.
func (r *Runner) claimOutbox(tx *state.Tx, pid int, now time.Time) ([]state.Notice, error) {
	return r.claimNotices(tx, pid, now, nil)
}

// claimNotices is claimOutbox for the notices whose keys are in only, or
// all when only is nil.
func (r *Runner) claimNotices(tx *state.Tx, pid int, now time.Time, only map[string]bool) ([]state.Notice, error) {
	if tx.OutboxLen() == 0 {
		return nil, nil
	}
	outbox, err := tx.Outbox()
	if err != nil {
		r.log().Error("outbox partly unreadable", "error", err)
	}
	holdBack := map[string]bool{}
	recs, err := tx.Recipients()
	if err != nil {
		return nil, err
	}
	for _, rc := range recs {
		if rc.Failing && rc.Permanent && rc.Settings == r.SettingsID && now.Sub(rc.LastTry) < permanentRetry {
			holdBack[rc.To] = true
		}
	}
	var batch []state.Notice
	for i := range outbox {
		n := &outbox[i]
		if only != nil && !only[n.Key()] {
			continue
		}
		if c := n.Sending; c != nil && c.PID != pid && c.Alive(now) {
			continue
		}
		if dropped, err := r.dropUnconfigured(tx, n); err != nil || dropped {
			if err != nil {
				return nil, err
			}
			continue
		}
		c := *n
		c.To = nil
		for _, d := range n.To {
			if !d.Done && !holdBack[strings.ToLower(d.To)] {
				c.To = append(c.To, d)
			}
		}
		if len(c.To) == 0 {
			continue
		}
		n.Sending = &state.Claim{PID: pid, Started: now, Expires: now.Add(deliveryTimeout + time.Minute)}
		if err := tx.PutNotice(n); err != nil {
			return nil, err
		}
		c.Sending = nil
		batch = append(batch, c)
	}
	return batch, nil
}

// dropUnconfigured removes from n the recipients the settings no longer
// name, deleting n when nobody is left to tell. It reports whether n went.
func (r *Runner) dropUnconfigured(tx *state.Tx, n *state.Notice) (bool, error) {
	if r.Destinations == nil {
		return false, nil
	}
	kept := n.To[:0:0]
	for _, d := range n.To {
		if d.Done || r.Destinations[strings.ToLower(d.To)] {
			kept = append(kept, d)
		}
	}
	if len(kept) == len(n.To) {
		return false, nil
	}
	n.To = kept
	if allDone(*n) {
		return true, tx.DeleteNotice(n.Job, n.Kind)
	}
	return false, tx.PutNotice(n)
}

// deliver sends batch with the state lock released, so that a slow or
// hung mail server never holds up another invocation, then records in a
// short update what went out: each recipient that got a notice is marked,
// so it never gets it again; a notice that reached everyone leaves the
// outbox; a failure's job gets its last-notified time when the notice
// reached anyone. Recipients that refuse mail permanently are reported once
// to the others. It also records the health of the mail path.
//
// The notices that say a destination fails or works again are queued
// here and go out with the next run's digest: each destination gets one
// message per run.
func (r *Runner) deliver(ctx context.Context, batch []state.Notice, pid int) error {
	if len(batch) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, deliveryTimeout)
	defer cancel()
	_, err := r.deliverRound(ctx, batch, pid)
	return err
}

// deliverRound sends batch and records what went out (see deliver). It
// returns the outbox keys of the notices it queued about destinations.
func (r *Runner) deliverRound(ctx context.Context, batch []state.Notice, pid int) (map[string]bool, error) {
	rep := notify.Deliver(ctx, r.outlets(), r.Composer, batch)
	if len(rep.Failed) > 0 {
		r.log().Error("notices not delivered; kept in the outbox for the next run", "error", rep.Err())
	}
	// What went out is recorded in transactions of at most maxRecordBatch
	// notices (a flood's digest carries 100,000); the last one also
	// records the destinations and the mail path's health.
	for len(batch) > maxRecordBatch {
		err := r.Store.Update(context.WithoutCancel(ctx), func(tx *state.Tx) error {
			return r.recordSent(tx, batch[:maxRecordBatch], rep, pid, r.now())
		})
		if err != nil {
			return nil, err
		}
		batch = batch[maxRecordBatch:]
	}
	var reports map[string]bool
	err := r.Store.Update(context.WithoutCancel(ctx), func(tx *state.Tx) error {
		now := r.now()
		if err := r.recordSent(tx, batch, rep, pid, now); err != nil {
			return err
		}
		var err error
		if reports, err = r.noteRecipients(tx, rep, now); err != nil {
			return err
		}
		return r.noteMailHealth(tx, rep, now)
	})
	return reports, err
}

// recordSent records for each notice of batch who got it and who refused
// it, and drops it from the outbox when everyone has it.
func (r *Runner) recordSent(tx *state.Tx, batch []state.Notice, rep notify.Report, pid int, now time.Time) error {
	for _, sent := range batch {
		cur, ok, err := tx.Notice(sent.Job, sent.Kind)
		if err != nil || !ok {
			continue
		}
		replaced := !cur.Created.Equal(sent.Created)
		var got, rejected []string
		for _, d := range sent.To {
			key := strings.ToLower(d.To)
			if rep.Delivered[key] {
				got = append(got, d.To)
			} else if notify.IsPermanent(rep.Failed[key]) {
				rejected = append(rejected, d.To)
			}
		}
		if len(got) > 0 {
			kind := state.EventDelivered
			if r.Printing {
				kind = state.EventPrinted
			}
			if err := tx.AddEvent(state.Event{Time: now, Job: sent.Job, Kind: kind, Status: sent.Status, Message: sent.Subject, To: got}); err != nil {
				return err
			}
			if sent.Kind == state.KindFailure {
				if err := r.noteNotified(tx, sent.Job, now); err != nil {
					return err
				}
			}
		}
		if len(rejected) > 0 {
			if err := tx.AddEvent(state.Event{Time: now, Job: sent.Job, Kind: state.EventRejected, Status: sent.Status,
				Message: sent.Subject, To: rejected}); err != nil {
				return err
			}
		}
		if replaced {
			continue // a newer notice took its place; it goes out on its own
		}
		if cur.Sending != nil && cur.Sending.PID == pid {
			cur.Sending = nil
		}
		for i := range cur.To {
			d := &cur.To[i]
			key := strings.ToLower(d.To)
			if rep.Delivered[key] {
				d.Done = true
				d.LastError = ""
			} else if ferr, ok := rep.Failed[key]; ok {
				d.Attempts++
				d.LastTry = now
				d.LastError = ferr.Error()
			}
		}
		if allDone(cur) {
			err = tx.DeleteNotice(cur.Job, cur.Kind)
		} else {
			err = tx.PutNotice(&cur)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// noteNotified advances a failing job's last-notified time: a notice of its
// outage reached someone.
func (r *Runner) noteNotified(tx *state.Tx, job string, now time.Time) error {
	st, found, err := tx.Job(job)
	if err != nil || !found || !st.Failing {
		return nil
	}
	st.LastNotified = now
	return tx.PutJob(job, &st)
}

// failingAfter is how long every send to a destination must have failed
// before the other destinations are told: from the first failed attempt of
// the streak to the latest, so with cron's minute runs six runs in a row.
// A brief outage (a restart, a network blip) is not news; an outage that
// long is, and it is told once, with once more when it ends. A permanent
// refusal (SMTP 5xx) is told at once.
const failingAfter = 5 * time.Minute

// outlets are the runner's ways out.
func (r *Runner) outlets() notify.Outlets {
	return notify.Outlets{Mail: r.Sender, Channels: r.Channels}
}

// noteRecipients records the delivery health of each destination tried
// and tells the other destinations, once per outage, when one keeps
// failing (failingAfter, or at once for a permanent refusal) and once when
// it works again.
//
// It returns the outbox keys of the notices it queued.
func (r *Runner) noteRecipients(tx *state.Tx, rep notify.Report, now time.Time) (map[string]bool, error) {
	failing, err := r.failingDestinations(tx, rep)
	if err != nil {
		return nil, err
	}
	queued := map[string]bool{}
	note := func(key string) {
		if key != "" {
			queued[key] = true
		}
	}
	for _, to := range sortedKeys(rep.Delivered) {
		rc, found, _ := tx.Recipient(to)
		if !found {
			rc = state.Recipient{To: to}
		}
		if rc.Reported {
			note(r.systemNoticeStatus(tx, "recipient:"+to, "OK", fmt.Sprintf("%s works again", describeDestination(to, rep.Channels[to])),
				fmt.Sprintf("checker on %s can deliver to %s again; it had failed since %s (%s).\n"+
					"The notices held for it have now gone out.\n",
					r.Composer.ServerName, target(to, rep.Channels[to]), rc.Since.Format(timeLayout), rc.LastError), r.reportTo(to, failing), now))
		}
		rc.Failing, rc.Permanent, rc.Reported, rc.LastError, rc.Since = false, false, false, "", time.Time{}
		rc.LastTry = now
		rc.Sent++
		if err := tx.PutRecipient(&rc); err != nil {
			return nil, err
		}
	}
	for _, to := range sortedKeys(rep.Failed) {
		ferr := rep.Failed[to]
		rc, found, _ := tx.Recipient(to)
		if !found {
			rc = state.Recipient{To: to}
		}
		if !rc.Failing {
			rc.Failing, rc.Since, rc.Reported = true, now, false
		}
		rc.Failed++
		rc.Permanent = notify.IsPermanent(ferr)
		rc.LastTry = now
		rc.LastError = ferr.Error()
		rc.Settings = r.SettingsID
		if !rc.Reported && (rc.Permanent || now.Sub(rc.Since) >= failingAfter) {
			// Told once per outage. While no other destination works there
			// is nobody to tell: it stays unreported, and is told as soon as
			// another destination works again.
			key := r.reportFailing(tx, rc, rep.Channels[to], r.reportTo(to, failing), now)
			rc.Reported = key != ""
			note(key)
		}
		if err := tx.PutRecipient(&rc); err != nil {
			return nil, err
		}
	}
	return queued, nil
}

// reportFailing queues the notice that a destination keeps failing and
// returns its outbox key ("" when nobody is left to tell).
func (r *Runner) reportFailing(tx *state.Tx, rc state.Recipient, channel bool, to []string, now time.Time) string {
	what := describeDestination(rc.To, channel)
	var subject, body string
	if rc.Permanent {
		subject = fmt.Sprintf("%s is refused", what)
		body = fmt.Sprintf("checker on %s cannot deliver to %s: the server refused it permanently:\n\n  %s\n\n"+
			"Notices for %s stay queued and are retried at most hourly, or at once when the settings change.\n"+
			"Check the address in alertcontact or notify_to.\n", r.Composer.ServerName, rc.To, rc.LastError, rc.To)
	} else {
		subject = fmt.Sprintf("%s is failing", what)
		body = fmt.Sprintf("checker on %s has not been able to deliver to %s since %s (%s):\n\n  %s\n\n"+
			"Notices for %s stay queued and are retried every run; they go out when it works again,\n"+
			"and you will be told then.\n", r.Composer.ServerName, target(rc.To, channel), rc.Since.Format(timeLayout),
			now.Sub(rc.Since).Round(time.Second), rc.LastError, rc.To)
	}
	if len(to) == 0 {
		r.log().Error("a destination keeps failing and no other destination works to tell", "destination", rc.To, "error", rc.LastError)
		return ""
	}
	r.log().Error("a destination keeps failing; telling the others", "destination", rc.To, "error", rc.LastError, "told", strings.Join(to, ", "))
	return r.systemNoticeStatus(tx, "recipient:"+rc.To, "CRITICAL", subject, body, to, now)
}

// describeDestination names a destination in a subject: "channel NAME" or
// "mail to ADDRESS".
func describeDestination(to string, channel bool) string {
	if channel {
		return "channel " + to
	}
	return "mail to " + to
}

// target names a destination after "deliver to": "channel NAME" or the
// address.
func target(to string, channel bool) string {
	if channel {
		return "channel " + to
	}
	return to
}

// failingDestinations are the destinations that failed in this delivery,
// or failed before and were not reached in it: none of them can carry the
// news of another's failure.
func (r *Runner) failingDestinations(tx *state.Tx, rep notify.Report) (map[string]bool, error) {
	failing := map[string]bool{}
	for to := range rep.Failed {
		failing[to] = true
	}
	recs, err := tx.Recipients()
	if err != nil {
		return nil, err
	}
	for _, rc := range recs {
		key := strings.ToLower(rc.To)
		if rc.Failing && !rep.Delivered[key] {
			failing[key] = true
		}
	}
	return failing, nil
}

// reportTo are the destinations that hear of another's failure or return:
// the alert contacts and every channel, except that one and those failing.
func (r *Runner) reportTo(except string, failing map[string]bool) []string {
	var out []string
	seen := map[string]bool{strings.ToLower(except): true}
	add := func(to string) {
		key := strings.ToLower(to)
		if seen[key] || failing[key] {
			return
		}
		seen[key] = true
		out = append(out, to)
	}
	for _, a := range r.AlertContact {
		add(a)
	}
	for _, name := range sortedKeys(r.Channels) {
		add(name)
	}
	return out
}

// noteMailHealth records whether the mail path works, as peers see it:
// channels do not count. A recipient that refuses permanently does not
// make mail unhealthy while others get their mail; a transient failure
// (the server is down, refuses the login) does.
func (r *Runner) noteMailHealth(tx *state.Tx, rep notify.Report, now time.Time) error {
	var transient, all []error
	permanent, delivered := 0, 0
	for _, to := range sortedKeys(rep.Failed) {
		if rep.Channels[to] {
			continue
		}
		err := fmt.Errorf("mail to %s: %w", to, rep.Failed[to])
		all = append(all, err)
		if notify.IsPermanent(rep.Failed[to]) {
			permanent++
		} else {
			transient = append(transient, err)
		}
	}
	for to := range rep.Delivered {
		if !rep.Channels[to] {
			delivered++
		}
	}
	if len(all) == 0 && delivered == 0 {
		return nil // no mail tried
	}
	h, err := tx.Health()
	if err != nil {
		h = state.Health{}
	}
	ok := len(transient) == 0 && (permanent == 0 || delivered > 0)
	wasOK := h.Mail.SendAt.IsZero() || h.Mail.SendOK
	if !ok && wasOK && r.Warn != nil {
		fmt.Fprintf(r.Warn, "checker: cannot send mail; notices are kept in the outbox and retried every run: %s\n",
			strings.ReplaceAll(errors.Join(all...).Error(), "\n", "; "))
	}
	h.Mail.SendAt = now
	h.Mail.SendOK = ok
	h.Mail.SendError = ""
	if !ok {
		h.Mail.SendError = errors.Join(all...).Error()
		if len(transient) > 0 {
			h.Mail.SendError = errors.Join(transient...).Error()
		}
	}
	return tx.PutHealth(&h)
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

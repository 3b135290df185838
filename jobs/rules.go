package jobs

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
	"time"

	"checker/state"
)

// Decision is what the rules ask the runner to send.
type Decision int

// The decisions.
const (
	Quiet    Decision = iota // nothing to send
	Alert                    // a failure notice (the first, or a reminder)
	Escalate                 // a failure notice: the non-OK status changed
	Recover                  // a recovery notice
	Hold                     // a failure notice was due, but a silence or window holds it
)

func (d Decision) String() string {
	switch d {
	case Alert:
		return "alert"
	case Escalate:
		return "escalate"
	case Recover:
		return "recover"
	case Hold:
		return "hold"
	}
	return "quiet"
}

// Failed reports whether a result counts as a failure under policy p.
func (p Policy) Failed(r Result) bool {
	switch r.Status {
	case OK:
		return false
	case Warning:
		return p.WarnIsFailure
	}
	return true
}

// Inputs are what one run found and what holds for it at that moment.
type Inputs struct {
	// Failed says whether the run counts as a failure (Policy.Failed).
	Failed bool
	// Status is the run's status word (OK, WARNING, CRITICAL, UNKNOWN).
	Status string
	// Suppressed is set while a silence or a maintenance window covers
	// the job: its failure notices are held.
	Suppressed bool
}

// Apply is the failure and notification rules of SPEC §5 and §11 as a pure
// function: given the policy, the job's state before this run, what the run
// found and the time, it returns the next state and what to send.
//
//   - A failure notice goes out when the streak reaches `failures` and then
//     as `notify` says; under state_change also when the non-OK status
//     changes (WARNING ↔ CRITICAL), as Nagios notifies escalations.
//   - An acknowledged outage sends no reminders; an escalation clears the
//     acknowledgement and notifies. The recovery notice still goes out.
//   - While suppressed (silence, maintenance window) a due failure notice is
//     held instead. When the suppression ends and the job still fails, one
//     notice goes out (not a backlog). An outage that recovers while held
//     was never told, so it sends no recovery either.
//
// LastNotified is left for the caller to set once a notice reached someone.
func Apply(p Policy, prev state.Job, in Inputs, now time.Time) (state.Job, Decision) {
	next := prev
	if !in.Failed {
		d := Quiet
		told := prev.NotifiedStatus != "" || !prev.LastNotified.IsZero()
		if prev.Failing && prev.Failures >= p.Failures && p.wantsRecovery() && (told || prev.Held.IsZero()) {
			d = Recover
		}
		if prev.Failing || prev.Since.IsZero() {
			next.Since = now
		}
		next.Failing = false
		next.Failures = 0
		next.FirstFailure = time.Time{}
		next.LastNotified = time.Time{}
		next.NotifiedStatus = ""
		next.Thread = ""
		next.Held = time.Time{}
		next.Ack = nil
		return next, d
	}

	before := 0
	if prev.Failing {
		before = prev.Failures
	}
	n := before + 1
	next.Failing = true
	next.Failures = n
	if !prev.Failing {
		next.FirstFailure = now
		next.Since = now
		next.LastNotified = time.Time{}
		next.NotifiedStatus = ""
		next.Held = time.Time{}
		next.Ack = nil
		next.Thread = ""
	}
	// The status changed since the operator acknowledged the outage: the
	// acknowledgement was of the old status and goes, whatever comes of
	// this run (below the threshold, or held by a silence).
	lifted := ackedStatusChanged(prev, in)
	if lifted {
		next.Ack = nil
	}
	if n < p.Failures {
		return next, Quiet
	}

	d := Quiet
	escalated := prev.Failing && prev.NotifiedStatus != "" && in.Status != prev.NotifiedStatus
	switch {
	case escalated && p.Notify.Mode == NotifyStateChange, lifted && prev.NotifiedStatus != "":
		d = Escalate
	case next.Ack != nil:
		// acknowledged: no reminders for this outage
	case !next.Held.IsZero() && !in.Suppressed:
		// The suppression ended while the job still fails; a status other
		// than the one last told is told as the change it is.
		d = Alert
		if escalated {
			d = Escalate
		}
	case lifted:
		d = Alert // nothing was told of this outage yet: its first notice
	default:
		switch p.Notify.Mode {
		case NotifyEvery:
			d = Alert
		case NotifyInterval:
			// A last notice dated in the future (the clock was stepped
			// back) vouches for nothing: it is stale, not fresh.
			future := next.LastNotified.After(now.Add(clockSlack))
			if next.LastNotified.IsZero() || future || now.Sub(next.LastNotified) > p.Notify.After {
				d = Alert
			}
		case NotifyStateChange:
			if next.NotifiedStatus == "" && (p.Failures == 1 && !prev.Failing || n == p.Failures || !next.Held.IsZero()) {
				d = Alert
			}
		}
	}
	if d == Quiet {
		return next, Quiet
	}
	if in.Suppressed {
		if next.Held.IsZero() {
			next.Held = now
		}
		return next, Hold
	}
	if d == Escalate {
		next.Ack = nil
	}
	next.Held = time.Time{}
	next.NotifiedStatus = in.Status
	return next, d
}

// ackedStatusChanged says whether the status of an acknowledged outage
// changed since the run the operator acknowledged (WARNING ↔ CRITICAL,
// UNKNOWN), whatever the notify mode: as Nagios's non-sticky
// acknowledgements, the change is told and lifts the acknowledgement. A run
// that was not checked (the heartbeat store was down) is no status to
// compare with.
func ackedStatusChanged(prev state.Job, in Inputs) bool {
	return prev.Failing && prev.Ack != nil && prev.LastStatus != "" && in.Status != prev.LastStatus &&
		!strings.HasPrefix(prev.LastMessage, notChecked)
}

// clockSlack is how far in the future a recorded time may lie before it
// counts as the clock having been stepped back (small steps of a time
// daemon are not).
const clockSlack = time.Second

// threadID names an outage of a job by the job and when it started, so that
// its failure, reminders and recovery mails can thread together.
func threadID(job string, first time.Time) string {
	sum := sha256.Sum256([]byte(job + "\x00" + strconv.FormatInt(first.UnixNano(), 10)))
	return hex.EncodeToString(sum[:10])
}

func (p Policy) wantsRecovery() bool {
	switch p.Recovery {
	case RecoveryYes:
		return true
	case RecoveryNo:
		return false
	}
	return p.Notify.Mode == NotifyStateChange
}

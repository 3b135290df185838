package jobs

import (
	"time"

	"checker/state"
)

// Decision is what the rules ask the runner to send.
type Decision int

// The decisions.
const (
	Quiet   Decision = iota // nothing to send
	Alert                   // a failure notice
	Recover                 // a recovery notice
)

func (d Decision) String() string {
	switch d {
	case Alert:
		return "alert"
	case Recover:
		return "recover"
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

// Apply is the failure and notification rules of SPEC §5 as a pure
// function: given the policy, the job's state before this run, whether the
// run failed, and the time, it returns the next state and what to send.
// LastNotified is left for the caller to set once a notice is delivered.
func Apply(p Policy, prev state.Job, failed bool, now time.Time) (state.Job, Decision) {
	next := prev
	if !failed {
		d := Quiet
		if prev.Failing && prev.Failures >= p.Failures && p.wantsRecovery() {
			d = Recover
		}
		if prev.Failing || prev.Since.IsZero() {
			next.Since = now
		}
		next.Failing = false
		next.Failures = 0
		next.FirstFailure = time.Time{}
		next.LastNotified = time.Time{}
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
	}
	if n < p.Failures {
		return next, Quiet
	}
	switch p.Notify.Mode {
	case NotifyEvery:
		return next, Alert
	case NotifyInterval:
		if next.LastNotified.IsZero() || now.Sub(next.LastNotified) > p.Notify.After {
			return next, Alert
		}
		return next, Quiet
	case NotifyStateChange:
		if p.Failures == 1 {
			if !prev.Failing {
				return next, Alert
			}
			return next, Quiet
		}
		if n == p.Failures {
			return next, Alert
		}
	}
	return next, Quiet
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

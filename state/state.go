package state

import (
	"errors"
	"fmt"
	"syscall"
	"time"
)

// Version is the state file format this build writes.
const Version = 1

// File is the whole state file.
type File struct {
	Version int             `json:"version"`
	Jobs    map[string]*Job `json:"jobs"`
	Outbox  []Notice        `json:"outbox,omitempty"`
	LastRun Run             `json:"last_run"`
	Mail    Mail            `json:"mail"`

	// Recovered is set by Store.Update when the file on disk was corrupt
	// and was moved aside; it says where to and why. It is not saved.
	Recovered string `json:"-"`
}

// New returns an empty state.
func New() *File {
	return &File{Version: Version, Jobs: map[string]*Job{}}
}

// Job returns the state of the named job, creating it if needed.
func (f *File) Job(name string) *Job {
	if f.Jobs == nil {
		f.Jobs = map[string]*Job{}
	}
	j := f.Jobs[name]
	if j == nil {
		j = &Job{}
		f.Jobs[name] = j
	}
	return j
}

// Job is the remembered state of one job.
type Job struct {
	// Failing is true during a failure streak.
	Failing bool `json:"failing"`
	// Failures counts the consecutive failed runs of the streak.
	Failures int `json:"failures"`
	// FirstFailure is when the streak started.
	FirstFailure time.Time `json:"first_failure,omitzero"`
	// LastNotified is when a failure notice for this streak was last
	// delivered (printed, with nomail).
	LastNotified time.Time `json:"last_notified,omitzero"`
	// Since is when the job entered its current state (succeeding or
	// failing); zero if it never ran.
	Since time.Time `json:"since,omitzero"`
	// LastSlot is the schedule slot of the last run started by cron (see
	// Slot), so that overlapping invocations run a job once per slot.
	LastSlot string `json:"last_slot,omitempty"`
	// LastRun is when the job last finished a run.
	LastRun time.Time `json:"last_run,omitzero"`
	// LastStatus is OK, WARNING, CRITICAL or UNKNOWN.
	LastStatus string `json:"last_status,omitempty"`
	// LastMessage is the last result's one-line message.
	LastMessage string `json:"last_message,omitempty"`
	// Running is set while an invocation runs the job.
	Running *Claim `json:"running,omitempty"`
}

// MaxClaim is the longest a claim may hold: longer than any job timeout or
// delivery. A claim that says otherwise comes from a damaged file and is
// ignored, so it cannot switch a job off.
const MaxClaim = 24 * time.Hour

// Claim marks a job as being run by a process, so that another invocation
// does not start it again.
type Claim struct {
	PID     int       `json:"pid"`
	Started time.Time `json:"started"`
	// Expires is when the claim is void even if the process lives on: the
	// job's timeout plus a margin.
	Expires time.Time `json:"expires"`
}

// Alive reports whether the claim still holds at now: not expired, and its
// process still exists (a process of another user counts as existing).
func (c *Claim) Alive(now time.Time) bool {
	// A pid of 0 or less would signal a process group (kill(0, 0) always
	// succeeds); such a claim, from a damaged file, holds nothing.
	if c.PID <= 0 || !now.Before(c.Expires) || c.Expires.Sub(c.Started) > MaxClaim {
		return false
	}
	err := syscall.Kill(c.PID, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// Crashed describes a cron run that died while running jobs: a job claim
// that has not expired but whose process is gone. It returns "" when there
// is none. Claims expire after the job's timeout plus a minute, so a crash
// is reported until then, or until the job runs again.
func (f *File) Crashed(now time.Time) string {
	for name, j := range f.Jobs {
		c := j.Running
		if c == nil || c.PID <= 0 || !now.Before(c.Expires) || c.Alive(now) {
			continue
		}
		return fmt.Sprintf("cron run (pid %d, started %s) died while running %s", c.PID, c.Started.Format(time.RFC3339), name)
	}
	return ""
}

// Notice kinds.
const (
	KindFailure  = "failure"
	KindRecovery = "recovery"
	KindSystem   = "system"
)

// Notice is a notification waiting to be delivered. It stays in the outbox
// until every recipient in To got it.
type Notice struct {
	Job     string    `json:"job"`
	Kind    string    `json:"kind"`
	Subject string    `json:"subject"`
	Body    string    `json:"body"`
	To      []string  `json:"to"`
	Created time.Time `json:"created"`
	// Status is the job's status word the notice reports (OK, WARNING,
	// CRITICAL, UNKNOWN), for the X-Checker-State header.
	Status string `json:"status,omitempty"`
	// Thread identifies the outage the notice belongs to (the same for a
	// failure, its reminders and its recovery), so that mail can thread
	// them; First marks the outage's first notice, which starts the thread.
	Thread string `json:"thread,omitempty"`
	First  bool   `json:"first,omitempty"`
	// Queued is when the first notice of this job and kind still waiting
	// was queued: a notice held back by an outage says so.
	Queued time.Time `json:"queued,omitzero"`
	// Attempts counts failed delivery attempts; LastError is the last one's
	// error.
	Attempts  int    `json:"attempts,omitempty"`
	LastError string `json:"last_error,omitempty"`
	// Sending is set while an invocation delivers the notice (with the
	// state lock released), so that another does not send it too.
	Sending *Claim `json:"sending,omitempty"`
}

// Run describes the last cron invocation that completed.
type Run struct {
	Tier     string    `json:"tier,omitempty"`
	Started  time.Time `json:"started,omitzero"`
	Finished time.Time `json:"finished,omitzero"`
	// Error is set when the run did not complete its work (a job could not
	// be recorded, the state could not be saved in full).
	Error string `json:"error,omitempty"`
}

// Mail is the health of the mail path as peers see it.
type Mail struct {
	SelfCheckAt    time.Time `json:"selfcheck_at,omitzero"`
	SelfCheckOK    bool      `json:"selfcheck_ok"`
	SelfCheckError string    `json:"selfcheck_error,omitempty"`
	SendAt         time.Time `json:"send_at,omitzero"`
	SendOK         bool      `json:"send_ok"`
	SendError      string    `json:"send_error,omitempty"`
}

// Checked reports whether mail was ever exercised (self-check or send).
func (m Mail) Checked() bool { return !m.SelfCheckAt.IsZero() || !m.SendAt.IsZero() }

// Healthy reports whether the last self-check and the last send, where they
// happened, succeeded.
func (m Mail) Healthy() bool {
	if !m.SelfCheckAt.IsZero() && !m.SelfCheckOK {
		return false
	}
	if !m.SendAt.IsZero() && !m.SendOK {
		return false
	}
	return true
}

// Problem describes what is wrong with mail, or "" when healthy.
func (m Mail) Problem() string {
	if !m.SelfCheckAt.IsZero() && !m.SelfCheckOK {
		return "email self-check failed: " + m.SelfCheckError
	}
	if !m.SendAt.IsZero() && !m.SendOK {
		return "sending mail failed: " + m.SendError
	}
	return ""
}

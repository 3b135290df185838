package jobs

import (
	"context"
	"fmt"
	"runtime/debug"
	"strings"
	"time"
	"unicode/utf8"

	"checker/heartbeat"
	"checker/state"
)

// Status is a check's verdict, numbered as Nagios plugin exit codes.
type Status int

// The statuses, in Nagios order.
const (
	OK Status = iota
	Warning
	Critical
	Unknown
)

func (s Status) String() string {
	switch s {
	case OK:
		return "OK"
	case Warning:
		return "WARNING"
	case Critical:
		return "CRITICAL"
	}
	return "UNKNOWN"
}

// Result is what one run of a check found. Message is one line and is the
// reason a failure reaches the email; Detail may add lines (a session log,
// a response excerpt). Subject, when set, replaces the default mail subject
// for a failure (peers use the earlier tool's subjects).
type Result struct {
	Status  Status `json:"status"`
	Message string `json:"message"`
	Detail  string `json:"detail,omitempty"`
	// Perfdata is a plugin's performance data (after '|'), LongOutput its
	// lines after the first; both are kept out of subjects.
	Perfdata   string        `json:"perfdata,omitempty"`
	LongOutput string        `json:"long_output,omitempty"`
	Subject    string        `json:"-"`
	Duration   time.Duration `json:"duration_ns"`
	// Skipped marks a check that could not be made for a reason outside
	// the job (the heartbeat store is down): the job keeps its state and
	// only Message is shown.
	Skipped bool `json:"-"`
	// cancelled marks a run cut short because checker was stopped.
	cancelled bool
}

// Line is the result in the Nagios one-line style: "OK - message".
func (r Result) Line() string { return r.Status.String() + " - " + r.Message }

// Resultf builds a result with a formatted message.
func Resultf(s Status, format string, args ...any) Result {
	return Result{Status: s, Message: fmt.Sprintf(format, args...)}
}

// Spec is a job type's decoded settings. Exported fields tagged
// `cfg:"key"` are the section's keys (see decode.go). A Spec is built by its
// type's New with defaults set, decoded, then validated.
type Spec interface {
	// Validate checks the decoded values. Return a *KeyError to name the key.
	Validate() error
	// Target is what the job checks, for listings and mail.
	Target() string
	// Check runs the check once. ctx carries the job's deadline; a check
	// must return soon after it expires.
	Check(ctx context.Context, env *Env) Result
}

// Job is one configured check with its schedule and policy.
type Job struct {
	Name    string
	Type    string
	Target  string
	Every   Tier
	Policy  Policy
	Timeout time.Duration
	Spec    Spec
	// OnResult, if set, records something in the state beyond the job's own
	// streak (the email self-check records the health of the mail path).
	// It runs in the transaction that records the result.
	OnResult func(tx *state.Tx, r Result, now time.Time) error
}

// graceAfterTimeout is how long Run waits, after the deadline, for a check
// to return its own (more precise) error before declaring a timeout.
const graceAfterTimeout = 250 * time.Millisecond

// Run runs the job once under its timeout. A check that panics fails with
// the panic as its reason; a check that ignores its deadline is abandoned
// shortly after it.
func (j *Job) Run(ctx context.Context, env *Env) Result {
	timeout := j.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	done := make(chan Result, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				stack := string(debug.Stack())
				done <- Result{Status: Unknown, Message: fmt.Sprintf("check panicked: %v", p), Detail: stack}
			}
		}()
		done <- j.Spec.Check(ctx, env)
	}()
	var r Result
	select {
	case r = <-done:
	case <-ctx.Done():
		select {
		case r = <-done:
		case <-time.After(graceAfterTimeout):
			r = Resultf(Critical, "timed out after %s", timeout)
		}
	}
	r.Duration = time.Since(start)
	// What a check reports may come from the target (a plugin's output,
	// a server's reply): control and format characters are escaped here,
	// once, so no terminal, status line or mail subject gets them raw.
	r.Message = heartbeat.Escape(oneLine(r.Message))
	if r.Message == "" {
		r.Message = r.Status.String()
	}
	r.Perfdata = heartbeat.Escape(r.Perfdata)
	r.LongOutput = escapeLines(r.LongOutput)
	r.Detail = escapeLines(r.Detail)
	return r
}

// escapeLines escapes each line of s as heartbeat.Escape does, keeping
// the line breaks (and tabs).
func escapeLines(s string) string {
	if s == "" {
		return s
	}
	lines := strings.Split(strings.ReplaceAll(s, "\r\n", "\n"), "\n")
	for i, l := range lines {
		cells := strings.Split(l, "\t")
		for k, c := range cells {
			cells[k] = heartbeat.Escape(c)
		}
		lines[i] = strings.Join(cells, "\t")
	}
	return strings.Join(lines, "\n")
}

// oneLine keeps the first line of s, trimmed and capped.
func oneLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		s = strings.TrimSpace(s[:i])
	}
	return truncate(s, 500)
}

// truncate cuts s to at most max bytes on a character boundary, marking
// the cut with an ellipsis.
func truncate(s string, max int) string {
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

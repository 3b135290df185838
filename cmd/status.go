package cmd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"checker/heartbeat"
	"checker/jobs"
	"checker/state"
)

type statusOptions struct {
	json    bool
	failing bool
}

func newStatusCommand(g *globalOptions) *cobra.Command {
	var o statusOptions
	c := &cobra.Command{
		Use:   "status [JOB|GLOB...]",
		Short: "Show the state of jobs, the last cron run and mail health",
		Long: `Shows, for every configured job (or those named; a bare NAME matches every job
named NAME of any type, and globs such as 'http:*' work): succeeding or failing,
since when, the failure count, when a failure was last notified, the last run
and its message, uptime over 24 hours, 7 and 30 days, and any silence or
acknowledgement. Then the last completed cron run, the health of the mail path,
destinations (addresses and channels) that fail, and the notices waiting in the
outbox. Reads the
state; changes nothing.

Exits 1 when a job shown is failing, 0 otherwise, so scripts can use it.`,
		Example: "  checker status\n  checker status --failing\n  checker status 'http:*' --json | jq '.jobs[] | select(.state == \"failing\")'",
		RunE: func(c *cobra.Command, args []string) error {
			return showStatus(c.Context(), g, o, args)
		},
		ValidArgsFunction: completeJobNames(g),
	}
	c.Flags().BoolVar(&o.json, "json", false, "print as JSON (schema in the README)")
	c.Flags().BoolVar(&o.failing, "failing", false, "show only failing jobs")
	return c
}

// statusSchema is the version of the status JSON document.
const statusSchema = 1

type statusDoc struct {
	Schema     int               `json:"schema"`
	Server     string            `json:"server"`
	Generated  time.Time         `json:"generated"`
	Jobs       []jobStatus       `json:"jobs"`
	LastRun    *runStatus        `json:"last_run"`
	Mail       mailStatus        `json:"mail"`
	Recipients []recipientStatus `json:"recipients"`
	Outbox     []noticeStatus    `json:"outbox"`
	// destinations are all recipients with their counters, for metrics.
	destinations []state.Recipient
}

type jobStatus struct {
	Name            string        `json:"name"`
	Type            string        `json:"type"`
	Target          string        `json:"target"`
	State           string        `json:"state"` // succeeding, failing, never run
	Status          string        `json:"status,omitempty"`
	Code            *int          `json:"code,omitempty"`
	Message         string        `json:"message,omitempty"`
	Perfdata        string        `json:"perfdata,omitempty"`
	LongOutput      string        `json:"long_output,omitempty"`
	Since           *time.Time    `json:"since"`
	Failures        int           `json:"failures"`
	LastNotified    *time.Time    `json:"last_notified"`
	LastRun         *time.Time    `json:"last_run"`
	LastSuccess     *time.Time    `json:"last_success"`
	DurationSeconds float64       `json:"duration_seconds"`
	Running         bool          `json:"running"`
	Uptime          uptimeStatus  `json:"uptime"`
	Silenced        *silenceState `json:"silenced"`
	Maintenance     string        `json:"maintenance,omitempty"`
	Acknowledged    *ackState     `json:"acknowledged"`
	HeldSince       *time.Time    `json:"held_since"`
}

type uptimeStatus struct {
	Day   *float64 `json:"24h"`
	Week  *float64 `json:"7d"`
	Month *float64 `json:"30d"`
}

type silenceState struct {
	Pattern string    `json:"pattern"`
	Until   time.Time `json:"until"`
	By      string    `json:"by,omitempty"`
	Reason  string    `json:"reason,omitempty"`
}

type ackState struct {
	By     string    `json:"by,omitempty"`
	At     time.Time `json:"at"`
	Reason string    `json:"reason,omitempty"`
}

type runStatus struct {
	Tier            string    `json:"tier"`
	Started         time.Time `json:"started"`
	Finished        time.Time `json:"finished"`
	DurationSeconds float64   `json:"duration_seconds"`
	Error           string    `json:"error,omitempty"`
}

type mailStatus struct {
	Status      string     `json:"status"` // healthy, problem, nomail, unchecked
	Problem     string     `json:"problem,omitempty"`
	SelfCheckAt *time.Time `json:"selfcheck_at"`
	SelfCheckOK bool       `json:"selfcheck_ok"`
	LastSendAt  *time.Time `json:"last_send_at"`
	LastSendOK  bool       `json:"last_send_ok"`
	CrashedRun  string     `json:"crashed_run,omitempty"`
}

type recipientStatus struct {
	To        string    `json:"to"`
	Permanent bool      `json:"permanent"`
	Since     time.Time `json:"since"`
	LastTry   time.Time `json:"last_try"`
	LastError string    `json:"last_error"`
}

type noticeStatus struct {
	Name       string           `json:"name"`
	Kind       string           `json:"kind"`
	Subject    string           `json:"subject"`
	Created    time.Time        `json:"created"`
	Queued     time.Time        `json:"queued"`
	Recipients []deliveryStatus `json:"recipients"`
}

type deliveryStatus struct {
	To        string     `json:"to"`
	Delivered bool       `json:"delivered"`
	Attempts  int        `json:"attempts"`
	LastTry   *time.Time `json:"last_try"`
	LastError string     `json:"last_error,omitempty"`
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func statusCode(word string) *int {
	for s := jobs.OK; s <= jobs.Unknown; s++ {
		if s.String() == word {
			c := int(s)
			return &c
		}
	}
	return nil
}

// showStatus is `checker status`.
func showStatus(ctx context.Context, g *globalOptions, o statusOptions, patterns []string) error {
	a, err := g.loadApp()
	if err != nil {
		return err
	}
	defer a.close()
	if ctx == nil {
		ctx = context.Background()
	}
	all := a.allJobs(ctx)
	if len(patterns) > 0 {
		if all, err = jobs.Select(all, patterns); err != nil {
			return &exitError{code: exitUsage, err: err}
		}
	}
	now := time.Now()
	var doc statusDoc
	q := statusQuery{server: a.settings.General.ServerName, jobs: all, windows: a.windows(), noMail: a.settings.Email.NoMail, failingOnly: o.failing}
	err = a.store().View(func(tx *state.Tx) error {
		doc, err = collectStatus(tx, q, now)
		return err
	})
	if err != nil {
		return stateError(err)
	}
	if o.json {
		b, err := json.MarshalIndent(doc, "", "  ")
		if err != nil {
			return err
		}
		if _, err := g.stdout.Write(append(heartbeat.EscapeJSON(b), '\n')); err != nil {
			return err
		}
	} else {
		printStatus(g.stdout, doc)
	}
	for _, j := range doc.Jobs {
		if j.State == "failing" {
			return &exitError{code: 1}
		}
	}
	return nil
}

// timeLayout is how times are shown to people: with their zone.
const timeLayout = "2006-01-02 15:04:05 MST"

func fmtTime(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.Format(timeLayout)
}

func fmtUptime(p *float64) string {
	if p == nil {
		return "-"
	}
	if *p >= 99.995 {
		return "100%"
	}
	return fmt.Sprintf("%.2f%%", *p)
}

func printStatus(w io.Writer, doc statusDoc) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "JOB\tSTATE\tSINCE\tFAILURES\tLAST NOTIFIED\tLAST RUN\tUPTIME 24H/7D/30D\tLAST RESULT")
	for _, j := range doc.Jobs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", escapeText(j.Name), j.State, fmtTime(j.Since), j.Failures, fmtTime(j.LastNotified), fmtTime(j.LastRun),
			fmtUptime(j.Uptime.Day)+" / "+fmtUptime(j.Uptime.Week)+" / "+fmtUptime(j.Uptime.Month), lastResult(j))
	}
	tw.Flush()
	var notes []string
	for _, j := range doc.Jobs {
		for _, n := range jobNotes(j) {
			notes = append(notes, j.Name+": "+n)
		}
	}
	if len(notes) > 0 {
		fmt.Fprintln(w)
		for _, n := range notes {
			fmt.Fprintln(w, escapeText(n))
		}
	}
	fmt.Fprintln(w)
	if doc.LastRun == nil {
		fmt.Fprintln(w, "Last cron run: never")
	} else {
		fmt.Fprintf(w, "Last cron run: %s at %s (took %s)", doc.LastRun.Tier, doc.LastRun.Finished.Format(timeLayout),
			doc.LastRun.Finished.Sub(doc.LastRun.Started).Round(time.Millisecond))
		if doc.LastRun.Error != "" {
			fmt.Fprintf(w, " — error: %s", escapeText(doc.LastRun.Error))
		}
		fmt.Fprintln(w)
	}
	if doc.Mail.CrashedRun != "" {
		fmt.Fprintf(w, "Crashed: %s\n", doc.Mail.CrashedRun)
	}
	switch doc.Mail.Status {
	case "nomail":
		fmt.Fprintln(w, "Mail: nomail (notices are printed, not sent)")
	case "unchecked":
		fmt.Fprintln(w, "Mail: not exercised yet")
	case "healthy":
		fmt.Fprintln(w, "Mail: healthy")
	default:
		fmt.Fprintf(w, "Mail: PROBLEM — %s\n", escapeText(doc.Mail.Problem))
	}
	for _, r := range doc.Recipients {
		kind := "failing"
		if r.Permanent {
			kind = "refused permanently (retried hourly)"
		}
		fmt.Fprintf(w, "Recipient %s: %s since %s: %s\n", r.To, kind, r.Since.Format(timeLayout), escapeText(r.LastError))
	}
	if n := len(doc.Outbox); n > 0 {
		fmt.Fprintf(w, "Outbox: %d notice%s waiting\n", n, plural(n))
		for _, o := range doc.Outbox {
			var owed []string
			lastErr := ""
			for _, d := range o.Recipients {
				if !d.Delivered {
					owed = append(owed, d.To)
					if d.LastError != "" {
						lastErr = d.LastError
					}
				}
			}
			line := fmt.Sprintf("  %s (%s, queued %s) to %s", o.Subject, o.Kind, o.Queued.Format(timeLayout), strings.Join(owed, ", "))
			if lastErr != "" {
				line += ": " + lastErr
			}
			fmt.Fprintln(w, escapeText(line))
		}
	}
}

func lastResult(j jobStatus) string {
	if j.Status == "" && j.Message == "" {
		return "-"
	}
	s := j.Message
	if j.Status != "" {
		s = j.Status + " - " + j.Message
	}
	if j.Running {
		s += " (running now)"
	}
	return escapeText(s)
}

// escapeText shows control characters (which text from heartbeats, plugins
// and servers may hold) as escapes, so they cannot rewrite the terminal.
func escapeText(s string) string { return heartbeat.Escape(s) }

// stateError maps state errors to exit codes: permission problems are
// EX_NOPERM (77).
func stateError(err error) error {
	var pe *state.PermissionError
	if errors.As(err, &pe) {
		return &exitError{code: exitNoPerm, err: err}
	}
	return err
}

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
recipients that refuse mail, and the notices waiting in the outbox. Reads the
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
	Status        string     `json:"status"` // healthy, problem, nomail, unchecked
	Problem       string     `json:"problem,omitempty"`
	SelfCheckAt   *time.Time `json:"selfcheck_at"`
	SelfCheckOK   bool       `json:"selfcheck_ok"`
	LastSendAt    *time.Time `json:"last_send_at"`
	LastSendOK    bool       `json:"last_send_ok"`
	CrashedRun    string     `json:"crashed_run,omitempty"`
	StateRecovery string     `json:"state_recovery,omitempty"`
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
	doc := statusDoc{Schema: statusSchema, Server: a.settings.General.ServerName, Generated: now, Jobs: []jobStatus{},
		Recipients: []recipientStatus{}, Outbox: []noticeStatus{}}
	windows := a.windows()
	err = a.store().View(func(tx *state.Tx) error {
		silences, err := tx.Silences()
		if err != nil {
			return err
		}
		running, err := tx.Running(now)
		if err != nil {
			return err
		}
		for _, j := range all {
			js := jobStatus{Name: j.Name, Type: j.Type, Target: j.Target, State: "never run"}
			st, found, err := tx.Job(j.Name)
			if err != nil {
				js.Message = err.Error()
			}
			if found {
				js.Status, js.Code, js.Message = st.LastStatus, statusCode(st.LastStatus), st.LastMessage
				js.Perfdata, js.LongOutput = st.LastPerfdata, st.LastLongOutput
				js.Failures = st.Failures
				js.Since, js.LastNotified, js.LastRun, js.LastSuccess = timePtr(st.Since), timePtr(st.LastNotified), timePtr(st.LastRun), timePtr(st.LastSuccess)
				js.DurationSeconds = st.LastDuration.Seconds()
				js.Running = running[j.Name]
				js.HeldSince = timePtr(st.Held)
				if st.Ack != nil {
					js.Acknowledged = &ackState{By: st.Ack.By, At: st.Ack.At, Reason: st.Ack.Reason}
				}
				switch {
				case st.LastRun.IsZero():
				case st.Failing:
					js.State = "failing"
				default:
					js.State = "succeeding"
				}
				up, err := tx.Uptime(j.Name, st, now)
				if err != nil {
					return err
				}
				js.Uptime = uptimeStatus{Day: up.Day, Week: up.Week, Month: up.Month}
			}
			for _, s := range silences {
				if now.Before(s.Until) && jobs.MatchName(s.Pattern, j.Name) {
					js.Silenced = &silenceState{Pattern: s.Pattern, Until: s.Until, By: s.By, Reason: s.Reason}
					break
				}
			}
			if windows != nil {
				js.Maintenance, _ = windows(j.Name, now)
			}
			if o.failing && js.State != "failing" {
				continue
			}
			doc.Jobs = append(doc.Jobs, js)
		}
		h, err := tx.Health()
		if err != nil {
			return err
		}
		if !h.LastRun.Finished.IsZero() {
			doc.LastRun = &runStatus{Tier: h.LastRun.Tier, Started: h.LastRun.Started, Finished: h.LastRun.Finished,
				DurationSeconds: h.LastRun.Finished.Sub(h.LastRun.Started).Seconds(), Error: h.LastRun.Error}
		}
		doc.Mail = mailStatus{Problem: h.Mail.Problem(), SelfCheckAt: timePtr(h.Mail.SelfCheckAt), SelfCheckOK: h.Mail.SelfCheckOK,
			LastSendAt: timePtr(h.Mail.SendAt), LastSendOK: h.Mail.SendOK, CrashedRun: h.Crashed(now)}
		switch {
		case a.settings.Email.NoMail:
			doc.Mail.Status = "nomail"
		case !h.Mail.Checked():
			doc.Mail.Status = "unchecked"
		case h.Mail.Healthy():
			doc.Mail.Status = "healthy"
		default:
			doc.Mail.Status = "problem"
		}
		recs, err := tx.Recipients()
		if err != nil {
			return err
		}
		for _, r := range recs {
			if r.Failing {
				doc.Recipients = append(doc.Recipients, recipientStatus{To: r.To, Permanent: r.Permanent, Since: r.Since, LastTry: r.LastTry, LastError: r.LastError})
			}
		}
		outbox, err := tx.Outbox()
		for _, n := range outbox {
			ns := noticeStatus{Name: n.Job, Kind: n.Kind, Subject: n.Subject, Created: n.Created, Queued: n.Queued}
			for _, d := range n.To {
				ns.Recipients = append(ns.Recipients, deliveryStatus{To: d.To, Delivered: d.Done, Attempts: d.Attempts, LastTry: timePtr(d.LastTry), LastError: d.LastError})
			}
			doc.Outbox = append(doc.Outbox, ns)
		}
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
		if j.Silenced != nil {
			n := fmt.Sprintf("%s: silenced until %s", j.Name, j.Silenced.Until.Format(timeLayout))
			if j.Silenced.By != "" {
				n += " by " + j.Silenced.By
			}
			if j.Silenced.Reason != "" {
				n += " (" + j.Silenced.Reason + ")"
			}
			notes = append(notes, n)
		}
		if j.Maintenance != "" {
			notes = append(notes, fmt.Sprintf("%s: in maintenance window %s", j.Name, j.Maintenance))
		}
		if j.Acknowledged != nil {
			n := fmt.Sprintf("%s: acknowledged at %s", j.Name, j.Acknowledged.At.Format(timeLayout))
			if j.Acknowledged.By != "" {
				n += " by " + j.Acknowledged.By
			}
			if j.Acknowledged.Reason != "" {
				n += " (" + j.Acknowledged.Reason + ")"
			}
			notes = append(notes, n)
		}
		if j.HeldSince != nil {
			notes = append(notes, fmt.Sprintf("%s: notice held since %s", j.Name, j.HeldSince.Format(timeLayout)))
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
